/**
 * The gateway page: markup, style and scripts, served by the gateway itself (the scripts are the
 * `*_script.js` files beside this one). Plain constants so `deno compile` embeds them; nothing is
 * fetched from elsewhere (the boxes are offline): system fonts, inline SVG, no CDN. The markup
 * carries no data: the script fetches `/api/dashboard` once signed in.
 */
// The scripts: plain JavaScript with JSDoc types that deno check and lint cover, served byte for
// byte as they are in the files (deno compile and deno bundle embed them).
import PAGE_SCRIPT from "./page_script.js" with { type: "text" };
import HISTORY_SCRIPT from "./history_script.js" with { type: "text" };
import COMMON_SCRIPT from "./common_script.js" with { type: "text" };
import ALARMS_SCRIPT from "./alarms_script.js" with { type: "text" };
import CARDS_SCRIPT from "./cards_script.js" with { type: "text" };
import DOCTOR_SCRIPT from "./doctor_script.js" with { type: "text" };
import DEVICE_UPDATES_SCRIPT from "./device_updates_script.js" with { type: "text" };
import DEVICES_SCRIPT from "./devices_script.js" with { type: "text" };

/**
 * The page's scripts by the path they are served at: `/page.js` and `/history.js` (the shell's
 * two script tags) and the ES modules they import, each under its file name so that an
 * `import … from "./alarms_script.js"` resolves the same in the browser as for `deno check`.
 */
export const PAGE_SCRIPTS: Readonly<Record<string, string>> = {
  "/page.js": PAGE_SCRIPT,
  "/history.js": HISTORY_SCRIPT,
  "/common_script.js": COMMON_SCRIPT,
  "/alarms_script.js": ALARMS_SCRIPT,
  "/cards_script.js": CARDS_SCRIPT,
  "/doctor_script.js": DOCTOR_SCRIPT,
  "/device_updates_script.js": DEVICE_UPDATES_SCRIPT,
  "/devices_script.js": DEVICES_SCRIPT,
};

