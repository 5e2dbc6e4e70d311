// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's device cards, served as `/devices_script.js` and imported by `page.js`,
 * which calls them with every dashboard poll: each device's state, its latest values and a
 * trend line per metric (inline SVG from the points the page keeps). Renders with `textContent`
 * and SVG attributes only.
 */
/** @typedef {import("./server.ts").DashboardResponse} Dashboard */
/** @typedef {Dashboard["status"]} Status */
/** @typedef {import("./history.ts").TrendPoint} TrendPoint */
/** @typedef {Record<string, Record<string, TrendPoint[]>>} Trends */
/** @typedef {Status["adapters"][number]["devices"][string]} DeviceState */
import { $, badge, el, fmtAge, fmtValue, input } from "./common_script.js";

const MAX_DEVICES = 300;
const STALE_MS = 5 * 60 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";

/** @param {TrendPoint[] | undefined} points */
function sparkline(points) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "trend");
  svg.setAttribute("viewBox", "0 0 120 32");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  if (!points || points.length < 2) {
    svg.setAttribute("aria-label", "trend: not enough points yet");
    return svg;
  }
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of points) {
    if (p[1] < lo) lo = p[1];
    if (p[1] > hi) hi = p[1];
  }
  const span = hi - lo || 1;
  const pad = 3;
  const xy = points.map((p) => {
    const x = t1 === t0 ? 120 : ((p[0] - t0) / (t1 - t0)) * 120;
    const y = hi === lo ? 16 : pad + (1 - (p[1] - lo) / span) * (32 - 2 * pad);
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", xy.join(" "));
  svg.append(line);
  const label = "trend over " + fmtAge(t1 - t0) + ": min " + fmtValue(lo) + ", max " +
    fmtValue(hi);
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG_NS, "title");
  title.textContent = label;
  svg.append(title);
  return svg;
}

/** @param {Status} s */
function deviceStates(s) {
  /** @type {Record<string, DeviceState>} */
  const out = {};
  for (const a of s.adapters) {
    for (const id of Object.keys(a.devices)) out[id] = a.devices[id];
  }
  return out;
}

/**
 * The device cards, at most {@link MAX_DEVICES}, narrowed by the filter box.
 * @param {Dashboard} d
 * @param {Trends} trends the trend points the page keeps, by device and metric
 */
export function renderDevices(d, trends) {
  const s = d.status;
  const filter = input("device-filter").value.trim().toLowerCase();
  const states = deviceStates(s);
  const ids = Object.keys(s.devices).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const shown = [];
  for (const id of ids) {
    if (shown.length >= MAX_DEVICES) break;
    const metrics = Object.keys(s.devices[id]).sort();
    if (
      filter && !id.toLowerCase().includes(filter) &&
      !metrics.some((m) => m.toLowerCase().includes(filter))
    ) continue;
    shown.push(deviceCard(d, id, metrics, states[id], trends[id] || {}));
  }
  $("devices").replaceChildren(...shown);
  if (!ids.length) {
    $("devices").append(el("p", "muted", "No readings yet."));
  }
  $("device-count").textContent = ids.length === shown.length
    ? ids.length + (ids.length === 1 ? " device" : " devices")
    : "showing " + shown.length + " of " + ids.length + " devices";
}

/**
 * @param {Dashboard} d
 * @param {string} id
 * @param {string[]} metrics
 * @param {DeviceState | undefined} st
 * @param {Record<string, TrendPoint[]>} trends
 */
function deviceCard(d, id, metrics, st, trends) {
  const card = el("article", "device");
  card.dataset.device = id;
  const head = el("header");
  head.append(el("h3", null, id));
  if (st) head.append(...presence(d, st));
  card.append(head);
  for (const m of metrics) {
    const lv = d.status.devices[id][m];
    const age = d.now - lv.ts;
    const row = el("div", "metric" + (age > STALE_MS ? " stale" : ""));
    row.dataset.metric = m;
    const value = el("div", "value");
    const v = el("span", "v", fmtValue(lv.value));
    value.append(v);
    if (lv.unit) value.append(el("small", null, lv.unit));
    value.append(el("span", "age", fmtAge(age) + " ago"));
    row.append(el("div", "name", m), value, sparkline(trends[m]));
    card.append(row);
  }
  return card;
}

/**
 * A device's state badge and when its last reading arrived (`src/presence.ts` derives both).
 * @param {Dashboard} d
 * @param {DeviceState} st
 */
function presence(d, st) {
  const b = badge(st.state, st.state === "online" ? "ok" : "bad");
  b.classList.add("presence");
  const seen = st.lastSeen === null ? "no reading yet" : "seen " + fmtAge(d.now - st.lastSeen) +
    " ago";
  b.title = (st.reason ? st.reason + "; " : "") + seen + "; offline after " +
    fmtAge(st.offlineAfterMs) + " without a reading";
  return [b, el("span", "seen muted", seen)];
}
