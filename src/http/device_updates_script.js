// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's device updates table, served as `/device_updates_script.js` and imported by
 * `page.js`, which calls it with every dashboard poll. Renders with `textContent` only.
 */
/** @typedef {import("./server.ts").DashboardResponse["status"]} Status */
/** @typedef {import("../devices/mod.ts").DevicesStatus} DevicesStatus */
import { $, badge, el, tbody } from "./common_script.js";

/** @type {Record<string, string>} */
const UPDATE_KIND = {
  current: "ok",
  offered: "warn",
  downloading: "warn",
  installed: "warn",
  failed: "bad",
  "rolled-back": "bad",
};

/**
 * Field devices' firmware and model updates (`/status` → `devices`), when configured.
 * @param {Status} s
 */
export function renderDeviceUpdates(s) {
  const dv = /** @type {DevicesStatus | undefined} */ (s.deviceUpdates);
  $("device-updates-section").hidden = !dv;
  if (!dv) return;
  const notes = [];
  for (const [cls, r] of Object.entries(dv.rollouts)) {
    notes.push(
      cls + ": " + r.name + " " + r.version + " " + r.status +
        (r.failures ? ", " + r.failures + " failed" : ""),
    );
  }
  for (const [name, a] of Object.entries(dv.artifacts)) {
    if (a.refused) {
      notes.push(name + " " + a.refused.version + " refused (" + a.refused.code + ")");
    }
  }
  $("device-rollouts").textContent = notes.join(" · ") || "No device artifact on the channel";
  tbody("device-updates").replaceChildren(...dv.devices.map((x) => {
    const tr = el("tr");
    tr.dataset.device = x.id;
    const st = el("td");
    st.append(badge(x.state, UPDATE_KIND[x.state] || "idle"));
    tr.append(
      el("td", null, x.id),
      el("td", null, x.class),
      st,
      el("td", null, x.running || "–"),
      el("td", null, x.target ? x.target.version : "–"),
      el("td", "muted", x.error || ""),
    );
    return tr;
  }));
}
