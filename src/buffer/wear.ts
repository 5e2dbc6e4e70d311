/**
 * Storage wear: what the gateway process writes to storage (`write_bytes` of `/proc/self/io`), as
 * a rate per day, and the years a card of a given endurance (TBW) lasts at that rate.
 */
import {
  type Ctx,
  type INVALID,
  type JsonSchema,
  type Path,
  Schema,
  show,
} from "../config/schema.ts";

/** Decimal units, as card makers state endurance ("30TB" written = 30·10¹² bytes). */
const ENDURANCE_UNITS: Record<string, number> = {
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
};
const ENDURANCE_RE = /^(\d+(?:\.\d+)?)\s*(gb|tb|pb)w?$/i;

/** Parses a card's endurance ("30TB", "150TBW", "500GB"; decimal units) into bytes. */
export function parseEndurance(text: string): number | undefined {
  const m = ENDURANCE_RE.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * ENDURANCE_UNITS[m[2].toLowerCase()];
  return n > 0 ? n : undefined;
}

/** Config schema of `buffer.storageEndurance`: a card's rated bytes written (TBW). */
export class EnduranceSchema extends Schema<number> {
  check(v: unknown, ctx: Ctx, path: Path): number | typeof INVALID {
    const n = typeof v === "string" ? parseEndurance(v) : undefined;
    if (n === undefined) {
      return ctx.fail(
        path,
        `expected the storage's rated endurance (TBW) such as "30TB", "150TBW" or "600GB" (decimal units), got ${
          show(v)
        }`,
      );
    }
    return n;
  }
  protected json(): JsonSchema {
    return { type: "string", pattern: ENDURANCE_RE.source };
  }
}

/** What status, metrics and the page show about wear. */
export interface WearStats {
  /** Bytes this process caused to be written to storage since it started (null: unknown). */
  writtenBytes: number | null;
  /** Current rate, bytes per day, over the last hour (null until 10 s of data). */
  bytesPerDay: number | null;
  /** The configured endurance in bytes (`buffer.storageEndurance`), if any. */
  enduranceBytes: number | null;
  /** Years until `enduranceBytes` is written at `bytesPerDay` (null without both). */
  lifeYears: number | null;
}

/** Years of life of storage rated for `enduranceBytes` written at `bytesPerDay`. */
export function lifeYears(enduranceBytes: number, bytesPerDay: number): number {
  if (bytesPerDay <= 0) return Infinity;
  return enduranceBytes / bytesPerDay / 365.25;
}

/** Reads `write_bytes` from a `/proc/<pid>/io` text; null when it has none. */
export function parseWriteBytes(io: string): number | null {
  const m = /^write_bytes:\s*(\d+)/m.exec(io);
  return m ? Number(m[1]) : null;
}

function readSelfIo(): number | null {
  try {
    return parseWriteBytes(Deno.readTextFileSync("/proc/self/io"));
  } catch {
    return null;
  }
}

/** Options of {@linkcode WearMeter}. */
export interface WearMeterOptions {
  /** Reads the process's bytes written so far; defaults to `/proc/self/io`. */
  read?: () => number | null;
  /** Monotonic clock, ms. */
  now?: () => number;
  /** Rated endurance in bytes. */
  enduranceBytes?: number;
}

const WINDOW_MS = 3_600_000;
const SAMPLE_MS = 60_000;
const MIN_SPAN_MS = 10_000;

/**
 * Turns the process's cumulative bytes written into a rate per day over the last hour (since it
 * was created, for the first hour). Sampled when asked (status, metrics), no timer of its own.
 * Create it after the buffer opened: the one-off writes of starting (reserve file) then do not
 * count toward the rate.
 */
export class WearMeter {
  readonly #read: () => number | null;
  readonly #now: () => number;
  #endurance: number | null;
  #samples: { at: number; bytes: number }[] = [];

  constructor(opts: WearMeterOptions = {}) {
    this.#read = opts.read ?? readSelfIo;
    this.#now = opts.now ?? (() => performance.now());
    this.#endurance = opts.enduranceBytes ?? null;
    const bytes = this.#read();
    if (bytes !== null) this.#samples.push({ at: this.#now(), bytes });
  }

  /** Sets the rated endurance (config reload). */
  setEndurance(bytes: number | undefined): void {
    this.#endurance = bytes ?? null;
  }

  /** Current figures. */
  stats(): WearStats {
    const bytes = this.#read();
    const at = this.#now();
    let perDay: number | null = null;
    if (bytes !== null) {
      const last = this.#samples[this.#samples.length - 1];
      if (!last || at - last.at >= SAMPLE_MS) this.#samples.push({ at, bytes });
      // Keep one sample at or beyond the window's start, so the rate always spans about an hour.
      while (this.#samples.length > 2 && at - this.#samples[1].at >= WINDOW_MS) {
        this.#samples.shift();
      }
      const first = this.#samples[0];
      if (first && at - first.at >= MIN_SPAN_MS) {
        perDay = Math.max(0, (bytes - first.bytes) / (at - first.at) * 86_400_000);
      }
    }
    const life = this.#endurance !== null && perDay !== null
      ? lifeYears(this.#endurance, perDay)
      : null;
    return {
      writtenBytes: bytes,
      bytesPerDay: perDay === null ? null : Math.round(perDay),
      enduranceBytes: this.#endurance,
      lifeYears: life === null ? null : Number.isFinite(life) ? Math.round(life * 10) / 10 : null,
    };
  }
}
