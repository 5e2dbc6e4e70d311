// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's script, served as `/page.js` exactly as it is here (embedded with a text
 * import, no build step) and loaded as an ES module that imports what the page's scripts share
 * from `common_script.js`: it signs in with the access token (`POST /login` sets an HttpOnly
 * session cookie; the token itself is never stored by the page), polls `/api/dashboard` every 2 s
 * and renders with `textContent` only, so device names, values and log lines from the field can
 * never inject markup. It draws the header, health checks, adapters and log itself and hands each
 * poll to the panels it imports (cards, devices, doctor, device updates, alarms); the trend points
 * the gateway samples are kept here, across polls, for the device cards' lines.
 *
 * Plain JavaScript with JSDoc types: `deno check` and `deno lint` cover it, and the shape of
 * `/api/dashboard` comes from the server's own type.
 */
/** @typedef {import("./server.ts").DashboardResponse} Dashboard */
/** @typedef {Dashboard["status"]} Status */
/** @typedef {import("./history.ts").TrendPoint} TrendPoint */
import { $, badge, clock, el, fmtAge, fmtCount, input, tbody } from "./common_script.js";
import { alarmsPanel } from "./alarms_script.js";
import {
  renderBuffer,
  renderDrops,
  renderUpdate,
  renderUplink,
  slotText,
  updateOf,
} from "./cards_script.js";
import { renderDeviceUpdates } from "./device_updates_script.js";
import { renderDevices } from "./devices_script.js";
import { renderDoctor } from "./doctor_script.js";
(function () {
  const POLL_MS = 2000;
  const HIDDEN_POLL_MS = 10000;
  /** @type {Record<string, number>} */
  const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

  /**
   * @type {{
   *   running: boolean, timer: ReturnType<typeof setTimeout> | number, cursor: number,
   *   points: number,
   *   pid: number | null, startedAt: number | null,
   *   trends: Record<string, Record<string, TrendPoint[]>>,
   *   last: Dashboard | null, failingSince: number,
   * }}
   */
  const state = {
    running: false,
    timer: 0,
    cursor: 0,
    points: 150,
    pid: null,
    startedAt: null,
    trends: {},
    last: null,
    failingSince: 0,
  };
  const alarms = alarmsPanel({ running: () => state.running, signedOut: showLogin });

  // Sign-in and session

  function clearData() {
    for (const id of ["checks", "buffer", "uplink", "drops", "update", "devices", "logs"]) {
      $(id).replaceChildren();
    }
    tbody("adapters").replaceChildren();
    tbody("doctor").replaceChildren();
    tbody("device-updates").replaceChildren();
    $("device-count").textContent = "";
    $("updated").textContent = "";
    state.trends = {};
    state.cursor = 0;
    state.last = null;
    alarms.clear();
  }

  /** @param {string | null} message */
  function showLogin(message) {
    state.running = false;
    clearTimeout(state.timer);
    clearData();
    $("app").hidden = true;
    $("banner").hidden = true;
    $("logout").hidden = true;
    $("health").hidden = true;
    $("gw-meta").textContent = "";
    $("gw-id").textContent = "Gateway";
    $("gw-site").textContent = "";
    document.title = "Outpost gateway";
    $("login").hidden = false;
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    input("token").focus();
  }

  function start() {
    state.running = true;
    state.failingSince = 0;
    poll();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input("token");
    const err = $("login-error");
    const button = /** @type {HTMLButtonElement} */ ($("login-submit"));
    button.disabled = true;
    try {
      const res = await fetch("/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token.value.trim() }),
        credentials: "same-origin",
      });
      if (res.status === 204) {
        token.value = "";
        err.hidden = true;
        $("login").hidden = true;
        start();
        return;
      }
      err.textContent = res.status === 401
        ? "That token is not accepted. Check it against the token file on the gateway."
        : "Sign-in failed (HTTP " + res.status + ").";
      err.hidden = false;
      token.select();
    } catch (e) {
      err.textContent = "Cannot reach the gateway: " + /** @type {Error} */ (e).message;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  });

  $("logout").addEventListener("click", async () => {
    try {
      await fetch("/logout", { method: "POST", credentials: "same-origin" });
    } finally {
      showLogin(null);
    }
  });

  // Polling

  function schedule() {
    if (!state.running) return;
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  /** @param {string} reason */
  function unreachable(reason) {
    if (!state.failingSince) state.failingSince = Date.now();
    const b = $("banner");
    b.textContent = "Cannot reach the gateway since " + clock(state.failingSince) +
      " (" + reason + "); retrying. The figures below are from before.";
    b.hidden = false;
  }

  async function poll() {
    clearTimeout(state.timer);
    let res;
    try {
      res = await fetch("/api/dashboard?logs=200&after=" + state.cursor, {
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (e) {
      unreachable(/** @type {Error} */ (e).message);
      schedule();
      return;
    }
    if (res.status === 401) {
      showLogin(
        state.last
          ? "Signed out: the session expired or the access token was changed. Sign in again."
          : null,
      );
      return;
    }
    /** @type {Dashboard} */
    let data;
    try {
      if (!res.ok) throw new Error("HTTP " + res.status);
      data = await res.json();
    } catch (e) {
      unreachable(/** @type {Error} */ (e).message);
      schedule();
      return;
    }
    if (!state.running) return;
    state.failingSince = 0;
    $("banner").hidden = true;
    merge(data);
    render(data);
    alarms.refresh();
    schedule();
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.running) poll();
  });

  /** Adds the new trend points; a restarted gateway (new pid) starts the lines afresh. */
  /** @param {Dashboard} d */
  function merge(d) {
    const s = d.status;
    let cursor = d.trendCursor;
    if (state.pid !== s.pid || state.startedAt !== s.startedAt) {
      if (state.pid !== null) cursor = 0;
      state.trends = {};
      state.pid = s.pid;
      state.startedAt = s.startedAt;
    }
    state.cursor = cursor;
    state.points = d.trendPoints || 150;
    for (const device of Object.keys(d.trends)) {
      const byMetric = state.trends[device] || (state.trends[device] = {});
      for (const metric of Object.keys(d.trends[device])) {
        const line = byMetric[metric] || (byMetric[metric] = []);
        for (const p of d.trends[device][metric]) {
          if (!line.length || p[0] > line[line.length - 1][0]) line.push(p);
        }
        if (line.length > state.points) line.splice(0, line.length - state.points);
      }
    }
  }

  // Rendering

  /** @param {Dashboard} d */
  function render(d) {
    state.last = d;
    const s = d.status;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    document.title = s.gatewayId + " · Outpost";
    $("gw-id").textContent = s.gatewayId;
    $("gw-site").textContent = s.site || "";
    const h = $("health");
    h.hidden = false;
    h.className = "badge " + (s.health.ok ? "ok" : "bad");
    h.textContent = s.health.ok ? "Healthy" : "Unhealthy";
    const slot = slotText(updateOf(s));
    $("gw-meta").textContent = "version " + s.version + (slot ? " · slot " + slot : "") +
      " · up " + fmtAge(s.uptimeMs) + " · pid " + s.pid;
    renderChecks(s);
    renderBuffer(d);
    renderUplink(d);
    renderDrops(s);
    renderUpdate(d);
    renderAdapters(s);
    renderDoctor(d);
    renderDeviceUpdates(s);
    renderDevices(d, state.trends);
    renderLogs(d);
    $("updated").textContent = "Updated " + clock(d.now) + " · refreshes every 2 s";
  }

  /** @param {Status} s */
  function renderChecks(s) {
    const out = [];
    for (const name of Object.keys(s.health.checks)) {
      const c = s.health.checks[name];
      const div = el("div", "check " + (c.ok ? "ok" : "bad"));
      div.append(el("b", null, name), el("span", null, c.detail));
      out.push(div);
    }
    $("checks").replaceChildren(...out);
  }

  /** @type {Record<string, string>} */
  const ADAPTER_KIND = { running: "ok", starting: "warn", backoff: "bad", stopped: "idle" };

  /** @param {Status} s */
  function renderAdapters(s) {
    const rows = [];
    for (const a of s.adapters) {
      const tr = el("tr");
      tr.dataset.adapter = a.name;
      const stateCell = el("td");
      stateCell.append(badge(a.state, ADAPTER_KIND[a.state] || "idle"));
      const states = Object.values(a.devices);
      const down = states.filter((x) => x.state !== "online").length;
      tr.append(
        el("td", null, a.name),
        el("td", null, a.type),
        stateCell,
        el("td", "num", fmtCount(a.restarts)),
        el("td", "num" + (a.errors ? " bad" : ""), fmtCount(a.errors)),
        el("td", down ? "bad" : null, states.length ? (down ? down + " down" : "all up") : "–"),
        el("td", "err", a.lastError || ""),
      );
      rows.push(tr);
    }
    if (!rows.length) {
      const td = el("td", "muted", "No adapters configured.");
      td.colSpan = 7;
      const tr = el("tr");
      tr.append(td);
      rows.push(tr);
    }
    tbody("adapters").replaceChildren(...rows);
  }

  /** @param {Record<string, unknown> | undefined} f */
  function fieldsText(f) {
    if (!f) return "";
    return Object.keys(f).filter((k) => f[k] !== undefined).map((k) => {
      const v = f[k];
      return k + "=" + (typeof v === "string" ? v : JSON.stringify(v));
    }).join(" ");
  }

  /** @param {Dashboard} d */
  function renderLogs(d) {
    const min = LEVELS[/** @type {HTMLSelectElement} */ ($("log-level")).value] || 0;
    const items = [];
    for (let i = d.logs.length - 1; i >= 0 && items.length < 100; i--) {
      const r = d.logs[i];
      if ((LEVELS[r.level] || 0) < min) continue;
      const li = el("li");
      const msg = el("span", "msg", r.msg);
      const extra = fieldsText(r.fields);
      if (extra) msg.append(" ", el("span", "fields", extra));
      li.append(
        el("span", "ts", clock(r.ts)),
        el("span", "lvl lvl-" + r.level, r.level),
        el("span", "comp", r.component),
        msg,
      );
      items.push(li);
    }
    if (!items.length) items.push(el("li", "muted", "No log lines at this level."));
    $("logs").replaceChildren(...items);
  }

  $("device-filter").addEventListener("input", () => {
    if (state.last) renderDevices(state.last, state.trends);
  });
  $("log-level").addEventListener("change", () => {
    if (state.last) renderLogs(state.last);
  });

  /**
   * Starts polling if a session cookie from earlier is still valid, else asks for the token.
   * `/session` is open, so an unsigned visit never touches the API (no refused request counted).
   */
  async function resume() {
    try {
      const res = await fetch("/session", { credentials: "same-origin", cache: "no-store" });
      const body = res.ok ? await res.json() : { signedIn: false };
      if (body.signedIn) start();
      else showLogin(null);
    } catch (e) {
      showLogin("Cannot reach the gateway: " + /** @type {Error} */ (e).message);
    }
  }

  resume();
})();
