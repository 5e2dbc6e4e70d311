// @ts-check
/// <reference lib="dom" />
/**
 * The fleet page's lists, served as `/fleet-lists.js` before `/fleet.js`: the commands sent from
 * the page with each gateway's replies (and a button to view a whole result), and the CSV
 * exports with their form. Rendering uses `textContent` only.
 */
/** @typedef {import("./serve_live.ts").FleetSnapshot} Snapshot */
/** @typedef {Snapshot["ops"][number]} Op */
/** @typedef {Op["results"][number]} Target */
/** @typedef {Snapshot["exports"][number]} ExportJob */
/**
 * @typedef {object} Lists
 * @property {(ops: Op[]) => void} renderOps the commands, newest first
 * @property {(jobs: ExportJob[]) => void} renderExports the exports, newest first
 */
/**
 * @typedef {object} ListsContext
 * @property {(id: string) => HTMLElement} $
 * @property {(tag: string, props?: Record<string, unknown>, ...kids: (Node | string)[]) => any} el
 * @property {(path: string, body?: unknown) => Promise<any>} api
 * @property {(ms: number | null | undefined) => string} when
 * @property {(ms: number) => string} elapsed
 * @property {import("./page_results.js").ResultsView} results
 */
"use strict";
/** @param {ListsContext} ctx @returns {Lists} */
function outpostFleetLists({ $, el, api, when, elapsed, results }) {
  /** @param {string} id */
  const input = (id) => /** @type {HTMLInputElement} */ ($(id));

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
      parts.push(typeof t.result === "string" ? t.result : JSON.stringify(t.result));
    }
    if (t.pages) parts.push(t.pages + " page(s)");
    return parts.join("; ");
  }

  /** @param {Op[]} list */
  function renderOps(list) {
    $("no-ops").hidden = list.length > 0;
    $("op-list").replaceChildren(...list.map((o) => {
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
      const items = o.results.map((t) => {
        const li = el("li", {
          class: "t-" + t.state,
          "data-gateway": t.gatewayId,
          "data-state": t.state,
          textContent: t.gatewayId + ": " + t.state + (describe(t) ? " \u2014 " + describe(t) : ""),
        });
        if (t.finished && (t.resultChars > 0 || t.pages > 0) && !t.after) {
          const b = el("button", { type: "button", textContent: "View result", "data-view": "" });
          b.addEventListener("click", () => results.show(o.id, t.gatewayId));
          li.append(" ", b);
        }
        return li;
      });
      results.settled(o);
      return el(
        "div",
        { class: "op", "data-op": o.id, "data-cmd": o.cmd, "data-settled": String(o.settled) },
        head,
        el("ul", {}, ...items),
      );
    }));
  }

  /** @param {ExportJob[]} list */
  function renderExports(list) {
    $("export-list").replaceChildren(...list.map((x) => {
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
  const utcInput = (ms) => new Date(ms).toISOString().slice(0, 16);
  /** @param {string} v */
  const fromUtcInput = (v) => v ? new Date(v + "Z").getTime() : undefined;
  for (const b of document.querySelectorAll("#export-form button[data-days]")) {
    if (!(b instanceof HTMLButtonElement)) continue;
    b.addEventListener("click", () => {
      input("export-from").value = utcInput(Date.now() - Number(b.dataset.days) * 86400000);
      input("export-to").value = "";
    });
  }
  input("export-from").value = utcInput(Date.now() - 30 * 86400000);
  $("export-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("export-error").textContent = "";
    try {
      await api("/api/exports", {
        gateway: input("export-gateway").value.trim(),
        device: input("export-device").value.trim(),
        metric: input("export-metric").value.trim() || undefined,
        from: fromUtcInput(input("export-from").value),
        to: fromUtcInput(input("export-to").value),
      });
    } catch (e) {
      const message = /** @type {Error} */ (e).message;
      if (message !== "login required") $("export-error").textContent = message;
    }
  });

  return { renderOps, renderExports };
}
/** @type {any} */ (globalThis).outpostFleetLists = outpostFleetLists;
