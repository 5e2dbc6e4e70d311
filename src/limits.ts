/**
 * Size and shape limits checked before untrusted input is parsed, and a log that reports
 * refusals without flooding. `JSON.parse` of a 5,000,000-deep list or 600,000 fields builds
 * millions of objects and exhausts a 64 MB heap; a scan of the text costs nothing in memory.
 *
 * @module
 */
import type { Logger } from "./log.ts";

/** Why an input was refused before parsing; adapters count refusals under `refused_<reason>`. */
export type LimitReason = "size" | "depth" | "values" | "lines" | "line_length";

/** An input over a limit: the reason (a counter name) and a message with the numbers. */
export interface LimitExceeded {
  reason: LimitReason;
  message: string;
}

/** Limits of one JSON document. */
export interface JsonLimits {
  /** Deepest nesting of lists and objects. */
  maxDepth: number;
  /** Most values (list items and object fields, at any depth). */
  maxValues: number;
}

/** Default JSON limits of device payloads: far beyond a real message, far below a heap. */
export const DEFAULT_JSON_LIMITS: Readonly<JsonLimits> = { maxDepth: 32, maxValues: 10_000 };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;

/**
 * Scans JSON text for nesting depth and value count without parsing it: brackets and commas
 * outside strings. It does not validate; `JSON.parse` does that afterwards, on text now known
 * to be small in shape. Returns the first limit broken, or undefined.
 *
 * @example
 * ```ts
 * const over = checkJsonShape("[[[[1]]]]", { maxDepth: 2, maxValues: 100 });
 * // over?.reason === "depth"
 * ```
 */
export function checkJsonShape(text: string, limits: JsonLimits): LimitExceeded | undefined {
  let depth = 0;
  let values = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string; an unterminated one ends the scan (JSON.parse will refuse it).
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_LIST || c === OPEN_OBJECT) {
      if (++depth > limits.maxDepth) {
        return {
          reason: "depth",
          message: `JSON nested deeper than ${limits.maxDepth} levels`,
        };
      }
      // The first value of a container; each comma adds one more.
      if (++values > limits.maxValues) break;
    } else if (c === CLOSE_LIST || c === CLOSE_OBJECT) depth--;
    else if (c === COMMA && ++values > limits.maxValues) break;
  }
  if (values > limits.maxValues) {
    return { reason: "values", message: `JSON has more than ${limits.maxValues} values` };
  }
  return undefined;
}

/** Refuses an input of more than `max` bytes; `what` names it in the message. */
export function checkSize(bytes: number, max: number, what: string): LimitExceeded | undefined {
  if (bytes <= max) return undefined;
  return { reason: "size", message: `${what} of ${bytes} bytes exceeds the limit of ${max} bytes` };
}

/** Longest sample of a refused input put into a log line. */
export const MAX_SAMPLE_CHARS = 200;

/** The start of an input for a log line: at most 200 characters, control characters escaped. */
export function sample(input: string | Uint8Array): string {
  const text = typeof input === "string"
    ? input.slice(0, MAX_SAMPLE_CHARS * 2)
    : new TextDecoder().decode(input.subarray(0, MAX_SAMPLE_CHARS * 4));
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, (ch) => ch === "\n" ? "\\n" : "\ufffd");
  return clean.length > MAX_SAMPLE_CHARS ? clean.slice(0, MAX_SAMPLE_CHARS - 1) + "…" : clean;
}

/**
 * Warns about refused inputs at most once per `periodMs` (default one minute) per reason, with
 * how many were refused since the last warning, so a device sending garbage at 1 kHz costs one
 * log line a minute.
 */
export class RefusalLog {
  readonly #log: Logger;
  readonly #periodMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();
  readonly #now: () => number;

  /** Creates a refusal log writing warnings to `log`. */
  constructor(log: Logger, options: { periodMs?: number; now?: () => number } = {}) {
    this.#log = log;
    this.#periodMs = options.periodMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Reports one refusal; logs it unless the same reason was logged within the period. */
  refused(
    reason: string,
    message: string,
    fields: Record<string, string | number | undefined> & { sample?: string },
  ): void {
    const now = this.#now();
    const last = this.#last.get(reason);
    if (last && now - last.at < this.#periodMs) {
      last.suppressed++;
      return;
    }
    this.#log.warn(message, {
      reason,
      ...fields,
      ...(last?.suppressed ? { suppressed: last.suppressed } : {}),
    });
    this.#last.set(reason, { at: now, suppressed: 0 });
  }
}
