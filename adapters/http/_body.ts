import { MAX_FUTURE_MS, MAX_STRING_VALUE, MIN_TS, type Reading } from "../../src/reading.ts";
import { checkJsonShape, type LimitReason } from "../../src/limits.ts";

/**
 * A request body turned into readings, or the status and reason to refuse it with (`reason` when
 * it broke a shape limit, checked before parsing).
 */
export type BodyResult =
  | { readings: Reading[] }
  | { status: 400 | 413; error: string; reason?: LimitReason };

/** Deepest JSON a body may have: `{"readings":[{…}]}` needs 3. */
const MAX_BODY_DEPTH = 8;
/** JSON values a reading may take: an object of at most five fields. */
const VALUES_PER_READING = 6;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:\-\/]{0,127}$/;
const FIELDS = new Set(["device", "metric", "value", "unit", "ts"]);

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? text.slice(0, 57) + "..." : text;
}

function checkItem(item: unknown, label: string, now: number): Reading | string {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    return `${label}: expected an object with device, metric and value, got ${show(item)}`;
  }
  const o = item as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!FIELDS.has(key)) {
      return `${label}.${key}: unknown field; expected device, metric, value, unit, ts`;
    }
  }
  for (const key of ["device", "metric"] as const) {
    const v = o[key];
    if (typeof v !== "string" || !ID_RE.test(v)) {
      return `${label}.${key}: expected 1–128 letters, digits or ._:-/ (starting with a letter or digit), got ${
        show(v)
      }`;
    }
  }
  const value = o.value;
  const valueOk = (typeof value === "number" && Number.isFinite(value)) ||
    typeof value === "boolean" ||
    (typeof value === "string" && value.length <= MAX_STRING_VALUE);
  if (!valueOk) {
    return `${label}.value: expected a finite number, true/false or a string of at most ${MAX_STRING_VALUE} characters, got ${
      show(value)
    }`;
  }
  const r: Reading = { device: o.device as string, metric: o.metric as string, value, ts: now };
  if (o.unit !== undefined) {
    if (typeof o.unit !== "string" || o.unit.length > 32) {
      return `${label}.unit: expected a string of at most 32 characters, got ${show(o.unit)}`;
    }
    r.unit = o.unit;
  }
  if (o.ts !== undefined) {
    let ts: number | undefined;
    if (typeof o.ts === "number" && Number.isSafeInteger(o.ts)) ts = o.ts;
    else if (typeof o.ts === "string" && /^\d{4}-\d{2}-\d{2}T/.test(o.ts)) {
      const ms = Date.parse(o.ts);
      if (Number.isFinite(ms)) ts = ms;
    }
    if (ts === undefined) {
      return `${label}.ts: expected ms since the epoch (an integer) or an ISO 8601 time, got ${
        show(o.ts)
      }`;
    }
    if (ts < MIN_TS || ts > now + MAX_FUTURE_MS) {
      return `${label}.ts: ${
        show(o.ts)
      } is before 2000 or more than a day ahead of the gateway clock`;
    }
    r.ts = ts;
  }
  return r;
}

/**
 * Parses an ingest body: one reading `{"device","metric","value","unit"?,"ts"?}`, a list of them,
 * or `{"readings":[...]}`. Errors name the item and field. Never throws.
 */
export function parseBody(text: string, now: number, maxReadings: number): BodyResult {
  const over = checkJsonShape(text, {
    maxDepth: MAX_BODY_DEPTH,
    maxValues: (maxReadings + 1) * VALUES_PER_READING,
  });
  if (over) {
    const status = over.reason === "depth" ? 400 : 413;
    const hint = over.reason === "depth" ? "" : ` (room for ${maxReadings} readings, maxReadings)`;
    return { status, error: over.message + hint, reason: over.reason };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { status: 400, error: `invalid JSON: ${(e as Error).message}` };
  }
  let items: unknown[];
  let label: (i: number) => string;
  if (Array.isArray(doc)) {
    items = doc;
    label = (i) => `[${i}]`;
  } else if (doc !== null && typeof doc === "object" && Object.hasOwn(doc, "readings")) {
    const extra = Object.keys(doc).find((k) => k !== "readings");
    if (extra !== undefined) {
      return { status: 400, error: `${extra}: unknown field; expected only "readings"` };
    }
    const list = (doc as { readings: unknown }).readings;
    if (!Array.isArray(list)) {
      return { status: 400, error: `readings: expected a list, got ${show(list)}` };
    }
    items = list;
    label = (i) => `readings[${i}]`;
  } else if (doc !== null && typeof doc === "object") {
    items = [doc];
    label = () => "reading";
  } else {
    return {
      status: 400,
      error: `expected a reading, a list of readings or {"readings":[...]}, got ${show(doc)}`,
    };
  }
  if (items.length === 0) return { status: 400, error: "expected at least one reading, got none" };
  if (items.length > maxReadings) {
    return {
      status: 413,
      error: `${items.length} readings in one request; at most ${maxReadings} (maxReadings)`,
    };
  }
  const readings: Reading[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const r = checkItem(items[i], label(i), now);
    if (typeof r === "string") return { status: 400, error: r };
    readings[i] = r;
  }
  return { readings };
}
