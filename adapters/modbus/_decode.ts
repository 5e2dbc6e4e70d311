/**
 * Conversion between Modbus registers (16-bit words) and typed values, honouring byte/word order,
 * scale and offset. A register map entry and a raw write go through the same code both ways.
 */
import { type ORDERS, registerCount, type TYPES } from "./config.ts";

/** Value type of a register map entry. */
export type ValueType = (typeof TYPES)[number];
/** Byte/word order of a multi-register value. */
export type Order = (typeof ORDERS)[number];

/** What decoding and encoding need to know about one register map entry. */
export interface Codec {
  type: ValueType;
  order: Order;
  /** Registers a string occupies. */
  length?: number;
  /** Bit a bool reads in a register. */
  bit?: number;
  scale: number;
  offset: number;
  decimals?: number;
}

/** A value that cannot be encoded for a register, e.g. out of the type's range. */
export class ModbusEncodeError extends Error {
  /** Creates the error with a message naming the value and type. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModbusEncodeError";
  }
}

const INT_RANGE: Partial<Record<ValueType, [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x8000_0000, 0x7fff_ffff],
  uint32: [0, 0xffff_ffff],
};

function swaps(order: Order): { words: boolean; bytes: boolean } {
  return {
    words: order === "CDAB" || order === "DCBA",
    bytes: order === "BADC" || order === "DCBA",
  };
}

/** Puts the registers' bytes in big-endian (ABCD) order. */
function toBigEndian(words: readonly number[], order: Order, reverseWords: boolean): Uint8Array {
  const { words: ws, bytes: bs } = swaps(order);
  const seq = ws && reverseWords ? [...words].reverse() : words;
  const out = new Uint8Array(seq.length * 2);
  seq.forEach((w, i) => {
    const hi = (w >> 8) & 0xff, lo = w & 0xff;
    out[2 * i] = bs ? lo : hi;
    out[2 * i + 1] = bs ? hi : lo;
  });
  return out;
}

/** The inverse of {@linkcode toBigEndian}. */
function fromBigEndian(bytes: Uint8Array, order: Order, reverseWords: boolean): number[] {
  const { words: ws, bytes: bs } = swaps(order);
  const words: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) {
    words.push(bs ? (bytes[i + 1] << 8) | bytes[i] : (bytes[i] << 8) | bytes[i + 1]);
  }
  return ws && reverseWords ? words.reverse() : words;
}

function round(v: number, c: Codec): number {
  if (c.decimals !== undefined) {
    const f = 10 ** c.decimals;
    return Math.round(v * f) / f;
  }
  // Drop binary noise of decimal scales (2345 × 0.1 = 234.50000000000003).
  return c.scale !== 1 || c.offset !== 0 ? Number(v.toPrecision(15)) : v;
}

/** Decodes the registers of one entry (exactly its size) into its value. */
export function decodeRegisters(words: readonly number[], c: Codec): number | boolean | string {
  if (c.type === "bool") {
    const w = words[0];
    return c.bit === undefined ? w !== 0 : ((w >> c.bit) & 1) === 1;
  }
  if (c.type === "string") {
    // Characters follow register order; only the byte order inside a register varies.
    const bytes = toBigEndian(words, c.order, false);
    let end = bytes.indexOf(0);
    if (end < 0) end = bytes.length;
    return new TextDecoder().decode(bytes.subarray(0, end)).trimEnd();
  }
  const bytes = toBigEndian(words, c.order, true);
  const view = new DataView(bytes.buffer);
  let raw: number;
  switch (c.type) {
    case "int16":
      raw = view.getInt16(0);
      break;
    case "uint16":
      raw = view.getUint16(0);
      break;
    case "int32":
      raw = view.getInt32(0);
      break;
    case "uint32":
      raw = view.getUint32(0);
      break;
    case "float32":
      raw = view.getFloat32(0);
      break;
    case "int64":
      raw = Number(view.getBigInt64(0));
      break;
    case "uint64":
      raw = Number(view.getBigUint64(0));
      break;
    case "float64":
      raw = view.getFloat64(0);
      break;
  }
  // Identity scaling keeps raw as is, so -0 stays -0.
  return c.scale === 1 && c.offset === 0 ? round(raw, c) : round(raw * c.scale + c.offset, c);
}

/** Encodes a value for the registers of one entry; throws {@linkcode ModbusEncodeError}. */
export function encodeRegisters(value: number | boolean | string, c: Codec): number[] {
  const size = registerCount(c.type, c.length);
  if (c.type === "string") {
    if (typeof value !== "string") {
      throw new ModbusEncodeError(
        `Cannot write ${JSON.stringify(value)} as a string: not a string`,
      );
    }
    const text = new TextEncoder().encode(value);
    if (text.length > size * 2) {
      throw new ModbusEncodeError(
        `Cannot write ${JSON.stringify(value)}: ${text.length} bytes exceed the ${
          size * 2
        } of ${size} registers`,
      );
    }
    const bytes = new Uint8Array(size * 2);
    bytes.set(text);
    return fromBigEndian(bytes, c.order, false);
  }
  if (c.type === "bool") {
    if (c.bit !== undefined) {
      throw new ModbusEncodeError(
        `Cannot write bit ${c.bit} of a register alone; write the whole register as a raw point`,
      );
    }
    return [toBool(value) ? 1 : 0];
  }
  const num = typeof value === "boolean"
    ? Number(value)
    : typeof value === "string"
    ? Number(value)
    : value;
  if (!Number.isFinite(num)) {
    throw new ModbusEncodeError(
      `Cannot write ${JSON.stringify(value)} as ${c.type}: not a finite number`,
    );
  }
  const raw = (num - c.offset) / c.scale;
  const bytes = new Uint8Array(size * 2);
  const view = new DataView(bytes.buffer);
  if (c.type === "float32") view.setFloat32(0, raw);
  else if (c.type === "float64") view.setFloat64(0, raw);
  else {
    const int = Math.round(raw);
    const range = INT_RANGE[c.type];
    const outOfRange = range
      ? int < range[0] || int > range[1]
      : c.type === "uint64"
      ? int < 0 || int >= 2 ** 64
      : int < -(2 ** 63) || int >= 2 ** 63;
    if (outOfRange) {
      throw new ModbusEncodeError(
        `Cannot write ${value} as ${c.type}: raw value ${int} is out of range`,
      );
    }
    switch (c.type) {
      case "int16":
        view.setInt16(0, int);
        break;
      case "uint16":
        view.setUint16(0, int);
        break;
      case "int32":
        view.setInt32(0, int);
        break;
      case "uint32":
        view.setUint32(0, int);
        break;
      case "int64":
        view.setBigInt64(0, BigInt(int));
        break;
      case "uint64":
        view.setBigUint64(0, BigInt(int));
        break;
    }
  }
  return fromBigEndian(bytes, c.order, true);
}

/** Reads a coil value: booleans, 0/1 and "true"/"false"/"on"/"off". */
export function toBool(value: number | boolean | string): boolean {
  if (typeof value === "boolean") return value;
  if (value === 0 || value === 1) return value === 1;
  if (typeof value === "string") {
    const v = value.trim().toLowerCase();
    if (v === "true" || v === "on" || v === "1") return true;
    if (v === "false" || v === "off" || v === "0") return false;
  }
  throw new ModbusEncodeError(
    `Cannot write ${JSON.stringify(value)} as a bool: expected true or false`,
  );
}
