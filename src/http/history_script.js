// @ts-check
/// <reference lib="dom" />
/**
 * The gateway page's history panel, served as `/history.js` beside `page.js` and independent of
 * it (both import the shared helpers of `common_script.js`): once the page is signed in (the
 * `#app` section shows), it lists the devices the buffer holds (`/api/history/series`), and for
 * the chosen device, metric and time range (1 h, 24 h, 7 d, 30 d or custom) draws the buckets
 * the gateway reduced the readings to (`/api/history`: mean line, min–max band). The CSV link
 * downloads the same range in the format of `outpost export` (`/api/history.csv`). Renders with
 * `textContent` and SVG attributes only.
 */
/** @typedef {import("./history_api.ts").HistoryResponse} History */
/** @typedef {import("./history_api.ts").HistoryPoint} HistoryPoint */
import { $, api, el, input } from "./common_script.js";
(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const BUCKETS = 500;
  const REFRESH_MS = 60_000;
  const W = 600;
  const H = 140;

  /** @type {{ devices: Record<string, string[]>, range: number | "custom", seq: number,
   *   timer: ReturnType<typeof setTimeout> | number, started: boolean }} */
  const state = { devices: {}, range: 86_400_000, seq: 0, timer: 0, started: false };

  /** @param {string} id */
  function select(id) {
    return /** @type {HTMLSelectElement} */ ($(id));
  }

  /** @param {number} n */
  function two(n) {
    return n < 10 ? "0" + n : String(n);
  }

  /** Local time as `2026-12-03 14:05`, the same in every locale. @param {number} ts */
  function when(ts) {
    const d = new Date(ts);
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes());
  }

  /** The value of a `datetime-local` input for `ts`. @param {number} ts */
  function localInput(ts) {
    return when(ts).replace(" ", "T");
  }

  /** @param {number} v */
  function num(v) {
    const a = Math.abs(v);
    return a >= 1000 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(4).replace(/\.?0+$/, "");
  }

  /** @param {number} ms */
  function span(ms) {
    const s = ms / 1000;
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  /** The chosen range, ms; null when a custom one is incomplete. */
  function bounds() {
    if (state.range !== "custom") {
      const to = Date.now();
      return { from: to - state.range, to };
    }
    const from = Date.parse(input("hist-from").value);
    const to = Date.parse(input("hist-to").value);
    if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) return null;
    return { from, to };
  }

  /** @param {{ from: number, to: number }} b */
  function query(b) {
    const p = new URLSearchParams({
      device: select("hist-device").value,
      from: String(Math.floor(b.from)),
      to: String(Math.ceil(b.to)),
    });
    const metric = select("hist-metric").value;
    if (metric) p.set("metric", metric);
    return p;
  }

  async function loadSeries() {
    const r = await api("/api/history/series");
    if (!r.ok) return;
    state.devices = (await r.json()).devices;
    const ids = Object.keys(state.devices).sort((a, b) =>
      a.localeCompare(b, "en", { numeric: true })
    );
    const dev = select("hist-device");
    const keep = dev.value;
    dev.replaceChildren(...ids.map((id) => {
      const o = el("option", null, id);
      o.value = id;
      return o;
    }));
    if (!ids.length) {
      $("hist-info").textContent = "No readings stored yet.";
      return;
    }
    dev.value = keep && state.devices[keep] ? keep : ids[0];
    fillMetrics();
  }

  function fillMetrics() {
    const m = select("hist-metric");
    const keep = m.value;
    const all = el("option", null, "all metrics");
    all.value = "";
    const metrics = state.devices[select("hist-device").value] || [];
    m.replaceChildren(
      all,
      ...metrics.map((name) => {
        const o = el("option", null, name);
        o.value = name;
        return o;
      }),
    );
    m.value = metrics.includes(keep) ? keep : "";
  }

  async function load() {
    clearTimeout(state.timer);
    if (!select("hist-device").value) return;
    const b = bounds();
    if (!b) {
      $("hist-info").textContent = "Choose a start and an end (the end after the start).";
      return;
    }
    const q = query(b);
    /** @type {HTMLAnchorElement} */ ($("hist-csv")).href = "/api/history.csv?" + q;
    const seq = ++state.seq;
    $("history").setAttribute("aria-busy", "true");
    const started = performance.now();
    let data;
    try {
      const r = await api("/api/history?" + q + "&buckets=" + BUCKETS);
      data = await r.json();
      if (!r.ok) throw new Error(data.error || "HTTP " + r.status);
    } catch (e) {
      if (seq === state.seq) {
        $("hist-info").textContent = "Cannot load the history: " + /** @type {Error} */ (e).message;
        $("history").removeAttribute("aria-busy");
      }
      return;
    }
    if (seq !== state.seq) return;
    render(/** @type {History} */ (data), performance.now() - started);
    $("history").removeAttribute("aria-busy");
    if (state.range !== "custom") state.timer = setTimeout(load, REFRESH_MS);
  }

  /**
   * @param {History} h
   * @param {number} tookMs
   */
  function render(h, tookMs) {
    const charts = [];
    for (const name of Object.keys(h.metrics)) {
      charts.push(chart(h, name, h.metrics[name].points, h.metrics[name].unit));
    }
    for (const name of Object.keys(h.text)) {
      const t = h.text[name];
      const card = el("article", "chart");
      card.dataset.metric = name;
      card.append(el("h3", null, name), el("p", "muted", t.n + " text readings, last: " + t.last));
      charts.push(card);
    }
    $("hist-charts").replaceChildren(...charts);
    const info = $("hist-info");
    info.dataset.rows = String(h.rows);
    info.textContent = h.rows.toLocaleString("en-US") + " readings of " + h.device + " from " +
      when(h.from) + " to " + when(h.to) + ", " + span(h.bucketMs) + " per point · " +
      Math.round(tookMs) + " ms (" + h.ms + " ms on the gateway)";
    if (!h.rows) info.textContent += " · no readings in this range";
  }

  /**
   * @param {History} h
   * @param {string} name
   * @param {HistoryPoint[]} pts
   * @param {string | null} unit
   */
  function chart(h, name, pts, unit) {
    const card = el("article", "chart");
    card.dataset.metric = name;
    card.dataset.points = String(pts.length);
    const title = el("h3", null, name);
    if (unit) title.append(el("small", null, unit));
    card.append(title);
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      if (p[2] < lo) lo = p[2];
      if (p[3] > hi) hi = p[3];
    }
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "history");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const range = hi - lo || 1;
    const x = (/** @type {number} */ t) => ((t + h.bucketMs / 2 - h.from) / (h.to - h.from)) * W;
    const y = (/** @type {number} */ v) => hi === lo ? H / 2 : 4 + (1 - (v - lo) / range) * (H - 8);
    for (const f of [0.25, 0.5, 0.75]) {
      const g = document.createElementNS(SVG_NS, "line");
      g.setAttribute("class", "grid");
      g.setAttribute("x1", "0");
      g.setAttribute("x2", String(W));
      g.setAttribute("y1", String(H * f));
      g.setAttribute("y2", String(H * f));
      svg.append(g);
    }
    if (pts.length) {
      const top = pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[3]).toFixed(1));
      const bottom = pts.slice().reverse().map((p) =>
        x(p[0]).toFixed(1) + "," + y(p[2]).toFixed(1)
      );
      const band = document.createElementNS(SVG_NS, "polygon");
      band.setAttribute("class", "band");
      band.setAttribute("points", top.concat(bottom).join(" "));
      const avg = document.createElementNS(SVG_NS, "polyline");
      avg.setAttribute("class", "avg");
      avg.setAttribute(
        "points",
        pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "),
      );
      svg.append(band, avg);
      // Few buckets (readings only lately, or sparse): a dot each, so they are not lost.
      if (pts.length <= 20) {
        for (const p of pts) {
          const dot = document.createElementNS(SVG_NS, "circle");
          dot.setAttribute("cx", x(p[0]).toFixed(1));
          dot.setAttribute("cy", y(p[1]).toFixed(1));
          dot.setAttribute("r", "2.5");
          svg.append(dot);
        }
      }
    }
    const label = name + ": " + pts.length + " points" +
      (pts.length ? ", min " + num(lo) + ", max " + num(hi) : "");
    svg.setAttribute("aria-label", label);
    const t = document.createElementNS(SVG_NS, "title");
    t.textContent = label;
    svg.append(t);
    card.append(svg);
    const axis = el("div", "axis");
    axis.append(
      el("span", null, when(h.from)),
      el("span", null, pts.length ? "min " + num(lo) + " · max " + num(hi) : "no readings"),
      el("span", null, when(h.to)),
    );
    card.append(axis);
    return card;
  }

  /** @param {number | "custom"} range */
  function choose(range) {
    state.range = range;
    for (const b of $("history").querySelectorAll("[data-range]")) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-range") === String(range)));
    }
    $("hist-custom").hidden = range !== "custom";
    if (range === "custom" && !input("hist-from").value) {
      const to = Date.now();
      input("hist-from").value = localInput(to - 86_400_000);
      input("hist-to").value = localInput(to);
    }
    load();
  }

  for (const b of $("history").querySelectorAll("[data-range]")) {
    b.addEventListener("click", () => {
      const r = b.getAttribute("data-range");
      choose(r === "custom" ? "custom" : Number(r));
    });
  }
  $("hist-apply").addEventListener("click", () => load());
  $("hist-device").addEventListener("change", () => {
    fillMetrics();
    load();
  });
  $("hist-metric").addEventListener("change", () => load());
  // A click on a device's name on the page shows its history.
  $("devices").addEventListener("click", (e) => {
    const h = /** @type {Element} */ (e.target).closest("[data-device] h3");
    const card = h && h.closest("[data-device]");
    const id = card && /** @type {HTMLElement} */ (card).dataset.device;
    if (!id || !state.devices[id]) return;
    select("hist-device").value = id;
    fillMetrics();
    load();
    $("history").scrollIntoView({ behavior: "smooth", block: "start" });
  });

  /** Signed out: nothing of the gateway's data stays in the page. */
  function stop() {
    clearTimeout(state.timer);
    state.seq++;
    state.started = false;
    state.devices = {};
    select("hist-device").replaceChildren();
    fillMetrics();
    $("hist-charts").replaceChildren();
    $("hist-info").textContent = "";
    /** @type {HTMLAnchorElement} */ ($("hist-csv")).href = "#";
  }

  async function start() {
    if ($("app").hidden) {
      if (state.started) stop();
      return;
    }
    if (state.started) return;
    state.started = true;
    await loadSeries();
    await load();
  }
  new MutationObserver(start).observe($("app"), { attributes: true, attributeFilter: ["hidden"] });
  start();
})();
