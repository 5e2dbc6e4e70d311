/**
 * The fleet page, embedded as strings so the binary serves it with no build step and no network
 * (no CDN): HTML shell and style sheet. The script is page_script.js, embedded by serve.ts with a
 * text import. All data arrives through `/api/*` after login.
 */

/** The page shell; holds no data. */
export const FLEET_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outpost fleet</title>
<link rel="stylesheet" href="/fleet.css">
<script src="/fleet-results.js" defer></script>
<script src="/fleet-lists.js" defer></script>
<script src="/fleet-updates.js" defer></script>
<script src="/fleet.js" defer></script>
</head>
<body>
<header>
  <h1>Outpost fleet</h1>
  <span id="conn" class="muted"></span>
  <button id="logout" type="button" hidden>Log out</button>
</header>

<section id="login" hidden>
  <h2>Access token required</h2>
  <p class="muted">The token was printed when <code>outpost fleet serve</code> started (or is in
  its <code>--token-file</code>).</p>
  <form id="login-form">
    <label>Access token <input id="token" name="token" type="password"
      autocomplete="current-password" required></label>
    <button type="submit">Log in</button>
  </form>
  <p id="login-error" class="error" role="alert"></p>
</section>

<main id="app" hidden>
  <section id="fleet">
    <div class="toolbar">
      <strong id="counts"></strong>
      <span id="selection" class="muted">none selected</span>
      <span class="group">
        <button type="button" data-action="restart" data-scope="selected" disabled>Restart selected</button>
        <button type="button" data-action="update-check" data-scope="selected" disabled>Check for update</button>
        <button type="button" data-action="update-apply" data-scope="selected" disabled>Update selected</button>
      </span>
      <span class="group">
        <button type="button" data-action="restart" data-scope="all">Restart all</button>
        <button type="button" data-action="update-check" data-scope="all">Check all</button>
        <button type="button" data-action="update-apply" data-scope="all">Update all</button>
      </span>
      <label>Version <input id="version" placeholder="newest" size="10"></label>
    </div>
    <div id="confirm" role="alertdialog" aria-labelledby="confirm-text" hidden>
      <span id="confirm-text"></span>
      <button type="button" id="confirm-yes">Confirm</button>
      <button type="button" id="confirm-no">Cancel</button>
    </div>
    <p id="action-error" class="error" role="alert"></p>
    <div id="gw-scroll">
    <table id="gateways">
      <thead>
        <tr>
          <th><input type="checkbox" id="select-all" aria-label="select all gateways"></th>
          <th>Gateway</th><th>Health</th><th class="num">Alarms</th>
          <th title="outpost doctor on each gateway: the host checklist">Host checks</th><th>Device updates</th><th>Site</th><th>Version</th>
          <th class="num">Backlog</th><th class="num">Oldest pending</th><th>Last seen</th><th>Up since</th>
          <th title="What each gateway grants this console's operator key (from its ping reply)">Your scopes</th>
          <th>Page</th><th>Actions</th>
        </tr>
      </thead>
      <tbody></tbody>
    </table>
    </div>
    <p id="empty" class="muted" hidden>No gateway has published a status yet.</p>
    <p class="muted">Times are UTC.</p>
  </section>

  <section id="read">
    <h2>Status, logs, config, query</h2>
    <form id="read-form">
      <label>Gateway <input id="read-gateway" required size="16"></label>
      <label>Command <select id="read-cmd">
        <option value="status">status</option>
        <option value="logs">logs</option>
        <option value="config-get">config</option>
        <option value="query">query</option>
      </select></label>
      <span class="group" data-for="logs">
        <label>Lines <input id="read-lines" type="number" min="1" max="500" value="100" size="4"></label>
        <label>Level <select id="read-level"><option value="">all</option><option>debug</option>
          <option>info</option><option>warn</option><option>error</option></select></label>
      </span>
      <span class="group" data-for="query">
        <label>Device <input id="query-device" size="12"></label>
        <label>Metric <input id="query-metric" placeholder="all" size="10"></label>
        <label>From (UTC) <input id="query-from" type="datetime-local"></label>
        <label>To (UTC) <input id="query-to" type="datetime-local"></label>
        <label>Rows <input id="query-limit" type="number" min="1" max="10000" value="1000" size="6"></label>
      </span>
      <button type="submit">Send</button>
    </form>
    <p id="read-error" class="error" role="alert"></p>
    <div id="result" hidden>
      <div class="toolbar">
        <strong id="result-title"></strong>
        <span id="result-pager" class="group" hidden>
          <button type="button" id="result-prev">Previous</button>
          <span id="result-range" class="muted"></span>
          <button type="button" id="result-next">Next</button>
        </span>
        <button type="button" id="result-close">Close</button>
      </div>
      <pre id="result-text"></pre>
      <div id="result-rows" class="rows"></div>
    </div>
  </section>

  <section id="ops">
    <h2>Commands</h2>
    <p id="no-ops" class="muted">None sent from this page yet.</p>
    <div id="op-list"></div>
  </section>

  <section id="export">
    <h2>Export a device's data (CSV)</h2>
    <form id="export-form">
      <label>Gateway <input id="export-gateway" required size="16"></label>
      <label>Device <input id="export-device" required size="14"></label>
      <label>Metric <input id="export-metric" placeholder="all" size="12"></label>
      <label>From (UTC) <input id="export-from" type="datetime-local" required></label>
      <label>To (UTC) <input id="export-to" type="datetime-local"></label>
      <span class="group">
        <button type="button" data-days="1">1 day</button>
        <button type="button" data-days="7">7 days</button>
        <button type="button" data-days="30">30 days</button>
      </span>
      <button type="submit">Export</button>
    </form>
    <p id="export-error" class="error" role="alert"></p>
    <div id="export-list"></div>
  </section>
