// @ts-check
/// <reference lib="dom" />
/**
 * The fleet page's device-updates cell, served as `/fleet-updates.js` before `/fleet.js`: each
 * class whose rollout stopped at its failure threshold gets a Resume button that sends the
 * signed `devices-resume` command to that gateway (the gateway grants it to keys with the
 * `operate` scope), and the cell shows how it went. Rendering uses `textContent` only.
 */
/** @typedef {import("./serve_live.ts").FleetSnapshot} Snapshot */
/** @typedef {Snapshot["gateways"][number]} Gateway */
/** @typedef {Snapshot["ops"][number]} Op */
/**
 * @typedef {object} Updates
 * @property {(cell: HTMLElement, g: Gateway, why: string) => void} fill renders the cell of
 *   `g`; `why` is why commands to it are disabled ("" when they are not)
 * @property {(ops: Op[]) => void} opsChanged takes the commands' latest state
 */
/**
 * @typedef {object} UpdatesContext
 * @property {(tag: string, props?: Record<string, unknown>, ...kids: (Node | string)[]) => any} el
 * @property {(path: string, body?: unknown) => Promise<any>} api
 * @property {() => void} refresh redraws the rows in view
 */
"use strict";
/**
 * The body `POST /api/commands` takes to resume the rollout of `cls` on gateway `id`.
 * @param {string} id
 * @param {string} cls
 */
function outpostResumeRequest(id, cls) {
  return { cmd: "devices-resume", targets: [id], args: { class: cls } };
}

/** @param {UpdatesContext} ctx @returns {Updates} */
function outpostFleetUpdates({ el, api, refresh }) {
  /**
   * The last resume sent per gateway and class, and how it went.
   * @type {Map<string, { gateway: string, cls: string, op: string | null, note: string, busy: boolean, full?: Promise<unknown>, result?: unknown }>}
   */
  const sent = new Map();
  /** @type {Op[]} the commands as last patched (a command's patch may beat its POST's answer) */
  let latest = [];
  /** @param {string} id @param {string} cls */
  const keyOf = (id, cls) => id + "\n" + cls;

  /** Why `g` refuses a resume from this console's key, or "". @param {Gateway} g */
  function lacksScope(g) {
    const o = g.operator;
    if (o === null) return "this console signs nothing (no --key): " + g.id + " refuses it";
    if (!o || o.scopes.includes("operate")) return "";
    return "this console's key has no operate scope on " + g.id + " (it has " +
      (o.scopes.join(", ") || "none") + ")";
  }

  /** @param {Gateway} g @param {string} cls */
  async function resume(g, cls) {
    const k = keyOf(g.id, cls);
    sent.set(k, { gateway: g.id, cls, op: null, note: "resume sent", busy: true });
    refresh();
    try {
      const r = await api("/api/commands", outpostResumeRequest(g.id, cls));
      const s = sent.get(k);
      if (s && s.op === null) s.op = r.op;
      opsChanged(latest);
    } catch (e) {
      sent.set(k, {
        gateway: g.id,
        cls,
        op: null,
        note: "not sent: " + /** @type {Error} */ (e).message,
        busy: false,
      });
    }
    refresh();
  }

  /** @type {Updates["fill"]} */
  function fill(cell, g, why) {
    const d = g.deviceUpdates;
    const stopped = d ? d.stoppedClasses : [];
    const off = why || lacksScope(g);
    const mine = [...sent.values()].filter((s) => s.gateway === g.id);
    // Rebuilt only when something shown changed: a patch a second must not eat a click.
    const sig = JSON.stringify([d && d.label, stopped, off, mine]);
    if (cell.getAttribute("data-sig") === sig) return;
    cell.setAttribute("data-sig", sig);
    cell.className = d && d.stopped ? "bad" : "";
    // One class a line: a long label is cut in the cell.
    cell.title = d ? d.label.split("; ").join("\n") : "not published by this gateway";
    /** @type {(Node | string)[]} */
    const kids = [];
    for (const cls of stopped) {
      const s = sent.get(keyOf(g.id, cls));
      const b = el("button", {
        type: "button",
        textContent: stopped.length > 1 ? "Resume " + cls : "Resume",
        "data-resume": cls,
        disabled: off !== "" || (s ? s.busy : false),
        title: off || "resume the stopped rollout of " + cls + " (devices-resume, operate scope)",
      });
      b.addEventListener("click", () => resume(g, cls));
      kids.push(b, " ");
    }
    // The outcome of each resume sent from here, also once the rollout runs again.
    for (const s of mine) {
      kids.push(el("span", { class: "resume-note", "data-note": s.cls, title: s.note }, s.note));
      kids.push(" ");
    }
    kids.push(d ? d.label : "-");
    cell.replaceChildren(...kids);
  }

  /** @param {{ version?: unknown, status?: unknown } | null} r a done reply's result */
  const resumed = (r) =>
    "resumed" + (r && typeof r.version === "string" ? " " + r.version : "") +
    (r && typeof r.status === "string" ? ", " + r.status : "");

  /** @type {Updates["opsChanged"]} */
  function opsChanged(ops) {
    latest = ops;
    let changed = false;
    for (const s of sent.values()) {
      const o = s.op && ops.find((x) => x.id === s.op);
      const t = o && o.results.find((x) => x.gatewayId === s.gateway);
      if (!t) continue;
      if (t.finished && !t.error && t.result === null && t.resultChars > 0 && !s.full) {
        // Longer than a line, so not in the patch: the whole result is one request away.
        s.full = api("/api/commands/" + s.op + "/" + encodeURIComponent(s.gateway)).then(
          (x) => {
            s.result = x.result;
            opsChanged(latest);
          },
          () => {},
        );
      }
      const note = !t.finished
        ? "resume " + t.state
        : t.error
        ? "resume failed: " + t.error.code + ": " + t.error.message
        : resumed(/** @type {any} */ (t.result ?? s.result ?? null));
      if (note !== s.note || s.busy !== !t.finished) {
        s.note = note;
        s.busy = !t.finished;
        changed = true;
      }
    }
    if (changed) refresh();
  }

  return { fill, opsChanged };
}

/** @type {any} */ (globalThis).outpostFleetUpdates = outpostFleetUpdates;
