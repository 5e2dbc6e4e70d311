/**
 * BTHome v2 (https://bthome.io/format/): service data under UUID 0xFCD2. The first byte says
 * whether the payload is encrypted and which version it is; then come objects, each an id byte
 * followed by a value whose length the id fixes.
 */
import { DecodeError, type DecodeResult, hex, type Measurement, scaled } from "./_decode.ts";

/** The 128-bit form of BTHome's 16-bit service UUID, as BlueZ keys ServiceData. */
export const BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb";

type Kind = "number" | "binary" | "button" | "dimmer" | "text" | "raw" | "skip";

interface ObjectType {
  metric: string;
  kind: Kind;
  /** Value length in bytes; 0 for text and raw, whose first byte is their length. */
  size: number;
  signed?: boolean;
  factor?: number;
  unit?: string;
}

const num = (metric: string, size: number, factor = 1, unit?: string, signed = false) => ({
  metric,
  kind: "number" as const,
  size,
  factor,
  unit,
  signed,
});
const bin = (metric: string) => ({ metric, kind: "binary" as const, size: 1 });

/** Object ids of the BTHome v2 format, from bthome.io's table. */
const OBJECTS: Record<number, ObjectType> = {
  0x00: num("packet_id", 1),
  0x01: num("battery", 1, 1, "%"),
  0x02: num("temperature", 2, 0.01, "°C", true),
  0x03: num("humidity", 2, 0.01, "%"),
  0x04: num("pressure", 3, 0.01, "hPa"),
  0x05: num("illuminance", 3, 0.01, "lx"),
  0x06: num("mass", 2, 0.01, "kg"),
  0x07: num("mass", 2, 0.01, "lb"),
  0x08: num("dew_point", 2, 0.01, "°C", true),
  0x09: num("count", 1),
  0x0a: num("energy", 3, 0.001, "kWh"),
  0x0b: num("power", 3, 0.01, "W"),
  0x0c: num("voltage", 2, 0.001, "V"),
  0x0d: num("pm2_5", 2, 1, "µg/m³"),
  0x0e: num("pm10", 2, 1, "µg/m³"),
  0x0f: bin("generic"),
  0x10: bin("power_on"),
  0x11: bin("opening"),
  0x12: num("co2", 2, 1, "ppm"),
  0x13: num("tvoc", 2, 1, "µg/m³"),
  0x14: num("moisture", 2, 0.01, "%"),
  0x15: bin("battery_low"),
  0x16: bin("battery_charging"),
  0x17: bin("carbon_monoxide"),
  0x18: bin("cold"),
  0x19: bin("connectivity"),
  0x1a: bin("door"),
  0x1b: bin("garage_door"),
  0x1c: bin("gas_detected"),
  0x1d: bin("heat"),
  0x1e: bin("light"),
  0x1f: bin("lock"),
  0x20: bin("moisture_detected"),
  0x21: bin("motion"),
  0x22: bin("moving"),
  0x23: bin("occupancy"),
  0x24: bin("plug"),
  0x25: bin("presence"),
  0x26: bin("problem"),
  0x27: bin("running"),
  0x28: bin("safety"),
  0x29: bin("smoke"),
  0x2a: bin("sound"),
  0x2b: bin("tamper"),
  0x2c: bin("vibration"),
  0x2d: bin("window"),
  0x2e: num("humidity", 1, 1, "%"),
  0x2f: num("moisture", 1, 1, "%"),
  0x3a: { metric: "button", kind: "button", size: 1 },
  0x3c: { metric: "dimmer", kind: "dimmer", size: 2 },
  0x3d: num("count", 2),
  0x3e: num("count", 4),
  0x3f: num("rotation", 2, 0.1, "°", true),
  0x40: num("distance", 2, 1, "mm"),
  0x41: num("distance", 2, 0.1, "m"),
  0x42: num("duration", 3, 0.001, "s"),
  0x43: num("current", 2, 0.001, "A"),
  0x44: num("speed", 2, 0.01, "m/s"),
  0x45: num("temperature", 2, 0.1, "°C", true),
  0x46: num("uv_index", 1, 0.1),
  0x47: num("volume", 2, 0.1, "L"),
  0x48: num("volume", 2, 1, "mL"),
  0x49: num("volume_flow_rate", 2, 0.001, "m³/h"),
  0x4a: num("voltage", 2, 0.1, "V"),
  0x4b: num("gas", 3, 0.001, "m³"),
  0x4c: num("gas", 4, 0.001, "m³"),
  0x4d: num("energy", 4, 0.001, "kWh"),
  0x4e: num("volume", 4, 0.001, "L"),
  0x4f: num("water", 4, 0.001, "L"),
  0x50: num("timestamp", 4, 1, "s"),
  0x51: num("acceleration", 2, 0.001, "m/s²"),
  0x52: num("gyroscope", 2, 0.001, "°/s"),
  0x53: { metric: "text", kind: "text", size: 0 },
  0x54: { metric: "raw", kind: "raw", size: 0 },
  0x55: num("volume_storage", 4, 0.001, "L"),
  0x56: num("conductivity", 2, 1, "µS/cm"),
  0x57: num("temperature", 1, 1, "°C", true),
  0x58: num("temperature", 1, 0.35, "°C", true),
  0x59: num("count", 1, 1, undefined, true),
  0x5a: num("count", 2, 1, undefined, true),
  0x5b: num("count", 4, 1, undefined, true),
  0x5c: num("power", 4, 0.01, "W", true),
  0x5d: num("current", 2, 0.001, "A", true),
  0x5e: num("direction", 2, 0.01, "°"),
  0x5f: num("precipitation", 2, 0.1, "mm"),
  0x60: num("channel", 1),
  0x61: num("rotational_speed", 2, 1, "rpm"),
  0x62: num("speed", 4, 0.000001, "m/s", true),
  0x63: num("acceleration", 4, 0.000001, "m/s²", true),
  0x64: num("light_level", 1),
  // Device information (type id, firmware version): not measurements, skipped.
  0xf0: { metric: "", kind: "skip", size: 2 },
  0xf1: { metric: "", kind: "skip", size: 4 },
  0xf2: { metric: "", kind: "skip", size: 3 },
};