</main>
</body>
</html>
`;

/** The page's style sheet. */
export const FLEET_PAGE_STYLE =
  `:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
body { margin: 0; }
header { display: flex; gap: 1em; align-items: baseline; padding: .6em 1.2em; background: #1d2330; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
header .muted { color: #b8c0cc; }
header button { margin-left: auto; }
section { margin: 1em 1.2em; padding: .8em 1em; background: #fff; border: 1px solid #dde1e7; border-radius: 6px; }
h2 { font-size: 1.05em; margin: 0 0 .6em; }
.muted { color: #6b7485; }
.error { color: #b3261e; min-height: 1em; margin: .3em 0; }
.toolbar { display: flex; flex-wrap: wrap; gap: .8em; align-items: center; margin-bottom: .6em; }
.group { display: inline-flex; gap: .3em; }
button { font: inherit; padding: .25em .7em; border: 1px solid #aab2bf; border-radius: 4px; background: #fff; cursor: pointer; }
button:hover:not(:disabled) { background: #eef1f5; }
button:disabled { opacity: .5; cursor: default; }
#confirm { padding: .5em .8em; margin: .4em 0; background: #fff6e0; border: 1px solid #e8c66a; border-radius: 4px; display: flex; gap: .6em; align-items: center; }
#confirm[hidden] { display: none; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #edf0f3; white-space: nowrap; }
th { font-weight: 600; color: #4a5263; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 0 .5em; border-radius: 9px; font-size: .9em; }
.state.online { background: #dcf3e3; color: #17692f; }
.state.offline { background: #fbe0de; color: #b3261e; }
.state.stale { background: #fff1cc; color: #7a5a00; }
tr.offline td { color: #8a8f99; }
#gw-scroll { max-height: 70vh; overflow: auto; position: relative; }
#gateways thead th { position: sticky; top: 0; background: #fff; z-index: 1; }
#gateways tbody tr { height: 32px; }
#gateways td:not(.actions) { overflow: hidden; text-overflow: ellipsis; max-width: 22em; }
#gateways tbody tr.spacer { height: 0; }
tr.spacer td { padding: 0; border: 0; }
[hidden] { display: none !important; }
#gateways td.bad { color: #b3261e; }
.health { display: inline-block; padding: 0 .5em; border-radius: 9px; font-size: .9em; }
.health.ok { background: #dcf3e3; color: #17692f; }
.health.offline, .health.failing, .health.alarm { background: #fbe0de; color: #b3261e; }
.health.stale, .health.lagging { background: #fff1cc; color: #7a5a00; }
.actions button { padding: .1em .5em; }
.why { color: #b3261e; font-size: .9em; margin-right: .4em; }
.why:empty { display: none; }
td[data-col=updates] button { padding: .1em .5em; }
.resume-note { color: #4a5263; font-size: .9em; }
#read-form { display: flex; flex-wrap: wrap; gap: .7em; align-items: center; }
#read-form [hidden] { display: none; }
#result { margin-top: .6em; }
#result-text { max-height: 60vh; overflow: auto; background: #f6f7f9; padding: .6em; margin: .4em 0; white-space: pre-wrap; word-break: break-word; }
#result-text:empty { display: none; }
.rows { max-height: 60vh; overflow: auto; }
.rows table td { font-variant-numeric: tabular-nums; }
.op { border-top: 1px solid #edf0f3; padding: .4em 0; }
.op-head { font-weight: 600; }
.op ul, #export-list ul { margin: .2em 0 .2em 1.2em; padding: 0; }
.op li { list-style: none; }
.t-done, .t-restarted { color: #17692f; }
.t-error, .t-timeout, .t-cancelled { color: #b3261e; }
.t-sent, .t-accepted, .t-progress, .t-restarting { color: #7a5a00; }
#export-form { display: flex; flex-wrap: wrap; gap: .7em; align-items: center; }
.job { padding: .3em 0; border-top: 1px solid #edf0f3; }
progress { vertical-align: middle; }
`;
