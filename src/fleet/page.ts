/**
 * The fleet page, embedded as strings so the binary serves it with no build step and no network
 * (no CDN): HTML shell, style sheet and script. All data arrives through `/api/*` after login.
 */

/** The page shell; holds no data. */
export const FLEET_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outpost fleet</title>
<link rel="stylesheet" href="/fleet.css">
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
    <table id="gateways">
      <thead>
        <tr>
          <th><input type="checkbox" id="select-all" aria-label="select all gateways"></th>
          <th>Gateway</th><th>State</th><th>Version</th><th class="num">Backlog</th>
          <th class="num">Oldest pending</th><th>Last seen</th><th>Up since</th>
          <th title="What each gateway grants this console's operator key (from its ping reply)">Your scopes</th><th>Actions</th>
        </tr>
      </thead>
      <tbody></tbody>
    </table>
    <p id="empty" class="muted" hidden>No gateway has published a status yet.</p>
  </section>

  <section id="ops">
    <h2>Commands</h2>
    <p id="no-ops" class="muted">None sent from this page yet.</p>
    <div id="op-list"></div>
  </section>

  <section id="export">
    <h2>Export a device's data (CSV)</h2>
    <form id="export-form">
      <label>Gateway <select id="export-gateway" required></select></label>
      <label>Device <input id="export-device" required size="14"></label>
      <label>Metric <input id="export-metric" placeholder="all" size="12"></label>
      <label>From <input id="export-from" type="datetime-local" required></label>
      <label>To <input id="export-to" type="datetime-local"></label>
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