const BUTTON_EVENTS: Record<number, string> = {
  0x00: "none",
  0x01: "press",
  0x02: "double_press",
  0x03: "triple_press",
  0x04: "long_press",
  0x05: "long_double_press",
  0x06: "long_triple_press",
  0x80: "hold_press",
};

/** Reads a little-endian integer of 1–4 bytes. */
function readInt(data: Uint8Array, at: number, size: number, signed: boolean): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + data[at + i];
  const span = 2 ** (8 * size);
  return signed && v >= span / 2 ? v - span : v;
}

const textDecoder = new TextDecoder();

/**
 * Decodes a BTHome v2 service-data payload. Encrypted payloads give a `DecodeError` of kind
 * `encrypted`; a repeated metric (two temperature probes) gets `_2`, `_3`… after its name.
 *
 * @example
 * ```ts
 * decodeBthome(Uint8Array.of(0x40, 0x02, 0xca, 0x09)); // [{ metric: "temperature", value: 25.06, unit: "°C" }]
 * ```
 */
export function decodeBthome(data: Uint8Array): DecodeResult {
  if (data.length < 1) return new DecodeError("malformed", "empty BTHome payload");
  const info = data[0];
  const version = info >> 5;
  if (version !== 2) {
    return new DecodeError(
      "unsupported",
      `BTHome version ${version} (device info 0x${hex(data.subarray(0, 1))}); only v2 is supported`,
    );
  }
  if (info & 0x01) return new DecodeError("encrypted", "BTHome payload is encrypted");
  const out: Measurement[] = [];
  const seen = new Map<string, number>();
  let at = 1;
  while (at < data.length) {
    const id = data[at];
    const type = OBJECTS[id];
    if (!type) {
      return new DecodeError(
        "unsupported",
        `unknown BTHome object id 0x${hex(data.subarray(at, at + 1))} at byte ${at}`,
      );
    }
    at++;
    let size = type.size;
    if (type.kind === "text" || type.kind === "raw") {
      if (at >= data.length) return short(id, at, data.length);
      size = data[at++];
    }
    if (at + size > data.length) return short(id, at + size, data.length);
    const value = objectValue(type, data.subarray(at, at + size));
    at += size;
    if (value === undefined) continue;
    const n = (seen.get(type.metric) ?? 0) + 1;
    seen.set(type.metric, n);
    const metric = n === 1 ? type.metric : `${type.metric}_${n}`;
    out.push(type.unit === undefined ? { metric, value } : { metric, value, unit: type.unit });
  }
  return out;
}

function short(id: number, need: number, have: number): DecodeError {
  return new DecodeError(
    "malformed",
    `BTHome object 0x${id.toString(16).padStart(2, "0")} needs ${need} bytes, payload has ${have}`,
  );
}

function objectValue(type: ObjectType, bytes: Uint8Array): number | boolean | string | undefined {
  switch (type.kind) {
    case "number":
      return scaled(readInt(bytes, 0, type.size, type.signed ?? false), type.factor ?? 1);
    case "binary":
      return bytes[0] !== 0;
    case "button":
      return BUTTON_EVENTS[bytes[0]] ?? `event_${bytes[0]}`;
    case "dimmer":
      // Event 1 turns left, 2 right; the second byte counts steps.
      return bytes[0] === 1 ? -bytes[1] : bytes[0] === 2 ? bytes[1] : 0;
    case "text":
      return textDecoder.decode(bytes);
    case "raw":
      return hex(bytes);
    case "skip":
      return undefined;
  }
}
