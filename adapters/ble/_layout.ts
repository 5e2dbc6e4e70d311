/**
 * The generic decoder: a byte layout declared in YAML, for sensors with their own format
 * (a Nordic-based board that puts an int16 at offset 2 and a battery byte at offset 4).
 */
import { DecodeError, type DecodeResult, hex, type Measurement, scaled } from "./_decode.ts";

/** Field types a layout may use, with their size in bytes. */
export const FIELD_TYPES = {
  int8: 1,
  uint8: 1,
  int16le: 2,
  int16be: 2,
  uint16le: 2,
  uint16be: 2,
  int32le: 4,
  int32be: 4,
  uint32le: 4,
  uint32be: 4,
  float32le: 4,
  float32be: 4,
} as const;

/** A field type name. */
export type FieldType = keyof typeof FIELD_TYPES;

/** One value in a payload: where it is, how it is encoded, how to scale it. */
export interface LayoutField {
  metric: string;
  /** Byte offset in the payload (after the company id for manufacturer data). */
  offset: number;
  type: FieldType;
  /** Multiplier applied to the raw value. */
  scale: number;
  unit?: string;
}

/** A layout: the fields to read from one payload. */
export interface Layout {
  fields: LayoutField[];
}

function read(v: DataView, type: FieldType, at: number): number {
  switch (type) {
    case "int8":
      return v.getInt8(at);
    case "uint8":
      return v.getUint8(at);
    case "int16le":
      return v.getInt16(at, true);
    case "int16be":
      return v.getInt16(at);
    case "uint16le":
      return v.getUint16(at, true);
    case "uint16be":
      return v.getUint16(at);
    case "int32le":
      return v.getInt32(at, true);
    case "int32be":
      return v.getInt32(at);
    case "uint32le":
      return v.getUint32(at, true);
    case "uint32be":
      return v.getUint32(at);
    case "float32le":
      return v.getFloat32(at, true);
    case "float32be":
      return v.getFloat32(at);
  }
}

/**
 * Decodes `data` with `layout`. A payload too short for any field, or a float that is not a
 * finite number, gives a `DecodeError` of kind `malformed` and no measurements.
 *
 * @example
 * ```ts
 * decodeLayout(Uint8Array.of(1, 0, 0x29, 0x09, 87), {
 *   fields: [{ metric: "temperature", offset: 2, type: "int16le", scale: 0.01, unit: "°C" }],
 * }); // [{ metric: "temperature", value: 23.45, unit: "°C" }]
 * ```
 */
export function decodeLayout(data: Uint8Array, layout: Layout): DecodeResult {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Measurement[] = [];
  for (const f of layout.fields) {
    const end = f.offset + FIELD_TYPES[f.type];
    if (end > data.length) {
      return new DecodeError(
        "malformed",
        `field "${f.metric}" (${f.type} at offset ${f.offset}) needs ${end} bytes, payload has ${data.length}: ${
          hex(data)
        }`,
      );
    }
    const raw = read(v, f.type, f.offset);
    const value = scaled(raw, f.scale);
    if (!Number.isFinite(value)) {
      return new DecodeError("malformed", `field "${f.metric}" is not a finite number (${raw})`);
    }
    out.push(
      f.unit === undefined
        ? { metric: f.metric, value }
        : { metric: f.metric, value, unit: f.unit },
    );
  }
  return out;
}
