// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's host checklist, served as `/doctor_script.js` and imported by `page.js`,
 * which calls it with every dashboard poll. Renders with `textContent` only.
 */
/** @typedef {import("./server.ts").DashboardResponse} Dashboard */
/** @typedef {import("../doctor/mod.ts").DoctorReport} DoctorReport */
import { $, ago, badge, el, tbody } from "./common_script.js";

/** @type {Record<string, [string, number]>} */
const VERDICT = { fail: ["bad", 0], warn: ["warn", 1], pass: ["ok", 2], skip: ["idle", 3] };

/**
 * The host checklist (`outpost doctor`, run by the gateway at start and every 6 h): what fails
 * first, each with what was found and the fix.
 * @param {Dashboard} d
 */
export function renderDoctor(d) {
  const r = /** @type {DoctorReport | undefined} */ (d.status.doctor);
  $("doctor-section").hidden = !r;
  if (!r) return;
  const sm = r.summary;
  $("doctor-summary").textContent = sm.fail + " fail · " + sm.warn + " warn · " + sm.pass +
    " pass · " + sm.skip + " skip — checked " + ago(d.now, r.at) +
    "; outpost doctor on the gateway re-checks";
  const checks = r.checks.slice().sort((a, b) => VERDICT[a.verdict][1] - VERDICT[b.verdict][1]);
  tbody("doctor").replaceChildren(...checks.map((c) => {
    const tr = el("tr");
    tr.dataset.check = c.id;
    const verdict = el("td");
    verdict.append(badge(c.verdict, VERDICT[c.verdict][0]));
    const found = el("td", "wide", c.reason);
    if (c.fix && c.verdict !== "pass") found.append(el("div", "muted", "Fix: " + c.fix));
    const name = el("td", null, c.title);
    name.title = c.id;
    tr.append(name, verdict, found);
    return tr;
  }));
}