/** The page's script: login, live list over server-sent events, commands, exports. */
export const FLEET_PAGE_SCRIPT = `"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const age = (ms) => {
    if (ms === null || ms === undefined || !isFinite(ms)) return "-";
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.round(s / 60) + "m";
    if (s < 172800) return (s / 3600).toFixed(1) + "h";
    return (s / 86400).toFixed(1) + "d";
  };
  const elapsed = (ms) => ms < 9950 ? (Math.max(0, ms) / 1000).toFixed(1) + "s" : age(ms);
  const when = (ms) => ms ? new Date(ms).toLocaleString() : "-";

  const selected = new Set();
  const rows = new Map();
  let snap = null;
  let skew = 0;
  let source = null;
  let pending = null;

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    };
    const r = await fetch(path, { credentials: "same-origin", ...init });
    if (r.status === 401) { showLogin(""); throw new Error("login required"); }
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
    return data;
  }

  function showLogin(message) {
    if (source) { source.close(); source = null; }
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("token").focus();
  }

  async function login(token) {
    const r = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    if (r.status !== 204) {
      showLogin(r.status === 401 ? "That token is not accepted." : "Login failed (HTTP " + r.status + ").");
      return false;
    }
    return true;
  }

  async function start() {
    let data;
    try {
      data = await api("/api/fleet");
    } catch (e) {
      if (e.message !== "login required") setTimeout(start, 2000);
      return;
    }
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    render(data);
    listen();
  }

  function listen() {
    if (source) source.close();
    source = new EventSource("/api/events");
    source.addEventListener("fleet", (ev) => render(JSON.parse(ev.data)));
    source.onerror = () => {
      // A refused stream is not retried by the browser: find out why, then start again.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(start, 1000);
      }
    };
  }

  function render(data) {
    snap = data;
    skew = Date.now() - data.now;
    $("conn").textContent = data.broker + (data.connected ? "" : " - DISCONNECTED" +
      (data.lastError ? ": " + data.lastError : "")) +
      (data.keyid ? " - signing as operator key " + data.keyid
        : " - NO OPERATOR KEY (--key): gateways refuse every command but ping");
    renderGateways(data.gateways, data.now);
    renderOps(data.ops);
    renderExports(data.exports, data.gateways);
  }

  function stateOf(g) { return g.state === "offline" ? "offline" : g.stale ? "stale" : "online"; }

  function renderGateways(gateways, now) {
    const tbody = $("gateways").tBodies[0];
    const seen = new Set();
    for (const g of gateways) {
      seen.add(g.id);
      let r = rows.get(g.id);
      if (!r) {
        const box = el("input", { type: "checkbox", "data-select": g.id });
        box.setAttribute("aria-label", "select " + g.id);
        box.addEventListener("change", () => {
          if (box.checked) selected.add(g.id); else selected.delete(g.id);
          updateSelection();
        });
        const actions = el("td", { class: "actions" },
          actionButton("restart", "Restart", g.id),
          actionButton("update-check", "Check update", g.id),
          actionButton("update-apply", "Update", g.id));
        r = { tr: el("tr", { "data-gateway": g.id }), box, cells: {} };
        r.tr.append(el("td", {}, box));
        for (const k of ["id", "state", "version", "backlog", "oldest", "seen", "started", "scopes"]) {
          const td = el("td", { class: k === "backlog" || k === "oldest" ? "num" : "", "data-col": k });
          r.cells[k] = td;
          r.tr.append(td);
        }
        r.tr.append(actions);
        rows.set(g.id, r);
      }
      const st = stateOf(g);
      r.tr.className = st;
      r.tr.setAttribute("data-state", g.state);
      r.tr.setAttribute("data-version", g.version || "");
      r.tr.setAttribute("data-started-at", g.startedAt === null ? "" : String(g.startedAt));
      r.cells.id.textContent = g.id;
      r.cells.state.replaceChildren(el("span", { class: "state " + st, textContent: st }));
      r.cells.state.title = g.state === "offline" && g.reason ? g.reason : "";
      r.cells.version.textContent = g.version || "-";
      r.cells.backlog.textContent = g.backlog === null ? "-" : String(g.backlog);
      r.cells.oldest.textContent = age(g.oldestPendingAgeMs);
      r.cells.seen.textContent = g.lastSeen ? age(now - g.lastSeen) + " ago" : "-";
      r.cells.started.textContent = when(g.startedAt);
      r.cells.scopes.textContent = g.operator === undefined ? "?"
        : g.operator === null ? "none (unsigned)"
        : g.operator.scopes.join(", ") || "none";
      // Move a row only when the order changed, so that nothing under the pointer jumps.
      const at = tbody.children[seen.size - 1];
      if (at !== r.tr) tbody.insertBefore(r.tr, at || null);
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) { r.tr.remove(); rows.delete(id); selected.delete(id); }
    }
    const online = gateways.filter((g) => g.state === "online").length;
    $("counts").textContent = gateways.length + " gateways: " + online + " online, " +
      (gateways.length - online) + " offline";
    $("empty").hidden = gateways.length > 0;
    updateSelection();
  }

  function actionButton(action, label, id) {
    const b = el("button", { type: "button", textContent: label, "data-action": action, "data-gateway": id });
    b.addEventListener("click", () => ask(action, [id]));
    return b;
  }

  function updateSelection() {
    $("selection").textContent = selected.size ? selected.size + " selected" : "none selected";
    for (const b of document.querySelectorAll('.toolbar button[data-scope="selected"]')) {
      b.disabled = selected.size === 0;
    }
    const all = rows.size > 0 && selected.size === rows.size;
    $("select-all").checked = all;
    $("select-all").indeterminate = selected.size > 0 && !all;
  }

  const LABELS = { restart: "Restart", "update-check": "Check for an update on", "update-apply": "Update" };

  function ask(action, targets) {
    const version = $("version").value.trim();
    const who = targets === "all"
      ? "every online gateway (" + (snap ? snap.gateways.filter((g) => g.state === "online").length : 0) + ")"
      : targets.join(", ");
    pending = { action, targets, version };
    $("confirm-text").textContent = LABELS[action] + " " + who +
      (action === "update-apply" ? " to " + (version || "the newest release") : "") + "?";
    $("confirm").hidden = false;
    $("confirm-yes").focus();
  }

  async function confirmPending() {
    const p = pending;
    pending = null;
    $("confirm").hidden = true;
    if (!p) return;
    $("action-error").textContent = "";
    try {
      await api("/api/commands", { cmd: p.action, targets: p.targets, version: p.version });
    } catch (e) {
      if (e.message !== "login required") $("action-error").textContent = e.message;
    }
  }

  function describe(t) {
    if (t.error) return t.error.code + ": " + t.error.message;
    const parts = [];
    if (t.after) {
      parts.push("back after " + elapsed(t.finishedAt - t.sentAt) + ", version " + (t.after.version || "?") +
        (t.before.version && t.after.version && t.before.version !== t.after.version ? " (was " + t.before.version + ")" : ""));
    }
    if (t.note) parts.push(t.note);
    if (t.progress && !t.finished) {
      parts.push(t.progress.done + (t.progress.total !== null && t.progress.total !== undefined ? "/" + t.progress.total : "") +
        (t.progress.note ? " " + t.progress.note : ""));
    }
    if (t.result !== null && !t.after && t.finished) {
      const s = typeof t.result === "string" ? t.result : JSON.stringify(t.result);
      parts.push(s.length > 160 ? s.slice(0, 157) + "..." : s);
    }
    return parts.join("; ");
  }

  function renderOps(ops) {
    $("no-ops").hidden = ops.length > 0;
    const list = $("op-list");
    list.replaceChildren(...ops.map((o) => {
      const s = o.summary;
      const head = el("div", { class: "op-head" },
        o.cmd + " \\u2192 " + (o.targets === "all" ? "all" : o.targets.join(", ")) + ": " +
        s.replied + " of " + s.total + " replied, " + s.ok + " ok" +
        (s.failed ? ", " + s.failed + " failed" : "") + (s.timedOut ? ", " + s.timedOut + " timed out" : "") +
        (o.settled ? "" : " \\u2026"));
      const items = o.results.map((t) => el("li", {
        class: "t-" + t.state, "data-gateway": t.gatewayId, "data-state": t.state,
        textContent: t.gatewayId + ": " + t.state + (describe(t) ? " \\u2014 " + describe(t) : ""),
      }));
      return el("div", { class: "op", "data-op": o.id, "data-cmd": o.cmd, "data-settled": String(o.settled) },
        head, el("ul", {}, ...items));
    }));
  }

  function renderExports(jobs, gateways) {
    const sel = $("export-gateway");
    const keep = sel.value;
    const ids = gateways.map((g) => g.id);
    if (sel.options.length !== ids.length || ids.some((id, i) => sel.options[i].value !== id)) {
      sel.replaceChildren(...ids.map((id) => el("option", { value: id, textContent: id })));
      if (ids.includes(keep)) sel.value = keep;
    }
    $("export-list").replaceChildren(...jobs.map((x) => {
      const what = x.gateway + " / " + x.device + (x.metric ? " / " + x.metric : "") + ", " +
        when(x.from) + " \\u2192 " + (x.to ? when(x.to) : "now");
      const status = x.state === "running"
        ? "running: " + x.progress.pages + " page(s), " + x.progress.rows + " rows" +
          (x.progress.lastTs ? " (up to " + when(x.progress.lastTs) + ")" : "")
        : x.state === "done"
        ? "complete: " + x.progress.rows + " rows in " + x.progress.pages + " page(s) "
        : "failed: " + x.error;
      const line = el("div", { class: "job", "data-export": x.id, "data-state": x.state },
        el("div", {}, what), el("span", { class: x.state === "error" ? "error" : "" , textContent: status }));
      if (x.state === "done") {
        line.append(el("a", { href: "/api/exports/" + x.id + ".csv", download: x.name, textContent: "Download " + x.name }));
      }
      return line;
    }));
  }

  function localInput(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  }

  function init() {
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (await login($("token").value.trim())) { $("token").value = ""; start(); }
    });
    $("logout").addEventListener("click", async () => {
      await fetch("/logout", { method: "POST", credentials: "same-origin" });
      showLogin("Logged out.");
    });
    $("select-all").addEventListener("change", () => {
      const on = $("select-all").checked;
      for (const [id, r] of rows) { r.box.checked = on; if (on) selected.add(id); else selected.delete(id); }
      updateSelection();
    });
    for (const b of document.querySelectorAll(".toolbar button[data-action]")) {
      b.addEventListener("click", () =>
        ask(b.dataset.action, b.dataset.scope === "all" ? "all" : [...selected]));
    }
    $("confirm-yes").addEventListener("click", confirmPending);
    $("confirm-no").addEventListener("click", () => { pending = null; $("confirm").hidden = true; });
    for (const b of document.querySelectorAll("#export-form button[data-days]")) {
      b.addEventListener("click", () => {
        $("export-from").value = localInput(Date.now() - Number(b.dataset.days) * 86400000);
        $("export-to").value = "";
      });
    }
    $("export-from").value = localInput(Date.now() - 30 * 86400000);
    $("export-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("export-error").textContent = "";
      const from = new Date($("export-from").value).getTime();
      const toText = $("export-to").value;
      try {
        await api("/api/exports", {
          gateway: $("export-gateway").value,
          device: $("export-device").value.trim(),
          metric: $("export-metric").value.trim() || undefined,
          from,
          to: toText ? new Date(toText).getTime() : undefined,
        });
      } catch (e) {
        if (e.message !== "login required") $("export-error").textContent = e.message;
      }
    });
    setInterval(() => {
      // Ages move on between two snapshots.
      if (snap) for (const g of snap.gateways) {
        const r = rows.get(g.id);
        if (r) r.cells.seen.textContent = g.lastSeen ? age(Date.now() - skew - g.lastSeen) + " ago" : "-";
      }
    }, 1000);
    const m = /^#token=([^&]+)/.exec(location.hash);
    if (m) {
      history.replaceState(null, "", location.pathname);
      login(decodeURIComponent(m[1])).then((ok) => { if (ok) start(); });
    } else start();
  }

  init();
})();
`;
