// @ts-check
/// <reference lib="dom" />
/**
 * The fleet page's script, served as `/fleet.js` exactly as it is here (embedded with a text
 * import, no build step). All data arrives through `/api/*` after login: the snapshot once, then
 * `patch` events with only what changed. The gateway table is virtual: only the rows in view are
 * in the document, so 500 gateways cost what 30 do. Rendering uses `textContent` only.
 *
 * Plain JavaScript with JSDoc types: `deno check` and `deno lint` cover it, and the snapshot's
 * shape comes from the server's own type (serve_live.ts). The result view is page_results.js, the
 * lists of commands and exports page_lists.js.
 */
/** @typedef {import("./serve_live.ts").FleetSnapshot} Snapshot */
/** @typedef {import("./serve_live.ts").FleetPatch} Patch */
/** @typedef {Snapshot["gateways"][number]} Gateway */
/** @typedef {Snapshot["ops"][number]} Op */
/** @typedef {Op["results"][number]} Target */
/** @typedef {Snapshot["exports"][number]} ExportJob */
/** @typedef {{ tr: HTMLElement, box: HTMLInputElement, why: HTMLElement, cells: Record<string, HTMLElement>, buttons: HTMLButtonElement[] }} Row */
/** @typedef {"restart" | "update-check" | "update-apply"} Action */
/** @typedef {import("./page_results.js").ResultsView} ResultsView */
/** @typedef {import("./page_lists.js").Lists} Lists */
/** @typedef {import("./page_updates.js").Updates} Updates */
"use strict";
(() => {
  // The page shell (page.ts) is fixed: every id looked up here exists.
  /** @param {string} id */
  const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
  /** @param {string} id */
  const input = (id) => /** @type {HTMLInputElement} */ ($(id));
  /**
   * @param {string} tag
   * @param {Record<string, unknown>} props
   * @param {(Node | string)[]} kids
   * @returns {any}
   */
  const el = (tag, props = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") e.className = /** @type {string} */ (v);
      else if (k.startsWith("data-")) e.setAttribute(k, /** @type {string} */ (v));
      else Object.assign(e, { [k]: v });
    }
    for (const k of kids) e.append(k);
    return e;
  };
  /** @param {number | null | undefined} ms */
  const age = (ms) => {
    if (ms === null || ms === undefined || !isFinite(ms)) return "-";
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.round(s / 60) + "m";
    if (s < 172800) return (s / 3600).toFixed(1) + "h";
    return (s / 86400).toFixed(1) + "d";
  };
  /** @param {number} ms */
  const elapsed = (ms) => ms < 9950 ? (Math.max(0, ms) / 1000).toFixed(1) + "s" : age(ms);
  /**
   * One date format on every page: `2026-12-03 14:05:09 UTC` (as the CLI and the gateway page).
   * @param {number | null | undefined} ms
   */
  const when = (ms) =>
    ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "-";
  /** @param {Node} node @param {string} text */
  const setText = (node, text) => {
    if (node.textContent !== text) node.textContent = text;
  };

  const COLS = [
    "id",
    "health",
    "alarms",
    "host",
    "updates",
    "site",
    "version",
    "backlog",
    "oldest",
    "seen",
    "started",
    "scopes",
    "page",
  ];
  const NUM = new Set(["alarms", "backlog", "oldest"]);
  const ROW_ACTIONS = [
    ["status", "Status"],
    ["logs", "Logs"],
    ["config-get", "Config"],
    ["query", "Query"],
    ["restart", "Restart"],
    ["update-check", "Check update"],
    ["update-apply", "Update"],
  ];
  const OVERSCAN = 8;

  /** @type {Map<string, Gateway>} */
  const gateways = new Map();
  /** @type {string[]} gateway ids in table order */
  let order = [];
  /** @type {Map<string, Op>} */
  const ops = new Map();
  /** @type {Map<string, ExportJob>} */
  const exportJobs = new Map();
  /** @type {Set<string>} */
  const selected = new Set();
  /** @type {Map<string, Row>} the rows in the document now */
  const shown = new Map();
  /** @type {Omit<Snapshot, "now" | "gateways" | "ops" | "exports"> | null} */
  let head = null;
  let skew = 0;
  let rowHeight = 32;
  /** @type {EventSource | null} */
  let source = null;
  /** @type {{ action: Action, targets: string[] | "all", version: string } | null} */
  let pending = null;
  const topPad = el("tr", { class: "spacer" }, el("td", { colSpan: COLS.length + 2 }));
  const bottomPad = el("tr", { class: "spacer" }, el("td", { colSpan: COLS.length + 2 }));
  const now = () => Date.now() - skew;

  /**
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    };
    const r = await fetch(path, { credentials: "same-origin", ...init });
    if (r.status === 401) {
      showLogin("");
      throw new Error("login required");
    }
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
    return data;
  }

  /** @type {ResultsView} */
  const results = /** @type {any} */ (globalThis).outpostFleetResults({ $, el, api, when });
  /** @type {Lists} */
  const lists = /** @type {any} */ (globalThis).outpostFleetLists({
    $,
    el,
    api,
    when,
    elapsed,
    results,
  });
  /** @type {Updates} */
  const updates = /** @type {any} */ (globalThis).outpostFleetUpdates({
    el,
    api,
    refresh: renderRows,
  });

  /** @param {string} message */
  function showLogin(message) {
    if (source) {
      source.close();
      source = null;
    }
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    input("token").focus();
  }

  /** @param {string} token */
  async function login(token) {
    const r = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    if (r.status !== 204) {
      showLogin(
        r.status === 401 ? "That token is not accepted." : "Login failed (HTTP " + r.status + ").",
      );
      return false;
    }
    return true;
  }

  async function start() {
    let data;
    try {
      data = await api("/api/fleet");
    } catch (e) {
      if (/** @type {Error} */ (e).message !== "login required") setTimeout(start, 2000);
      return;
    }
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    load(data);
    listen();
  }

  function listen() {
    // The stream starts with the whole snapshot, then brings only what changed.
    if (source) source.close();
    source = new EventSource("/api/events");
    source.addEventListener(
      "fleet",
      (ev) => load(JSON.parse(/** @type {MessageEvent} */ (ev).data)),
    );
    source.addEventListener(
      "patch",
      (ev) => apply(JSON.parse(/** @type {MessageEvent} */ (ev).data)),
    );
    source.onerror = () => {
      // A refused stream is not retried by the browser: find out why, then start again.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(start, 1000);
      }
    };
  }

  /** @param {Snapshot} s */
  function load(s) {
    gateways.clear();
    ops.clear();
    exportJobs.clear();
    const { now: t, gateways: g, ops: o, exports: x, ...rest } = s;
    apply({ now: t, head: rest, gateways: g, ops: o, exports: x });
  }

  /** @param {Patch} p */
  function apply(p) {
    skew = Date.now() - p.now;
    if (p.head) {
      head = p.head;
      renderHead();
    }
    let reorder = false;
    for (const g of p.gateways || []) {
      if (!gateways.has(g.id)) reorder = true;
      gateways.set(g.id, g);
    }
    for (const id of p.removed || []) {
      reorder = gateways.delete(id) || reorder;
      selected.delete(id);
    }
    if (reorder) {
      order = [...gateways.keys()].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    }
    if (p.gateways || p.removed) {
      renderRows();
      renderCounts();
    }
    for (const o of p.ops || []) ops.set(o.id, o);
    for (const id of p.opsRemoved || []) ops.delete(id);
    if (p.ops || p.opsRemoved) {
      lists.renderOps([...ops.values()].sort((a, b) => b.createdAt - a.createdAt));
      updates.opsChanged([...ops.values()]);
    }
    for (const x of p.exports || []) exportJobs.set(x.id, x);
    for (const id of p.exportsRemoved || []) exportJobs.delete(id);
    if (p.exports || p.exportsRemoved) {
      lists.renderExports([...exportJobs.values()].sort((a, b) => b.createdAt - a.createdAt));
    }
  }

  function renderHead() {
    if (!head) return;
    $("conn").textContent = head.broker + (head.connected ? "" : " - DISCONNECTED" +
      (head.lastError ? ": " + head.lastError : "")) +
      (head.keyid
        ? " - signing as operator key " + head.keyid
        : " - NO OPERATOR KEY (--key): gateways refuse every command but ping");
  }

  function renderCounts() {
    let online = 0, alarms = 0;
    for (const g of gateways.values()) {
      if (g.state === "online") online++;
      if (g.alarms) alarms += g.alarms.active;
    }
    $("counts").textContent = gateways.size + " gateways: " + online + " online, " +
      (gateways.size - online) + " offline" + (alarms ? ", " + alarms + " active alarm(s)" : "");
    $("empty").hidden = gateways.size > 0;
    updateSelection();
  }

  /** Why commands to `g` are disabled, or "" when they are not. @param {Gateway} g */
  function unreachable(g) {
    return g.state === "offline"
      ? "offline since " + when(g.offlineSince) + (g.reason ? " (" + g.reason + ")" : "")
      : "";
  }

  /** @param {string} id */
  function makeRow(id) {
    /** @type {HTMLInputElement} */
    const box = el("input", { type: "checkbox", "data-select": id });
    box.setAttribute("aria-label", "select " + id);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(id);
      else selected.delete(id);
      updateSelection();
    });
    /** @type {Row} */
    const r = {
      tr: el("tr", { "data-gateway": id }),
      box,
      why: el("span", { class: "why" }),
      cells: {},
      buttons: [],
    };
    r.tr.append(el("td", {}, box));
    for (const k of COLS) {
      r.cells[k] = el("td", { class: NUM.has(k) ? "num" : "", "data-col": k });
      r.tr.append(r.cells[k]);
    }
    // The reason first: the buttons may run past the right edge of a narrow window.
    const actions = el("td", { class: "actions", "data-col": "actions" }, r.why);
    for (const [action, label] of ROW_ACTIONS) {
      const b = el("button", { type: "button", textContent: label, "data-action": action });
      b.setAttribute("data-gateway", id);
      b.addEventListener("click", () => rowAction(action, id));
      r.buttons.push(b);
      actions.append(b);
    }
    r.tr.append(actions);
    return r;
  }

  /** @param {Row} r @param {Gateway} g */
  function fillRow(r, g) {
    const st = g.state === "offline" ? "offline" : g.stale ? "stale" : "online";
    r.tr.className = st;
    r.tr.setAttribute("data-state", g.state);
    r.tr.setAttribute("data-health", g.health);
    r.tr.setAttribute("data-version", g.version || "");
    r.tr.setAttribute("data-started-at", g.startedAt === null ? "" : String(g.startedAt));
    r.box.checked = selected.has(g.id);
    setText(r.cells.id, g.id);
    const badge = r.cells.health.firstChild || r.cells.health.appendChild(el("span"));
    /** @type {HTMLElement} */ (badge).className = "health " + g.health;
    setText(badge, g.health);
    r.cells.health.title = g.healthNote || "";
    setText(r.cells.alarms, g.alarms ? String(g.alarms.active) : "?");
    r.cells.alarms.title = g.alarms
      ? g.alarms.names.join(", ") +
        (g.alarms.acknowledged ? " (" + g.alarms.acknowledged + " acknowledged)" : "")
      : "not published by this gateway";
    const d = g.doctor;
    setText(r.cells.host, d ? d.label : "?");
    r.cells.host.className = d && !d.ok ? "bad" : "";
    r.cells.host.title = !d ? "not published by this gateway" : [
      d.failing.length ? "failing: " + d.failing.join(", ") : "",
      d.warning.length ? "warning: " + d.warning.join(", ") : "",
      d.at ? "checked " + when(d.at) : "",
    ].filter(Boolean).join("\n");
    updates.fill(r.cells.updates, g, unreachable(g));
    setText(r.cells.site, g.site || "-");
    setText(r.cells.version, g.version || "-");
    setText(r.cells.backlog, g.backlog === null ? "-" : String(g.backlog));
    setText(r.cells.started, when(g.startedAt));
    setText(
      r.cells.scopes,
      g.operator === undefined
        ? "?"
        : g.operator === null
        ? "none (unsigned)"
        : g.operator.scopes.join(", ") || "none",
    );
    const link = /** @type {HTMLAnchorElement | null} */ (r.cells.page.firstChild);
    if (g.pageUrl && (!link || link.href !== g.pageUrl)) {
      r.cells.page.replaceChildren(
        el("a", {
          href: g.pageUrl,
          target: "_blank",
          rel: "noopener noreferrer",
          textContent: "open",
        }),
      );
    } else if (!g.pageUrl) setText(r.cells.page, "-");
    const why = unreachable(g);
    setText(r.why, why);
    for (const b of r.buttons) {
      b.disabled = why !== "";
      b.title = why;
    }
    tickRow(r, g);
  }

  /** The cells that move with the clock. @param {Row} r @param {Gateway} g */
  function tickRow(r, g) {
    setText(
      r.cells.oldest,
      g.oldestPendingSince === null ? "-" : age(now() - g.oldestPendingSince),
    );
    setText(r.cells.seen, g.lastSeen ? age(now() - g.lastSeen) + " ago" : "-");
    r.cells.seen.title = when(g.lastSeen);
  }

  /** Puts in the document the rows in view (plus a few), and spacers for the rest. */
  function renderRows() {
    const box = $("gw-scroll");
    const tbody = /** @type {HTMLTableElement} */ ($("gateways")).tBodies[0];
    const first = Math.max(0, Math.floor(box.scrollTop / rowHeight) - OVERSCAN);
    const count = Math.ceil((box.clientHeight || 600) / rowHeight) + 2 * OVERSCAN;
    const ids = order.slice(first, first + count);
    const want = new Set(ids);
    for (const [id, r] of shown) {
      if (!want.has(id)) {
        r.tr.remove();
        shown.delete(id);
      }
    }
    const trs = ids.map((id) => {
      let r = shown.get(id);
      if (!r) shown.set(id, r = makeRow(id));
      fillRow(r, /** @type {Gateway} */ (gateways.get(id)));
      return r.tr;
    });
    /** @type {HTMLElement} */ (topPad.firstChild).style.height = first * rowHeight + "px";
    /** @type {HTMLElement} */ (bottomPad.firstChild).style.height =
      Math.max(0, order.length - first - ids.length) * rowHeight + "px";
    const want2 = [topPad, ...trs, bottomPad];
    const have = tbody.children;
    if (have.length !== want2.length || want2.some((t, i) => have[i] !== t)) {
      tbody.replaceChildren(...want2);
    }
    // Rows are as high as the style sheet makes them; measure once there is one.
    if (trs[0] && trs[0].offsetHeight && trs[0].offsetHeight !== rowHeight) {
      rowHeight = trs[0].offsetHeight;
      renderRows();
    }
  }

  function updateSelection() {
    const off = [...selected].map((id) => gateways.get(id)).filter((g) => g && unreachable(g));
    $("selection").textContent = !selected.size
      ? "none selected"
      : selected.size + " selected" + (off.length
        ? " - " + off.slice(0, 3).map((g) => g && g.id + " " + unreachable(g)).join("; ") +
          (off.length > 3 ? " and " + (off.length - 3) + " more offline" : "") +
          ": deselect to send"
        : "");
    for (const b of document.querySelectorAll('.toolbar button[data-scope="selected"]')) {
      if (!(b instanceof HTMLButtonElement)) continue;
      b.disabled = selected.size === 0 || off.length > 0;
    }
    const all = gateways.size > 0 && selected.size === gateways.size;
    input("select-all").checked = all;
    input("select-all").indeterminate = selected.size > 0 && !all;
  }

  /** @param {string} action @param {string} id */
  function rowAction(action, id) {
    if (action === "restart" || action === "update-check" || action === "update-apply") {
      ask(action, [id]);
    } else results.prepare(id, action, action !== "query");
  }

  const LABELS = {
    restart: "Restart",
    "update-check": "Check for an update on",
    "update-apply": "Update",
  };

  /**
   * @param {Action} action
   * @param {string[] | "all"} targets
   */
  function ask(action, targets) {
    const version = input("version").value.trim();
    const online = [...gateways.values()].filter((g) => g.state === "online").length;
    const who = targets === "all" ? "every online gateway (" + online + ")" : targets.join(", ");
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
      const message = /** @type {Error} */ (e).message;
      if (message !== "login required") $("action-error").textContent = message;
    }
  }

  function init() {
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (await login(input("token").value.trim())) {
        input("token").value = "";
        start();
      }
    });
    $("logout").addEventListener("click", async () => {
      await fetch("/logout", { method: "POST", credentials: "same-origin" });
      showLogin("Logged out.");
    });
    $("select-all").addEventListener("change", () => {
      const on = input("select-all").checked;
      for (const id of gateways.keys()) on ? selected.add(id) : selected.delete(id);
      for (const r of shown.values()) r.box.checked = on;
      updateSelection();
    });
    for (const b of document.querySelectorAll(".toolbar button[data-action]")) {
      if (!(b instanceof HTMLButtonElement)) continue;
      b.addEventListener("click", () =>
        ask(
          /** @type {Action} */ (b.dataset.action),
          b.dataset.scope === "all" ? "all" : [...selected],
        ));
    }
    $("confirm-yes").addEventListener("click", confirmPending);
    $("confirm-no").addEventListener("click", () => {
      pending = null;
      $("confirm").hidden = true;
    });
    let frame = 0;
    const redraw = () => {
      frame = 0;
      renderRows();
    };
    $("gw-scroll").addEventListener("scroll", () => frame ||= requestAnimationFrame(redraw));
    addEventListener("resize", () => frame ||= requestAnimationFrame(redraw));
    // Ages move on between two patches.
    setInterval(() => {
      for (const [id, r] of shown) {
        const g = gateways.get(id);
        if (g) tickRow(r, g);
      }
    }, 1000);
    const m = /^#token=([^&]+)/.exec(location.hash);
    if (m) {
      history.replaceState(null, "", location.pathname);
      login(decodeURIComponent(m[1])).then((ok) => {
        if (ok) start();
      });
    } else start();
  }

  init();
})();
