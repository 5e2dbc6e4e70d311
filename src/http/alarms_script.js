// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's alarms panel, served as `/alarms_script.js` and imported by `page.js`: the
 * active, acknowledged and recent alarms from `/api/alarms`, refreshed after every dashboard
 * poll, and the acknowledge and clear buttons. Renders with `textContent` only.
 */
/** @typedef {import("./alarms.ts").AlarmsResponse} AlarmsResponse */
/** @typedef {AlarmsResponse["active"][number]} ActiveAlarm */
/** @typedef {AlarmsResponse["history"][number]} AlarmHistoryEntry */
import { $, api, badge, clock, el, fmtValue, tbody } from "./common_script.js";

/**
 * The panel, tied to the page's session: `running()` says whether the page is signed in and
 * polling, `signedOut(message)` shows the sign-in form when the session is gone.
 * @param {{ running: () => boolean, signedOut: (message: string) => void }} session
 */
export function alarmsPanel(session) {
  /** @type {Record<string, string>} */
  const SEVERITY_KIND = { critical: "bad", warning: "warn", info: "idle" };

  /** Date and 24 h time in UTC, the same in every locale (as every time on the page). */
  const stamp = clock;

  function clearAlarms() {
    for (const id of ["alarms-active", "alarms-acked", "alarms-history"]) {
      tbody(id).replaceChildren();
    }
    $("alarms").hidden = true;
    $("alarms-count").textContent = "";
    $("alarms-error").hidden = true;
  }

  /** Fetches `/api/alarms` and renders the panel; a failure leaves the panel as it was. */
  async function refreshAlarms() {
    try {
      const res = await api("/api/alarms?history=100", { cache: "no-store" });
      if (!res.ok || !session.running()) return;
      renderAlarms(/** @type {AlarmsResponse} */ (await res.json()));
    } catch {
      // The dashboard poll reports an unreachable gateway.
    }
  }

  /**
   * @param {string} text
   * @param {string} what
   * @param {string} key
   */
  function alarmButton(text, what, key) {
    const b = el("button", null, text);
    b.type = "button";
    b.dataset.action = what;
    b.addEventListener("click", () => alarmAction(what, key, b));
    return b;
  }

  /**
   * @param {string} what "acknowledge" or "clear"
   * @param {string} key
   * @param {HTMLButtonElement} button
   */
  async function alarmAction(what, key, button) {
    const err = $("alarms-error");
    button.disabled = true;
    try {
      const res = await api("/api/alarms/" + what, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key }),
      });
      if (res.status === 401) {
        session.signedOut("Signed out: the session expired or the access token was changed.");
        return;
      }
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || "HTTP " + res.status);
      }
      err.hidden = true;
    } catch (e) {
      err.textContent = "Cannot " + what + " " + key + ": " + /** @type {Error} */ (e).message;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
    await refreshAlarms();
  }

  /** @param {ActiveAlarm | AlarmHistoryEntry} a */
  function alarmValue(a) {
    return a.value === undefined ? "–" : fmtValue(a.value);
  }

  /**
   * @param {ActiveAlarm} a
   * @param {boolean} acked
   */
  function activeRow(a, acked) {
    const tr = el("tr");
    tr.dataset.alarm = a.key;
    const sev = el("td");
    sev.append(badge(a.severity, SEVERITY_KIND[a.severity] || "idle"));
    const actions = el("td", "actions");
    if (!acked) actions.append(alarmButton("Acknowledge", "acknowledge", a.key));
    actions.append(alarmButton("Clear", "clear", a.key));
    tr.append(
      sev,
      el("td", null, a.key),
      el("td", null, a.message),
      el("td", "num", alarmValue(a)),
      el("td", "when", stamp(a.raisedAt)),
    );
    if (acked && a.acknowledged) {
      tr.append(el("td", "when", stamp(a.acknowledged.at) + " by " + a.acknowledged.by));
    }
    tr.append(actions);
    return tr;
  }

  /**
   * @param {string} id
   * @param {HTMLTableRowElement[]} rows
   * @param {string} empty
   */
  function fillTable(id, rows, empty) {
    if (!rows.length) {
      const table = /** @type {HTMLTableElement} */ ($(id));
      const td = el("td", "muted", empty);
      td.colSpan = table.tHead ? table.tHead.rows[0].cells.length : 1;
      const tr = el("tr");
      tr.append(td);
      rows.push(tr);
    }
    tbody(id).replaceChildren(...rows);
  }

  /** @param {AlarmsResponse} d */
  function renderAlarms(d) {
    $("alarms").hidden = !d.configured && !d.active.length && !d.history.length;
    const open = d.active.filter((a) => !a.acknowledged);
    const acked = d.active.filter((a) => a.acknowledged);
    $("alarms-count").textContent = open.length + " active, " + acked.length + " acknowledged";
    fillTable("alarms-active", open.map((a) => activeRow(a, false)), "No active alarm.");
    fillTable("alarms-acked", acked.map((a) => activeRow(a, true)), "None acknowledged.");
    fillTable(
      "alarms-history",
      d.history.map((h) => {
        const tr = el("tr");
        tr.dataset.alarm = h.key;
        tr.dataset.to = h.to;
        tr.append(
          el("td", "when", stamp(h.ts)),
          el("td", null, h.key),
          el("td", null, h.to),
          el("td", "num", alarmValue(h)),
          el("td", null, h.severity),
          el("td", null, h.by || ""),
        );
        return tr;
      }),
      "No alarm transitions yet.",
    );
  }

  return { refresh: refreshAlarms, clear: clearAlarms };
}
