// @ts-check
/// <reference lib="dom" />
/**
 * The fleet page's result view, served as `/fleet-results.js` before `/fleet.js`: the form that
 * sends status, logs, config-get and query to one gateway (signed by the console, as the CLI
 * does), and the view of a whole result — log lines, the config, the status as JSON, a query's
 * rows 200 to a screen with Previous/Next — in a box that scrolls. Nothing is cut.
 */
/**
 * @typedef {object} ResultsView
 * @property {(gateway: string, cmd: string, send: boolean) => void} prepare fills the form for
 *   one gateway, and sends it when `send`
 * @property {(op: string, gateway: string) => Promise<void>} show shows one gateway's result
 * @property {(op: { id: string, settled: boolean, results: { gatewayId: string, finished: boolean }[] }) => void} settled
 *   tells the view a command changed (it opens the result of the one it sent when it is in)
 */
/**
 * @typedef {object} ResultsContext
 * @property {(id: string) => HTMLElement} $
 * @property {(tag: string, props?: Record<string, unknown>, ...kids: (Node | string)[]) => any} el
 * @property {(path: string, body?: unknown) => Promise<any>} api
 * @property {(ms: number | null | undefined) => string} when
 */
"use strict";
/** @param {ResultsContext} ctx @returns {ResultsView} */
function outpostFleetResults({ $, el, api, when }) {
  /** @param {string} id */
  const input = (id) => /** @type {HTMLInputElement} */ ($(id));
  const PAGE_ROWS = 200;
  const COLUMNS = ["seq", "time", "device", "metric", "value", "unit", "forwarded"];
  /** @type {{ op: string, gateway: string } | null} the command sent from the form */
  let awaiting = null;
  /** @type {unknown[][]} */
  let rows = [];
  let at = 0;
  /** @type {Map<string, Parameters<ResultsView["settled"]>[0]>} the latest state of each command */
  const latest = new Map();

  function showFields() {
    const cmd = /** @type {HTMLSelectElement} */ ($("read-cmd")).value;
    for (const g of document.querySelectorAll("#read-form [data-for]")) {
      if (g instanceof HTMLElement) g.hidden = g.dataset.for !== cmd;
    }
  }

  /** @param {string} v */
  const fromUtcInput = (v) => v ? new Date(v + "Z").getTime() : undefined;

  async function send() {
    $("read-error").textContent = "";
    const cmd = /** @type {HTMLSelectElement} */ ($("read-cmd")).value;
    const gateway = input("read-gateway").value.trim();
    /** @type {Record<string, unknown>} */
    const args = cmd === "logs"
      ? { lines: input("read-lines").value, level: input("read-level").value }
      : cmd === "query"
      ? {
        device: input("query-device").value,
        metric: input("query-metric").value,
        from: fromUtcInput(input("query-from").value),
        to: fromUtcInput(input("query-to").value),
        limit: input("query-limit").value,
      }
      : {};
    try {
      const r = await api("/api/commands", { cmd, targets: [gateway], args });
      awaiting = { op: r.op, gateway };
      title(cmd + " of " + gateway + ": waiting for the reply\u2026");
      $("result").hidden = false;
      $("result-text").textContent = "";
      $("result-rows").replaceChildren();
      $("result-pager").hidden = true;
      // The reply may have come in before the answer to the POST did.
      const seen = latest.get(r.op);
      if (seen) settled(seen);
    } catch (e) {
      const message = /** @type {Error} */ (e).message;
      if (message !== "login required") $("read-error").textContent = message;
    }
  }

  /** @param {string} text */
  function title(text) {
    $("result-title").textContent = text;
  }

  /**
   * One line of a `logs` reply. Its fields are beside `msg` (this build, the shape of stdout and
   * /logs) or under `fields` (gateways of earlier builds, epoch-ms `ts`).
   * @param {unknown} l
   */
  function logLine(l) {
    const r = /** @type {Record<string, unknown>} */ (l && typeof l === "object" ? l : {});
    const ts = typeof r.ts === "number" ? r.ts : typeof r.ts === "string" ? Date.parse(r.ts) : null;
    const { ts: _ts, level: _level, component: _component, msg: _msg, ...rest } = r;
    const keys = Object.keys(rest);
    const f = keys.length === 1 && keys[0] === "fields" && rest.fields !== null &&
        typeof rest.fields === "object" && !Array.isArray(rest.fields)
      ? rest.fields
      : rest;
    const fields = Object.keys(/** @type {object} */ (f)).length ? " " + JSON.stringify(f) : "";
    return when(ts) + "  " + String(r.level || "-").padEnd(5) + "  " +
      (r.component ? "[" + r.component + "] " : "") + String(r.msg ?? "") + fields;
  }

  function showRows() {
    const end = Math.min(rows.length, at + PAGE_ROWS);
    const body = rows.slice(at, end).map((row) =>
      el(
        "tr",
        {},
        ...row.map((v, i) =>
          el("td", { textContent: i === 1 ? when(Number(v)) : String(v ?? "") })
        ),
      )
    );
    $("result-rows").replaceChildren(
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ...COLUMNS.map((c) => el("th", { textContent: c })))),
        el("tbody", {}, ...body),
      ),
    );
    $("result-range").textContent = rows.length
      ? "rows " + (at + 1) + "\u2013" + end + " of " + rows.length
      : "no rows";
    /** @type {HTMLButtonElement} */ ($("result-prev")).disabled = at === 0;
    /** @type {HTMLButtonElement} */ ($("result-next")).disabled = end >= rows.length;
    $("result-pager").hidden = false;
  }

  /** @param {string} op @param {string} gateway */
  async function show(op, gateway) {
    $("read-error").textContent = "";
    let r;
    try {
      r = await api("/api/commands/" + op + "/" + encodeURIComponent(gateway));
    } catch (e) {
      const message = /** @type {Error} */ (e).message;
      if (message !== "login required") $("read-error").textContent = message;
      return;
    }
    $("result").hidden = false;
    $("result").setAttribute("data-op", op);
    $("result").setAttribute("data-gateway", gateway);
    $("result").setAttribute("data-cmd", r.cmd);
    title(r.cmd + " of " + gateway + ": " + r.state);
    $("result-rows").replaceChildren();
    $("result-pager").hidden = true;
    const res = r.result;
    let text = "";
    if (r.error) text = r.error.code + ": " + r.error.message;
    else if (r.note) text = r.note + (res ? "\n# " + JSON.stringify(res) : "");
    else if (r.rows) {
      rows = r.rows;
      at = 0;
      showRows();
      text = res ? "# " + JSON.stringify(res) : "";
    } else if (r.cmd === "logs" && res && Array.isArray(res.lines)) {
      text = res.lines.map(logLine).join("\n") +
        (res.truncated ? "\n(older lines left out: the reply has a size limit)" : "");
    } else if (r.cmd === "config-get" && res && typeof res.yaml === "string") {
      text = Object.entries(res).filter(([k]) => k !== "yaml").map(([k, v]) => "# " + k + ": " + v)
        .join("\n") + "\n" + res.yaml;
    } else if (res !== null && res !== undefined) {
      text = typeof res === "string" ? res : JSON.stringify(res, null, 2);
    }
    $("result-text").textContent = text;
  }

  /** @type {ResultsView["settled"]} */
  function settled(op) {
    latest.set(op.id, op);
    if (latest.size > 50) latest.delete(/** @type {string} */ (latest.keys().next().value));
    if (!awaiting || op.id !== awaiting.op) return;
    const gw = awaiting.gateway;
    const t = op.results.find((x) => x.gatewayId === gw);
    if (!t || !t.finished) return;
    awaiting = null;
    show(op.id, gw);
  }

  $("read-cmd").addEventListener("change", showFields);
  $("read-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send();
  });
  $("result-close").addEventListener("click", () => {
    $("result").hidden = true;
  });
  $("result-prev").addEventListener("click", () => {
    at = Math.max(0, at - PAGE_ROWS);
    showRows();
  });
  $("result-next").addEventListener("click", () => {
    if (at + PAGE_ROWS < rows.length) at += PAGE_ROWS;
    showRows();
  });
  input("query-from").value = new Date(Date.now() - 86400000).toISOString().slice(0, 16);
  showFields();

  return {
    prepare(gateway, cmd, now) {
      input("read-gateway").value = gateway;
      /** @type {HTMLSelectElement} */ ($("read-cmd")).value = cmd;
      showFields();
      $("read").scrollIntoView({ block: "nearest" });
      if (now) send();
      else input("query-device").focus();
    },
    show,
    settled,
  };
}
/** @type {any} */ (globalThis).outpostFleetResults = outpostFleetResults;
