/** Parsing of the JSON-lines reading format external adapters print on stdout. */
import type { Reading } from "../../src/reading.ts";
import { checkJsonShape, DEFAULT_JSON_LIMITS, type LimitReason } from "../../src/limits.ts";

/**
 * The outcome of one stdout line: readings, nothing (blank line), or why it was refused
 * (`reason` when it broke a shape limit, checked before parsing).
 */
export type ParsedLine = { readings: Reading[] } | { error: string; reason?: LimitReason };

function toReading(v: unknown, now: number): Reading | string {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return "expected an object";
  const o = v as Record<string, unknown>;
  if (typeof o.device !== "string" || o.device === "") return `"device" must be a non-empty string`;
  if (typeof o.metric !== "string" || o.metric === "") return `"metric" must be a non-empty string`;
  const value = o.value;
  if (typeof value !== "number" && typeof value !== "boolean" && typeof value !== "string") {
    return `"value" must be a number, boolean or string`;
  }
  if (o.unit !== undefined && o.unit !== null && typeof o.unit !== "string") {
    return `"unit" must be a string`;
  }
  let ts = now;
  if (typeof o.ts === "number") ts = Math.round(o.ts);
  else if (typeof o.ts === "string") {
    ts = Date.parse(o.ts);
    if (Number.isNaN(ts)) return `"ts" must be ms since the epoch or an ISO 8601 time`;
  } else if (o.ts !== undefined && o.ts !== null) {
    return `"ts" must be ms since the epoch or an ISO 8601 time`;
  }
  const r: Reading = { device: o.device, metric: o.metric, value, ts };
  if (typeof o.unit === "string") r.unit = o.unit;
  return r;
}

/**
 * Parses one line: a reading object or an array of them. Blank lines give no readings; a line
 * with any invalid element is refused whole.
 */
export function parseLine(line: string, now: number): ParsedLine {
  const text = line.trim();
  if (text === "") return { readings: [] };
  const over = checkJsonShape(text, DEFAULT_JSON_LIMITS);
  if (over) return { error: over.message, reason: over.reason };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: "not JSON" };
  }
  const items = Array.isArray(v) ? v : [v];
  const readings: Reading[] = [];
  for (let i = 0; i < items.length; i++) {
    const r = toReading(items[i], now);
    if (typeof r === "string") return { error: Array.isArray(v) ? `item ${i}: ${r}` : r };
    readings.push(r);
  }
  return { readings };
}
