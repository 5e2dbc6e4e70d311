// @ts-check
/// <reference lib="dom" />
/**
 * What the gateway page's scripts share, served as `/common_script.js` and imported by them as an
 * ES module: element look-up and creation, the number, age and date formats, and `fetch` with
 * the session cookie. Everything renders with `textContent`, never markup.
 */
/** A row of a <dl>: label, value, class, title. */
/** @typedef {[string, string, (string | null)?, string?]} DlRow */

// The page shell (page.ts) is fixed: every id looked up here exists.
/** @param {string} id */
export function $(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

/** @param {string} id */
export function input(id) {
  return /** @type {HTMLInputElement} */ ($(id));
}

/** @param {string} id */
export function tbody(id) {
  return /** @type {HTMLTableElement} */ ($(id)).tBodies[0];
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string | null} [cls]
 * @param {unknown} [text]
 */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** @param {unknown} n */
export function fmtCount(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "–";
}

/** @param {number | null | undefined} ms */
export function fmtAge(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + (s % 60) + " s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h " + (m % 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

/** @param {number} n */
export function fmtBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

/** @param {number | null | undefined} r */
export function fmtRate(r) {
  return r === null || r === undefined ? "–" : r.toFixed(r >= 100 ? 0 : 1) + "/s";
}

/** @param {unknown} v */
export function fmtValue(v) {
  if (typeof v === "number") {
    const a = Math.abs(v);
    const digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 1 ? 2 : 4;
    return v.toLocaleString("en-US", { maximumFractionDigits: digits });
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}

/**
 * One date format on every page, whatever the browser's locale: `2026-12-03 14:05:09 UTC`
 * (the fleet page and the CLI show the same).
 * @param {number} ms
 */
export function clock(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/**
 * @param {number} now
 * @param {number | null | undefined} ts
 */
export function ago(now, ts) {
  return ts ? fmtAge(now - ts) + " ago" : "never";
}

/**
 * Fills a <dl> with [label, value, class] rows; falsy rows are skipped.
 * @param {string} id
 * @param {(DlRow | null | false | undefined | "")[]} rows
 */
export function fillList(id, rows) {
  const out = [];
  for (const r of rows) {
    if (!r) continue;
    out.push(el("dt", null, r[0]));
    const dd = el("dd", r[2] || null, r[1]);
    if (r[3]) dd.title = r[3];
    out.push(dd);
  }
  $(id).replaceChildren(...out);
}

/**
 * @param {string} text
 * @param {string} kind
 */
export function badge(text, kind) {
  return el("span", "badge " + kind, text);
}

/**
 * `fetch` on this gateway with the session cookie (an HttpOnly cookie the page never reads).
 * @param {string} path
 * @param {RequestInit} [init]
 */
export function api(path, init) {
  return fetch(path, { ...init, credentials: "same-origin" });
}
