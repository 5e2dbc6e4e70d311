import { checkReading, type Reading, type ReadingValue } from "../../src/reading.ts";
import { checkJsonShape, DEFAULT_JSON_LIMITS, type LimitReason } from "../../src/limits.ts";

/** Units of the payload keys zigbee2mqtt devices commonly report. */
export const UNITS: Readonly<Record<string, string>> = {
  temperature: "°C",
  local_temperature: "°C",
  device_temperature: "°C",
  current_heating_setpoint: "°C",
  occupied_heating_setpoint: "°C",
  humidity: "%",
  soil_moisture: "%",
  pressure: "hPa",
  battery: "%",
  voltage: "mV",
  power: "W",
  energy: "kWh",
  current: "A",
  illuminance: "lx",
  illuminance_lux: "lx",
  co2: "ppm",
  eco2: "ppm",
  voc: "ppb",
  formaldehyd: "mg/m³",
  pm25: "µg/m³",
  pm10: "µg/m³",
  position: "%",
  frequency: "Hz",
  color_temp: "mired",
  linkquality: "lqi",
};

/** Keys that describe the message or the device rather than a measurement. */
const NOISE = new Set(["last_seen", "elapsed", "device", "update", "update_available"]);

/** Per-key override of the mapping. */
export interface KeyOverride {
  metric?: string;
  unit?: string;
  scale?: number;
  offset?: number;
}

/** How payload keys become readings. */
export interface MapOptions {
  metrics?: Readonly<Record<string, KeyOverride>>;
  include?: ReadonlySet<string>;
  exclude?: ReadonlySet<string>;
  /** Emit string values other than ON/OFF. */
  strings: boolean;
  timestamp: "received" | "last_seen";
}

/**
 * Readings of one message and the number of keys skipped, or why the message was refused
 * (`reason` when it broke a shape limit before parsing).
 */
export type MapResult =
  | { readings: Reading[]; skipped: number }
  | { error: string; reason?: LimitReason };

const MAX_DEPTH = 4;
const MAX_READINGS = 1000;

function lastSeen(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return Math.round(v);
  if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}/.test(v)) {
    const ms = Date.parse(v);
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

function wanted(key: string, top: string, o: MapOptions): boolean {
  if (o.exclude?.has(key) || o.exclude?.has(top)) return false;
  if (o.include) return o.include.has(key) || o.include.has(top);
  return !NOISE.has(top);
}

/**
 * Maps a zigbee2mqtt device payload (`{"temperature":21.5,"battery":97,...}`) to readings:
 * numbers and booleans with built-in units, "ON"/"OFF" as booleans, nested objects as dotted
 * keys (`color.x`). Never throws.
 */
export function mapPayload(device: string, text: string, o: MapOptions, now: number): MapResult {
  const over = checkJsonShape(text, DEFAULT_JSON_LIMITS);
  if (over) return { error: over.message, reason: over.reason };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { error: `invalid JSON: ${(e as Error).message}` };
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return { error: "expected a JSON object" };
  }
  const payload = doc as Record<string, unknown>;
  let ts = now;
  if (o.timestamp === "last_seen" && Object.hasOwn(payload, "last_seen")) {
    const t = lastSeen(payload.last_seen);
    if (t !== undefined) ts = t;
  }
  const readings: Reading[] = [];
  let skipped = 0;
  const visit = (
    obj: Record<string, unknown>,
    prefix: string,
    top: string,
    depth: number,
  ): string | undefined => {
    for (const [k, raw] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const root = top || k;
      if (!wanted(key, root, o)) continue;
      if (raw !== null && typeof raw === "object") {
        if (!Array.isArray(raw) && depth < MAX_DEPTH) {
          const error = visit(raw as Record<string, unknown>, key, root, depth + 1);
          if (error) return error;
        }
        continue;
      }
      const over = o.metrics && Object.hasOwn(o.metrics, key) ? o.metrics[key] : undefined;
      let value: ReadingValue | undefined;
      if (typeof raw === "number") {
        value = raw * (over?.scale ?? 1) + (over?.offset ?? 0);
      } else if (typeof raw === "boolean") value = raw;
      else if (raw === "ON" || raw === "OFF") value = raw === "ON";
      else if (typeof raw === "string" && o.strings && raw !== "") value = raw;
      else if (typeof raw === "string" || raw === null) continue;
      const r: Reading = {
        device,
        metric: over?.metric ?? key,
        value: value as ReadingValue,
        ts,
      };
      const unit = over?.unit ?? (typeof value === "number" ? UNITS[key] : undefined);
      if (unit !== undefined && unit !== "") r.unit = unit;
      const bad = value === undefined ? "value" : checkReading(r, now);
      if (bad === "device") return `device id ${JSON.stringify(device)} is not valid`;
      if (bad === "timestamp") return `last_seen ${ts} is out of range`;
      if (bad) skipped++;
      else if (readings.length >= MAX_READINGS) return `more than ${MAX_READINGS} values`;
      else readings.push(r);
    }
    return undefined;
  };
  const error = visit(payload, "", "", 0);
  return error ? { error } : { readings, skipped };
}

/** Reads an availability payload: `online`/`offline`, or `{"state":"online"}`. */
export function parseAvailability(text: string): "online" | "offline" | undefined {
  const t = text.trim();
  if (t === "online" || t === "offline") return t;
  if (checkJsonShape(t, DEFAULT_JSON_LIMITS)) return undefined;
  try {
    const doc = JSON.parse(t);
    const state = typeof doc === "string" ? doc : doc?.state;
    return state === "online" || state === "offline" ? state : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Turns a friendly name into a device id: characters outside letters, digits and `._:-/`
 * become `_`, leading ones that may not start an id are dropped. Undefined when nothing is left.
 */
export function sanitizeId(name: string): string | undefined {
  const id = name.replace(/[^A-Za-z0-9._:\-\/]/g, "_").replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 128);
  return id === "" ? undefined : id;
}