/** The page shell: sign-in form and empty sections that the script fills in. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Outpost gateway</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/page.css">
<script type="module" src="/page.js"></script>
<script type="module" src="/history.js"></script>
</head>
<body>
<header class="top">
  <div class="brand" aria-hidden="true">Outpost</div>
  <div class="ident">
    <h1 id="gw-id">Gateway</h1>
    <span id="gw-site" class="site"></span>
  </div>
  <span id="health" class="badge" hidden></span>
  <div id="gw-meta" class="meta"></div>
  <button id="logout" type="button" class="ghost" hidden>Sign out</button>
</header>
<div id="banner" class="banner" role="status" hidden></div>
<main>
  <section id="login" class="login" hidden>
    <form id="login-form" autocomplete="off">
      <h2>Sign in</h2>
      <p>This gateway's pages need its access token. It was printed once when the gateway first
        started and is kept in the file <code>http-token</code> next to the buffer file.
        On the gateway, <code>outpost token show --config FILE</code> prints it.</p>
      <label for="token">Access token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
        autocapitalize="off" required>
      <button id="login-submit" type="submit">Sign in</button>
      <p id="login-error" class="error" role="alert" hidden></p>
    </form>
  </section>
  <div id="app" hidden>
    <section id="checks" class="checks" aria-label="Health checks"></section>
    <section id="alarms" class="alarms" hidden>
      <div class="section-head">
        <h2>Alarms</h2>
        <span id="alarms-count" class="muted"></span>
        <p id="alarms-error" class="error" role="alert" hidden></p>
      </div>
      <h3>Active</h3>
      <div class="scroll">
        <table id="alarms-active">
          <thead><tr><th>Severity</th><th>Alarm</th><th>Message</th><th class="num">Value</th>
            <th>Raised</th><th></th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <h3>Acknowledged</h3>
      <div class="scroll">
        <table id="alarms-acked">
          <thead><tr><th>Severity</th><th>Alarm</th><th>Message</th><th class="num">Value</th>
            <th>Raised</th><th>Acknowledged</th><th></th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <details id="alarms-history-box" open>
        <summary>History</summary>
        <div class="scroll">
          <table id="alarms-history">
            <thead><tr><th>Time</th><th>Alarm</th><th>Transition</th><th class="num">Value</th>
              <th>Severity</th><th>By</th></tr></thead>
            <tbody></tbody>
          </table>
        </div>
      </details>
    </section>
    <section class="cards">
      <article class="card"><h2>Buffer</h2><dl id="buffer"></dl></article>
      <article class="card"><h2>Uplink</h2><dl id="uplink"></dl></article>
      <article class="card"><h2>Drops</h2><dl id="drops"></dl></article>
      <article class="card"><h2>Version and update</h2><dl id="update"></dl></article>
    </section>
    <section>
      <h2>Adapters</h2>
      <div class="scroll">
        <table id="adapters">
          <thead><tr><th>Name</th><th>Type</th><th>State</th><th class="num">Restarts</th>
            <th class="num">Errors</th><th>Devices</th><th>Last error</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>
    <section id="doctor-section" hidden>
      <div class="section-head">
        <h2>Host checklist</h2>
        <span id="doctor-summary" class="muted"></span>
      </div>
      <div class="scroll">
        <table id="doctor">
          <thead><tr><th>Check</th><th>Verdict</th><th>Found, and the fix</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>
    <section id="device-updates-section" hidden>
      <h2>Device updates</h2>
      <p id="device-rollouts" class="muted"></p>
      <div class="scroll">
        <table id="device-updates">
          <thead><tr><th>Device</th><th>Class</th><th>State</th><th>Runs</th><th>Offered</th>
            <th>Note</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>
    <section>
      <div class="section-head">
        <h2>Devices</h2>
        <input id="device-filter" type="search" placeholder="Filter devices or metrics"
          aria-label="Filter devices or metrics">
        <span id="device-count" class="muted"></span>
      </div>
      <div id="devices" class="devices"></div>
    </section>
    <section id="history" aria-label="History">
      <div class="section-head">
        <h2>History</h2>
        <select id="hist-device" aria-label="Device"></select>
        <select id="hist-metric" aria-label="Metric"><option value="">all metrics</option></select>
        <div class="ranges" role="group" aria-label="Time range">
          <button type="button" data-range="3600000">1 h</button>
          <button type="button" data-range="86400000" aria-pressed="true">24 h</button>
          <button type="button" data-range="604800000">7 d</button>
          <button type="button" data-range="2592000000">30 d</button>
          <button type="button" data-range="custom">Custom</button>
        </div>
        <span id="hist-custom" class="custom" hidden>
          <input id="hist-from" type="datetime-local" aria-label="From">
          <input id="hist-to" type="datetime-local" aria-label="To">
          <button id="hist-apply" type="button">Show</button>
        </span>
        <a id="hist-csv" class="button" href="#" download>Download CSV</a>
      </div>
      <p id="hist-info" class="muted"></p>
      <div id="hist-charts" class="charts"></div>
    </section>
    <section>
      <div class="section-head">
        <h2>Recent log</h2>
        <select id="log-level" aria-label="Log level">
          <option value="debug">all levels</option>
          <option value="info" selected>info and above</option>
          <option value="warn">warnings and errors</option>
          <option value="error">errors</option>
        </select>
        <span class="muted">newest first</span>
      </div>
      <ol id="logs" class="logs"></ol>
    </section>
  </div>
</main>
<footer><span id="updated"></span></footer>
</body>
</html>
`;

/** The page's style sheet: system fonts, light and dark schemes. */
export const PAGE_STYLE = `:root {
  --bg: #f4f6f8; --panel: #fff; --text: #1b2430; --muted: #5f6b7a; --line: #dde3ea;
  --accent: #1f6feb; --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9;
  --warn: #9a6700; --warn-bg: #fff8c5; --head: #16202c; --head-text: #e8edf3;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue",
    Arial, sans-serif;
  color: var(--text); background: var(--bg);
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f141a; --panel: #171e26; --text: #e2e8ef; --muted: #93a1b1; --line: #2a3440;
    --accent: #58a6ff; --ok: #3fb950; --ok-bg: #12261a; --bad: #ff7b72; --bad-bg: #2d1416;
    --warn: #d29922; --warn-bg: #2b2111; --head: #0a0e13;
  }
}
* { box-sizing: border-box; }
body { margin: 0; }
h1, h2 { margin: 0; font-weight: 600; }
h1 { font-size: 1.25rem; }
h2 { font-size: 0.95rem; letter-spacing: 0.01em; }
code { font-family: var(--mono); font-size: 0.9em; }
.muted { color: var(--muted); }
[hidden] { display: none !important; }

.top {
  display: flex; align-items: center; flex-wrap: wrap; gap: 0.5rem 1rem; padding: 0.75rem 1.25rem;
  background: var(--head); color: var(--head-text);
}
.brand { font-weight: 700; letter-spacing: 0.08em; text-transform: uppercase; font-size: 0.75rem;
  opacity: 0.7; }
.ident { display: flex; align-items: baseline; gap: 0.6rem; min-width: 0; }
.ident h1 { overflow-wrap: anywhere; }
.site { opacity: 0.75; }
.meta { margin-left: auto; opacity: 0.85; font-size: 0.9rem; }
.badge { display: inline-block; padding: 0.1rem 0.55rem; border-radius: 999px; font-size: 0.8rem;
  font-weight: 600; white-space: nowrap; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.idle { background: var(--line); color: var(--muted); }
button { font: inherit; cursor: pointer; border-radius: 6px; }
button.ghost { background: transparent; color: inherit; border: 1px solid currentColor;
  padding: 0.2rem 0.7rem; opacity: 0.85; }
.banner { padding: 0.5rem 1.25rem; background: var(--bad-bg); color: var(--bad); font-weight: 600; }

main { padding: 1rem 1.25rem 2rem; max-width: 1400px; margin: 0 auto; }
main section { margin-bottom: 1.25rem; }
main section > h2, .section-head { margin-bottom: 0.5rem; }
.section-head { display: flex; align-items: center; gap: 0.75rem; flex-wrap: wrap; }
.section-head input, .section-head select { font: inherit; padding: 0.25rem 0.5rem;
  border: 1px solid var(--line); border-radius: 6px; background: var(--panel); color: var(--text); }
.section-head input { min-width: 16rem; }

.login { display: flex; justify-content: center; padding-top: 3rem; }
.login form { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 1.5rem; width: min(30rem, 100%); display: grid; gap: 0.6rem; }
.login p { margin: 0; color: var(--muted); }
.login input { font: inherit; font-family: var(--mono); padding: 0.45rem 0.6rem;
  border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--text); }
.login button { padding: 0.5rem; border: 0; background: var(--accent); color: #fff;
  font-weight: 600; }
.error { color: var(--bad); font-weight: 600; }

.checks { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.check { background: var(--panel); border: 1px solid var(--line); border-left-width: 4px;
  border-radius: 6px; padding: 0.35rem 0.7rem; }
.check.ok { border-left-color: var(--ok); }
.check.bad { border-left-color: var(--bad); }
.check b { margin-right: 0.4rem; }

.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); gap: 0.75rem; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 0.75rem 0.9rem; }
.card h2 { margin-bottom: 0.4rem; color: var(--muted); text-transform: uppercase;
  font-size: 0.75rem; letter-spacing: 0.06em; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0.2rem 0.9rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
dd.big { font-size: 1.35rem; font-weight: 600; }
dd.wide { grid-column: 1 / -1; text-align: left; font-size: 0.85rem; margin-top: -0.15rem; }
dd.bad, td.bad, span.bad { color: var(--bad); font-weight: 600; }
dd.wide.bad { font-weight: 400; }
dd.ok, span.ok { color: var(--ok); font-weight: 600; }
dd.warn { color: var(--warn); font-weight: 600; }

.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; background: var(--panel);
  border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: 0.4rem 0.7rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 0.8rem; }
tr:last-child td { border-bottom: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.err { color: var(--bad); max-width: 28rem; overflow-wrap: anywhere; }

.devices { display: grid; grid-template-columns: repeat(auto-fill, minmax(21rem, 1fr));
  gap: 0.75rem; }
.device { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 0.6rem 0.8rem; }
.device header { display: flex; align-items: center; gap: 0.5rem; margin-bottom: 0.3rem; }
.device header .seen { margin-left: auto; font-size: 0.75rem; }
.device h3 { cursor: pointer; }
.device h3 { margin: 0; font-size: 0.95rem; font-family: var(--mono); overflow-wrap: anywhere; }
.metric { display: grid; grid-template-columns: minmax(5rem, 1fr) auto 7.5rem;
  align-items: center; gap: 0.6rem; padding: 0.2rem 0; border-top: 1px solid var(--line); }
.metric:first-of-type { border-top: 0; }
.metric .name { color: var(--muted); overflow-wrap: anywhere; }
.metric .value { font-weight: 600; font-variant-numeric: tabular-nums; text-align: right;
  white-space: nowrap; }
.metric .value small { font-weight: 400; color: var(--muted); margin-left: 0.2rem; }
.metric.stale .value { color: var(--muted); }
.metric .age { display: block; font-size: 0.75rem; color: var(--muted); font-weight: 400; }
svg.trend { width: 7.5rem; height: 2rem; display: block; }
svg.trend polyline { fill: none; stroke: var(--accent); stroke-width: 1.5;
  vector-effect: non-scaling-stroke; stroke-linejoin: round; }
svg.trend circle { fill: var(--accent); }

.logs { list-style: none; margin: 0; padding: 0; background: var(--panel);
  border: 1px solid var(--line); border-radius: 8px; font-family: var(--mono);
  font-size: 0.8rem; max-height: 28rem; overflow-y: auto; }
.logs li { display: grid; grid-template-columns: 5.5rem 3.5rem minmax(6rem, 11rem) 1fr;
  gap: 0.6rem; padding: 0.2rem 0.7rem; border-bottom: 1px solid var(--line); }
.logs li:last-child { border-bottom: 0; }
.logs .lvl { font-weight: 700; text-transform: uppercase; }
.logs .lvl-debug { color: var(--muted); }
.logs .lvl-info { color: var(--accent); }
.logs .lvl-warn { color: var(--warn); }
.logs .lvl-error { color: var(--bad); }
.logs .comp { color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.logs .msg { overflow-wrap: anywhere; }
.logs .fields { color: var(--muted); }
.ranges { display: inline-flex; }
.ranges button, .custom button, a.button { font: inherit; padding: 0.25rem 0.6rem;
  border: 1px solid var(--line); background: var(--panel); color: var(--text); }
.ranges button { border-radius: 0; margin-left: -1px; }
.ranges button:first-child { border-radius: 6px 0 0 6px; }
.ranges button:last-child { border-radius: 0 6px 6px 0; }
.ranges button[aria-pressed="true"] { background: var(--accent); color: #fff;
  border-color: var(--accent); }
.custom { display: inline-flex; gap: 0.4rem; }
.custom input { font: inherit; padding: 0.2rem 0.4rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--panel); color: var(--text); }
a.button { border-radius: 6px; text-decoration: none; }
#hist-info { margin: 0 0 0.5rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(26rem, 1fr));
  gap: 0.75rem; }
.chart { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 0.5rem 0.7rem; }
.chart h3 { margin: 0 0 0.3rem; font-size: 0.9rem; font-weight: 600; }
.chart h3 small { color: var(--muted); font-weight: 400; margin-left: 0.4rem; }
svg.history { width: 100%; height: 9rem; display: block; }
svg.history .band { fill: var(--accent); opacity: 0.18; stroke: none; }
svg.history .avg { fill: none; stroke: var(--accent); stroke-width: 1.5;
  vector-effect: non-scaling-stroke; stroke-linejoin: round; }
svg.history circle { fill: var(--accent); }
svg.history .grid { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
.axis { display: flex; justify-content: space-between; font-size: 0.75rem; color: var(--muted);
  font-variant-numeric: tabular-nums; }
.alarms h3 { font-size: 0.8rem; color: var(--muted); margin: 0.6rem 0 0.3rem; font-weight: 600;
  text-transform: uppercase; letter-spacing: 0.06em; }
.alarms summary { cursor: pointer; color: var(--muted); font-weight: 600; margin: 0.6rem 0 0.3rem;
  font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.06em; }
.alarms .error { margin: 0; }
.alarms td.actions { white-space: nowrap; text-align: right; }
.alarms td.actions button { padding: 0.15rem 0.6rem; border: 1px solid var(--line);
  background: var(--panel); color: var(--text); margin-left: 0.3rem; }
.alarms td.when { white-space: nowrap; font-variant-numeric: tabular-nums; }
footer { padding: 0 1.25rem 1.5rem; color: var(--muted); font-size: 0.8rem; text-align: center; }
@media (max-width: 40rem) {
  .meta { margin-left: 0; width: 100%; }
  .logs li { grid-template-columns: 5rem 3rem 1fr; }
  .logs .comp { display: none; }
}
`;
