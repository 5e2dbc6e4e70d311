/** A value a device reports. */
export type ReadingValue = number | boolean | string;

/** What an adapter emits: one sample of one metric of one device. */
export interface Reading {
  /** Device id, unique within the gateway (e.g. `pump-3`). */
  device: string;
  /** Metric name (e.g. `pressure`). */
  metric: string;
  value: ReadingValue;
  /** Unit of the value (e.g. `bar`); empty or absent when it has none. */
  unit?: string;
  /** Source timestamp, ms since the Unix epoch. */
  ts: number;
}

/** A reading after the buffer accepted it, with its gateway-assigned sequence number. */
export interface StoredReading extends Reading {
  seq: number;
}

/** Why a reading was refused by validation. */
export type InvalidReason =
  | "device"
  | "metric"
  | "value"
  | "unit"
  | "timestamp";

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:\-\/]{0,127}$/;
/** Oldest source timestamp accepted: 2000-01-01T00:00:00Z. */
export const MIN_TS = 946_684_800_000;
/** How far ahead of the gateway clock a source timestamp may be. */
export const MAX_FUTURE_MS = 24 * 3600_000;
/** Longest string value accepted, in characters. */
export const MAX_STRING_VALUE = 1024;

/**
 * Checks one reading: ids of safe characters, a finite number / boolean / short string, and a
 * timestamp between 2000-01-01 and one day ahead of `now`. Returns the reason when invalid.
 */
export function checkReading(r: Reading, now: number): InvalidReason | undefined {
  if (typeof r.device !== "string" || !ID_RE.test(r.device)) return "device";
  if (typeof r.metric !== "string" || !ID_RE.test(r.metric)) return "metric";
  const v = r.value;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return "value";
  } else if (typeof v === "string") {
    if (v.length > MAX_STRING_VALUE) return "value";
  } else if (typeof v !== "boolean") return "value";
  if (r.unit !== undefined && (typeof r.unit !== "string" || r.unit.length > 32)) return "unit";
  if (typeof r.ts !== "number" || !Number.isSafeInteger(r.ts)) return "timestamp";
  if (r.ts < MIN_TS || r.ts > now + MAX_FUTURE_MS) return "timestamp";
  return undefined;
}
