// @ts-check
/// <reference lib="dom" />
/**
 * The fleet page's script, served as `/fleet.js` exactly as it is here (embedded with a text
 * import, no build step). All data arrives through `/api/*` after login; rendering uses
 * `textContent` only.
 *
 * Plain JavaScript with JSDoc types: `deno check` and `deno lint` cover it, and the snapshot's
 * shape comes from the server's own type (serve_live.ts).
 */
/** @typedef {import("./serve_live.ts").FleetSnapshot} Snapshot */
/** @typedef {Snapshot["gateways"][number]} Gateway */
/** @typedef {Snapshot["ops"][number]} Op */
/** @typedef {Op["results"][number]} Target */
/** @typedef {Snapshot["exports"][number]} ExportJob */
/** @typedef {{ tr: HTMLElement, box: HTMLInputElement, cells: Record<string, HTMLElement> }} Row */
/** @typedef {"restart" | "update-check" | "update-apply"} Action */
"use strict";
(() => {
  // The page shell (page.ts) is fixed: every id looked up here exists.
  /** @param {string} id */
  const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
  /** @param {string} id */
  const input = (id) => /** @type {HTMLInputElement} */ ($(id));
  /** @param {string} id */
  const select = (id) => /** @type {HTMLSelectElement} */ ($(id));
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
  /** @param {number | null | undefined} ms */
  const when = (ms) => ms ? new Date(ms).toLocaleString() : "-";

  /** @type {Set<string>} */
  const selected = new Set();
  /** @type {Map<string, Row>} */
  const rows = new Map();
  /** @type {Snapshot | null} */
  let snap = null;
  let skew = 0;
  /** @type {EventSource | null} */
  let source = null;
  /** @type {{ action: Action, targets: string[] | "all", version: string } | null} */
  let pending = null;

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

  /** @param {Snapshot} data */
  function render(data) {
    snap = data;
    skew = Date.now() - data.now;
    $("conn").textContent = data.broker + (data.connected ? "" : " - DISCONNECTED" +
      (data.lastError ? ": " + data.lastError : "")) +
      (data.keyid
        ? " - signing as operator key " + data.keyid
        : " - NO OPERATOR KEY (--key): gateways refuse every command but ping");
    renderGateways(data.gateways, data.now);
    renderOps(data.ops);
    renderExports(data.exports, data.gateways);
  }

  /** @param {Gateway} g */
  function stateOf(g) {
    return g.state === "offline" ? "offline" : g.stale ? "stale" : "online";
  }

  /**
   * @param {Gateway[]} gateways
   * @param {number} now
   */
  function renderGateways(gateways, now) {
    const tbody = /** @type {HTMLTableElement} */ ($("gateways")).tBodies[0];
    const seen = new Set();
    for (const g of gateways) {
      seen.add(g.id);
      let r = rows.get(g.id);
      if (!r) {
        /** @type {HTMLInputElement} */
        const box = el("input", { type: "checkbox", "data-select": g.id });
        box.setAttribute("aria-label", "select " + g.id);
        box.addEventListener("change", () => {
          if (box.checked) selected.add(g.id);
          else selected.delete(g.id);
          updateSelection();
        });
        const actions = el(
          "td",
          { class: "actions" },
          actionButton("restart", "Restart", g.id),
          actionButton("update-check", "Check update", g.id),
          actionButton("update-apply", "Update", g.id),
        );
        r = { tr: el("tr", { "data-gateway": g.id }), box, cells: {} };
        r.tr.append(el("td", {}, box));
        for (
          const k of ["id", "state", "version", "backlog", "oldest", "seen", "started", "scopes"]
        ) {
          const td = el("td", {
            class: k === "backlog" || k === "oldest" ? "num" : "",
            "data-col": k,
          });
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
      r.cells.scopes.textContent = g.operator === undefined
        ? "?"
        : g.operator === null
        ? "none (unsigned)"
        : g.operator.scopes.join(", ") || "none";
      // Move a row only when the order changed, so that nothing under the pointer jumps.
      const at = tbody.children[seen.size - 1];
      if (at !== r.tr) tbody.insertBefore(r.tr, at || null);
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) {
        r.tr.remove();
        rows.delete(id);
        selected.delete(id);
      }
    }
    const online = gateways.filter((g) => g.state === "online").length;
    $("counts").textContent = gateways.length + " gateways: " + online + " online, " +
      (gateways.length - online) + " offline";
    $("empty").hidden = gateways.length > 0;
    updateSelection();
  }

  /**
   * @param {Action} action
   * @param {string} label
   * @param {string} id
   */
  function actionButton(action, label, id) {
    const b = el("button", {
      type: "button",
      textContent: label,
      "data-action": action,
      "data-gateway": id,
    });
    b.addEventListener("click", () => ask(action, [id]));
    return b;
  }

  function updateSelection() {
    $("selection").textContent = selected.size ? selected.size + " selected" : "none selected";
    for (const b of document.querySelectorAll('.toolbar button[data-scope="selected"]')) {
      if (!(b instanceof HTMLButtonElement)) continue;
      b.disabled = selected.size === 0;
    }
    const all = rows.size > 0 && selected.size === rows.size;
    input("select-all").checked = all;
    input("select-all").indeterminate = selected.size > 0 && !all;
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
    const who = targets === "all"
      ? "every online gateway (" + (snap
        ? snap.gateways.filter((g) => g.state === "online").length
        : 0) +
        ")"
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
      const message = /** @type {Error} */ (e).message;
      if (message !== "login required") $("action-error").textContent = message;
    }
  }

  /** @param {Target} t */
  function describe(t) {
    if (t.error) return t.error.code + ": " + t.error.message;
    const parts = [];
    if (t.after) {
      parts.push(
        "back after " + elapsed(/** @type {number} */ (t.finishedAt) - t.sentAt) + ", version " +
          (t.after.version || "?") +
          (t.before.version && t.after.version && t.before.version !== t.after.version
            ? " (was " + t.before.version + ")"
            : ""),
      );
    }
    if (t.note) parts.push(t.note);
    if (t.progress && !t.finished) {
      parts.push(
        t.progress.done + (t.progress.total !== null && t.progress.total !== undefined
          ? "/" + t.progress.total
          : "") +
          (t.progress.note ? " " + t.progress.note : ""),
      );
    }
    if (t.result !== null && !t.after && t.finished) {
      const s = typeof t.result === "string" ? t.result : JSON.stringify(t.result);
      parts.push(s.length > 160 ? s.slice(0, 157) + "..." : s);
    }
    return parts.join("; ");
  }

  /** @param {Op[]} ops */
  function renderOps(ops) {
    $("no-ops").hidden = ops.length > 0;
    const list = $("op-list");
    list.replaceChildren(...ops.map((o) => {
      const s = o.summary;
      const head = el(
        "div",
        { class: "op-head" },
        o.cmd + " \u2192 " + (o.targets === "all" ? "all" : o.targets.join(", ")) + ": " +
          s.replied + " of " + s.total + " replied, " + s.ok + " ok" +
          (s.failed ? ", " + s.failed + " failed" : "") +
          (s.timedOut ? ", " + s.timedOut + " timed out" : "") +
          (o.settled ? "" : " \u2026"),
      );
      const items = o.results.map((t) =>
        el("li", {
          class: "t-" + t.state,
          "data-gateway": t.gatewayId,
          "data-state": t.state,
          textContent: t.gatewayId + ": " + t.state + (describe(t) ? " \u2014 " + describe(t) : ""),
        })
      );
      return el(
        "div",
        { class: "op", "data-op": o.id, "data-cmd": o.cmd, "data-settled": String(o.settled) },
        head,
        el("ul", {}, ...items),
      );
    }));
  }

  /**
   * @param {ExportJob[]} jobs
   * @param {Gateway[]} gateways
   */
  function renderExports(jobs, gateways) {
    const sel = select("export-gateway");
    const keep = sel.value;
    const ids = gateways.map((g) => g.id);
    if (sel.options.length !== ids.length || ids.some((id, i) => sel.options[i].value !== id)) {
      sel.replaceChildren(...ids.map((id) => el("option", { value: id, textContent: id })));
      if (ids.includes(keep)) sel.value = keep;
    }
    $("export-list").replaceChildren(...jobs.map((x) => {
      const what = x.gateway + " / " + x.device + (x.metric ? " / " + x.metric : "") + ", " +
        when(x.from) + " \u2192 " + (x.to ? when(x.to) : "now");
      const status = x.state === "running"
        ? "running: " + x.progress.pages + " page(s), " + x.progress.rows + " rows" +
          (x.progress.total !== null
            ? " of " + x.progress.total + " (" + x.progress.percent + "%)"
            : "")
        : x.state === "done"
        ? "complete: " + x.progress.rows + " rows in " + x.progress.pages + " page(s) "
        : "failed: " + x.error;
      const line = el(
        "div",
        { class: "job", "data-export": x.id, "data-state": x.state },
        el("div", {}, what),
        el("span", { class: x.state === "error" ? "error" : "", textContent: status }),
      );
      if (x.state === "done") {
        line.append(
          el("a", {
            href: "/api/exports/" + x.id + ".csv",
            download: x.name,
            textContent: "Download " + x.name,
          }),
        );
      }
      return line;
    }));
  }

  /** @param {number} ms */
  function localInput(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
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
      for (const [id, r] of rows) {
        r.box.checked = on;
        if (on) selected.add(id);
        else selected.delete(id);
      }
      updateSelection();
    });
    for (const b of document.querySelectorAll(".toolbar button[data-action]")) {
      if (!(b instanceof HTMLButtonElement)) continue;
      b.addEventListener(
        "click",
        () =>
          ask(
            /** @type {Action} */ (b.dataset.action),
            b.dataset.scope === "all" ? "all" : [...selected],
          ),
      );
    }
    $("confirm-yes").addEventListener("click", confirmPending);
    $("confirm-no").addEventListener("click", () => {
      pending = null;
      $("confirm").hidden = true;
    });
    for (const b of document.querySelectorAll("#export-form button[data-days]")) {
      if (!(b instanceof HTMLButtonElement)) continue;
      b.addEventListener("click", () => {
        input("export-from").value = localInput(Date.now() - Number(b.dataset.days) * 86400000);
        input("export-to").value = "";
      });
    }
    input("export-from").value = localInput(Date.now() - 30 * 86400000);
    $("export-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("export-error").textContent = "";
      const from = new Date(input("export-from").value).getTime();
      const toText = input("export-to").value;
      try {
        await api("/api/exports", {
          gateway: select("export-gateway").value,
          device: input("export-device").value.trim(),
          metric: input("export-metric").value.trim() || undefined,
          from,
          to: toText ? new Date(toText).getTime() : undefined,
        });
      } catch (e) {
        const message = /** @type {Error} */ (e).message;
        if (message !== "login required") $("export-error").textContent = message;
      }
    });
    setInterval(() => {
      // Ages move on between two snapshots.
      if (snap) {
        for (const g of snap.gateways) {
          const r = rows.get(g.id);
          if (r) {
            r.cells.seen.textContent = g.lastSeen
              ? age(Date.now() - skew - g.lastSeen) + " ago"
              : "-";
          }
        }
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
