/** One decoded value of an advertisement, before it gets a device id and a timestamp. */
export interface Measurement {
  metric: string;
  value: number | boolean | string;
  unit?: string;
}

/**
 * Why a payload could not be decoded. `malformed`: too short, inconsistent or a value that is
 * not a number; `encrypted`: the sender encrypts and no key is configured; `unsupported`: a
 * format version or object this decoder does not know.
 */
export type DecodeErrorKind = "malformed" | "encrypted" | "unsupported";

/** A payload the decoder refused; returned, never thrown, so one bad sensor costs nothing. */
export class DecodeError extends Error {
  override name = "DecodeError";
  constructor(readonly kind: DecodeErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** What every decoder returns: the measurements it found, or why it found none. */
export type DecodeResult = Measurement[] | DecodeError;

/**
 * Multiplies a raw integer by a scale and drops the binary noise of the product
 * (2506 × 0.01 gives 25.06, not 25.060000000000002).
 */
export function scaled(raw: number, factor: number): number {
  return factor === 1 ? raw : Number((raw * factor).toPrecision(12));
}

/** Renders bytes as lowercase hex, for error messages and raw values. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
