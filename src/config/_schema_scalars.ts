/** Scalar schemas (see `schema.ts`): strings, numbers, booleans, enums, durations and sizes. */
import {
  type Ctx,
  type Invalid,
  type JsonSchema,
  type Path,
  Schema,
  show,
  SUBST,
} from "./_schema_core.ts";
import { isSecretKey } from "../redact.ts";

export interface StringOpts {
  min?: number;
  max?: number;
  pattern?: RegExp;
  /** Human wording of the pattern for error messages. */
  patternName?: string;
}

export class StringSchema extends Schema<string> {
  constructor(readonly o: StringOpts = {}) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): string | Invalid {
    const what = this.o.patternName ?? "a string";
    if (typeof v !== "string") {
      if (typeof v === "number" || typeof v === "boolean") v = String(v);
      else return ctx.fail(path, `expected ${what}, got ${show(v)}`);
    }
    const str = v as string;
    // The value of a secret key is never echoed: errors are printed and logged.
    const key = path.at(-1);
    const got = typeof key === "string" && isSecretKey(key)
      ? `${str.length} characters (not shown: a secret)`
      : show(str);
    if (this.o.min !== undefined && str.length < this.o.min) {
      return ctx.fail(
        path,
        this.o.min === 1
          ? `expected ${what}, got an empty string`
          : `expected ${what} of at least ${this.o.min} characters, got ${got}`,
      );
    }
    if (this.o.max !== undefined && str.length > this.o.max) {
      return ctx.fail(path, `expected ${what} of at most ${this.o.max} characters`);
    }
    if (this.o.pattern && !this.o.pattern.test(str)) {
      return ctx.fail(path, `expected ${what}, got ${got}`);
    }
    return str;
  }
  protected json(): JsonSchema {
    return {
      type: "string",
      ...(this.o.min !== undefined ? { minLength: this.o.min } : {}),
      ...(this.o.max !== undefined ? { maxLength: this.o.max } : {}),
      ...(this.o.pattern ? { pattern: this.o.pattern.source } : {}),
    };
  }
}

export interface NumOpts {
  min?: number;
  max?: number;
}

function rangeText(o: NumOpts): string {
  if (o.min !== undefined && o.max !== undefined) return ` ${o.min}–${o.max}`;
  if (o.min !== undefined) return ` ≥ ${o.min}`;
  if (o.max !== undefined) return ` ≤ ${o.max}`;
  return "";
}

export class NumberSchema extends Schema<number> {
  constructor(readonly integer: boolean, readonly o: NumOpts = {}) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): number | Invalid {
    const what = `${this.integer ? "an integer" : "a number"}${rangeText(this.o)}`;
    if (typeof v !== "number" || !Number.isFinite(v) || (this.integer && !Number.isInteger(v))) {
      return ctx.fail(path, `expected ${what}, got ${show(v)}`);
    }
    if (
      (this.o.min !== undefined && v < this.o.min) || (this.o.max !== undefined && v > this.o.max)
    ) return ctx.fail(path, `expected ${what}, got ${v}`);
    return v;
  }
  protected json(): JsonSchema {
    return {
      anyOf: [{
        type: this.integer ? "integer" : "number",
        ...(this.o.min !== undefined ? { minimum: this.o.min } : {}),
        ...(this.o.max !== undefined ? { maximum: this.o.max } : {}),
      }, SUBST],
    };
  }
}

export class BooleanSchema extends Schema<boolean> {
  check(v: unknown, ctx: Ctx, path: Path): boolean | Invalid {
    if (typeof v !== "boolean") return ctx.fail(path, `expected true or false, got ${show(v)}`);
    return v;
  }
  protected json(): JsonSchema {
    return { anyOf: [{ type: "boolean" }, SUBST] };
  }
}

export class EnumSchema<T extends string> extends Schema<T> {
  constructor(readonly values: readonly T[]) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): T | Invalid {
    if (typeof v !== "string" || !this.values.includes(v as T)) {
      return ctx.fail(path, `expected one of ${this.values.join(", ")}, got ${show(v)}`);
    }
    return v as T;
  }
  protected json(): JsonSchema {
    return { enum: [...this.values] };
  }
}

const UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/** Parses "250ms", "5s", "2m", "1h", "30d" into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS_MS[m[2]]);
}

export class DurationSchema extends Schema<number> {
  constructor(readonly o: NumOpts = {}) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): number | Invalid {
    const fmt = (ms: number) => ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
    const lo = this.o.min ?? 0;
    const range = this.o.max !== undefined
      ? ` between ${fmt(lo)} and ${fmt(this.o.max)}`
      : lo > 0
      ? ` of at least ${fmt(lo)}`
      : "";
    const what = `a duration such as "500ms", "10s", "5m", "30d"${range}`;
    let ms: number | undefined;
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) ms = v;
    else if (typeof v === "string") ms = parseDuration(v);
    if (ms === undefined) return ctx.fail(path, `expected ${what}, got ${show(v)}`);
    if (
      (this.o.min !== undefined && ms < this.o.min) || (this.o.max !== undefined && ms > this.o.max)
    ) return ctx.fail(path, `expected ${what}, got ${show(v)}`);
    return ms;
  }
  protected json(): JsonSchema {
    return {
      anyOf: [{ type: "string", pattern: DURATION_RE.source }, { type: "number", minimum: 0 }],
    };
  }
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)$/i;

/** Parses "128KB", "1.5GB", "512MiB" (binary multiples) into bytes. */
export function parseBytes(text: string): number | undefined {
  const m = BYTES_RE.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * BYTE_UNITS[m[2].toLowerCase()]);
}

/** Formats a byte count with the largest binary unit that divides it ("128KB", "1.5GB"). */
export function formatBytes(n: number): string {
  for (const [unit, size] of [["GB", 1024 ** 3], ["MB", 1024 ** 2], ["KB", 1024]] as const) {
    if (n >= size) return `${Number((n / size).toFixed(2))}${unit}`;
  }
  return `${n}B`;
}

export class BytesSchema extends Schema<number> {
  constructor(readonly o: NumOpts = {}) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): number | Invalid {
    const range = this.o.min !== undefined && this.o.max !== undefined
      ? ` between ${formatBytes(this.o.min)} and ${formatBytes(this.o.max)}`
      : this.o.min
      ? ` of at least ${formatBytes(this.o.min)}`
      : this.o.max !== undefined
      ? ` of at most ${formatBytes(this.o.max)}`
      : "";
    const what = `a size such as "128KB", "500MB", "2GB"${range}`;
    let n: number | undefined;
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) n = v;
    else if (typeof v === "string") n = parseBytes(v);
    if (n === undefined) return ctx.fail(path, `expected ${what}, got ${show(v)}`);
    if (
      (this.o.min !== undefined && n < this.o.min) || (this.o.max !== undefined && n > this.o.max)
    ) {
      return ctx.fail(path, `expected ${what}, got ${show(v)}`);
    }
    return n;
  }
  protected json(): JsonSchema {
    return {
      anyOf: [{ type: "string", pattern: BYTES_RE.source }, { type: "integer", minimum: 0 }],
    };
  }
}
