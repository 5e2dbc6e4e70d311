/**
 * A small schema language for the YAML config: each schema validates a parsed value, collecting
 * every problem with its key path, and renders itself as JSON Schema for editors. One source, so
 * the validator and config/schema.json never drift.
 *
 * @example
 * ```ts
 * const port = s.integer({ min: 1, max: 65535 }).describe("TCP port");
 * const conf = s.object({ host: s.string(), port: port.default(502) });
 * ```
 */

import { redactText } from "../redact.ts";

/** A key path into the config, e.g. `["adapters", 1, "port"]`. */
export type Path = readonly (string | number)[];

/** One validation problem. `atKey` points at the key itself rather than its value. */
export interface Issue {
  path: Path;
  message: string;
  atKey?: boolean;
  /** Character offset in the source, when known better than the path (duplicate keys). */
  offset?: number;
  /** The other place of a conflict (same name, port or address twice); errors name both. */
  also?: Path;
}

/** Collects issues during one validation pass. */
export class Ctx {
  readonly issues: Issue[] = [];
  /** Records a problem at `path`. */
  fail(path: Path, message: string, atKey = false, offset?: number): typeof INVALID {
    this.issues.push({ path, message, atKey, offset });
    return INVALID;
  }
  /** Records a conflict between the values at `path` and `also`; the error names both places. */
  conflict(path: Path, message: string, also: Path): typeof INVALID {
    this.issues.push({ path, message, also });
    return INVALID;
  }
}

/** Marker returned by a schema for an invalid value. */
export const INVALID: unique symbol = Symbol("invalid");
type Invalid = typeof INVALID;

/** JSON Schema fragment. */
export type JsonSchema = Record<string, unknown>;

/**
 * Formats a value for an error message: strings quoted (credentials masked), objects named by
 * kind.
 */
export function show(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (typeof v === "string") {
    const text = redactText(v);
    return JSON.stringify(text.length > 60 ? text.slice(0, 57) + "..." : text);
  }
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

const SUBST = { type: "string", pattern: "^\\$\\{[^}]+\\}$" };

/** Base of all schemas. */
export abstract class Schema<T> {
  description?: string;
  /** Validates `v` found at `path`; returns the value (possibly converted) or INVALID. */
  abstract check(v: unknown, ctx: Ctx, path: Path): T | Invalid;
  /** The JSON Schema for this node, without description. */
  protected abstract json(): JsonSchema;
  /** The JSON Schema for this node. */
  toJsonSchema(): JsonSchema {
    const j = this.json();
    return this.description ? { description: this.description, ...j } : j;
  }
  /** Attaches a description used in JSON Schema and docs. */
  describe(text: string): this {
    this.description = text;
    return this;
  }
  /** Makes the key optional; absent means `undefined`. */
  optional(): OptionalSchema<T> {
    return new OptionalSchema(this, undefined);
  }
  /** Makes the key optional with a default value. */
  default(value: T): DefaultSchema<T> {
    return new DefaultSchema(this, value);
  }
}

/** An optional key. */
export class OptionalSchema<T> extends Schema<T | undefined> {
  constructor(readonly inner: Schema<T>, readonly fallback: T | undefined) {
    super();
    this.description = inner.description;
  }
  check(v: unknown, ctx: Ctx, path: Path): T | undefined | Invalid {
    if (v === undefined || v === null) return this.fallback;
    return this.inner.check(v, ctx, path);
  }
  protected json(): JsonSchema {
    return this.inner.toJsonSchema();
  }
}

/** An optional key with a default. */
export class DefaultSchema<T> extends Schema<T> {
  constructor(readonly inner: Schema<T>, readonly fallback: T) {
    super();
    this.description = inner.description;
  }
  check(v: unknown, ctx: Ctx, path: Path): T | Invalid {
    if (v === undefined || v === null) return this.fallback;
    return this.inner.check(v, ctx, path);
  }
  protected json(): JsonSchema {
    const d = this.fallback;
    return { ...this.inner.toJsonSchema(), ...(d !== undefined ? { default: d } : {}) };
  }
}

interface StringOpts {
  min?: number;
  max?: number;
  pattern?: RegExp;
  /** Human wording of the pattern for error messages. */
  patternName?: string;
}

class StringSchema extends Schema<string> {
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
    if (this.o.min !== undefined && str.length < this.o.min) {
      return ctx.fail(
        path,
        this.o.min === 1
          ? `expected ${what}, got an empty string`
          : `expected ${what} of at least ${this.o.min} characters, got ${show(str)}`,
      );
    }
    if (this.o.max !== undefined && str.length > this.o.max) {
      return ctx.fail(path, `expected ${what} of at most ${this.o.max} characters`);
    }
    if (this.o.pattern && !this.o.pattern.test(str)) {
      return ctx.fail(path, `expected ${what}, got ${show(str)}`);
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

interface NumOpts {
  min?: number;
  max?: number;
}

function rangeText(o: NumOpts): string {
  if (o.min !== undefined && o.max !== undefined) return ` ${o.min}–${o.max}`;
  if (o.min !== undefined) return ` ≥ ${o.min}`;
  if (o.max !== undefined) return ` ≤ ${o.max}`;
  return "";
}

class NumberSchema extends Schema<number> {
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

class BooleanSchema extends Schema<boolean> {
  check(v: unknown, ctx: Ctx, path: Path): boolean | Invalid {
    if (typeof v !== "boolean") return ctx.fail(path, `expected true or false, got ${show(v)}`);
    return v;
  }
  protected json(): JsonSchema {
    return { anyOf: [{ type: "boolean" }, SUBST] };
  }
}

class EnumSchema<T extends string> extends Schema<T> {
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

class DurationSchema extends Schema<number> {
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

class BytesSchema extends Schema<number> {
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

class ArraySchema<T> extends Schema<T[]> {
  constructor(readonly item: Schema<T>, readonly o: NumOpts = {}) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): T[] | Invalid {
    if (!Array.isArray(v)) return ctx.fail(path, `expected a list, got ${show(v)}`);
    if (this.o.min !== undefined && v.length < this.o.min) {
      return ctx.fail(path, `expected a list of at least ${this.o.min} item(s), got ${v.length}`);
    }
    if (this.o.max !== undefined && v.length > this.o.max) {
      return ctx.fail(path, `expected a list of at most ${this.o.max} items, got ${v.length}`);
    }
    const out: T[] = [];
    let bad = false;
    v.forEach((item, i) => {
      const r = this.item.check(item, ctx, [...path, i]);
      if (r === INVALID) bad = true;
      else out.push(r);
    });
    return bad ? INVALID : out;
  }
  protected json(): JsonSchema {
    return {
      type: "array",
      items: this.item.toJsonSchema(),
      ...(this.o.min !== undefined ? { minItems: this.o.min } : {}),
      ...(this.o.max !== undefined ? { maxItems: this.o.max } : {}),
    };
  }
}

// deno-lint-ignore no-explicit-any
type Shape = Record<string, Schema<any>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends OptionalSchema<infer _> ? K : never;
}[keyof S];
/** The TypeScript type a schema validates to. */
export type Infer<S> = S extends Schema<infer T> ? T : never;
type Simplify<T> = { [K in keyof T]: T[K] } & unknown;
/** The TypeScript type of an object shape. */
export type InferShape<S extends Shape> = Simplify<
  & { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> }
  & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

/** Edit distance with transpositions, to suggest the key that was meant. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** Suggests the closest of `known` for a mistyped `key`, or nothing. */
export function suggest(key: string, known: readonly string[]): string {
  let best = "";
  let bestD = Infinity;
  for (const k of known) {
    const dd = distance(key.toLowerCase(), k.toLowerCase());
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  return bestD <= Math.max(1, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : "";
}

/** Options of an object schema. */
export interface ObjectOpts<S extends Shape> {
  /** Extra cross-field validation, run when every field is valid. */
  refine?: (value: InferShape<S>, ctx: Ctx, path: Path) => void;
  /** Keys to ignore silently (e.g. the `type` discriminator handled by a parent). */
  passthrough?: readonly string[];
}

/** A mapping with known keys; unknown keys are errors. */
export class ObjectSchema<S extends Shape> extends Schema<InferShape<S>> {
  constructor(readonly shape: S, readonly o: ObjectOpts<S> = {}) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): InferShape<S> | Invalid {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(path, `expected a mapping, got ${show(v)}`);
    }
    const obj = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let bad = false;
    const known = Object.keys(this.shape);
    for (const key of Object.keys(obj)) {
      if (!(key in this.shape) && !this.o.passthrough?.includes(key)) {
        ctx.fail(
          [...path, key],
          `unknown key${suggest(key, known)}; expected one of ${known.join(", ")}`,
          true,
        );
        bad = true;
      }
    }
    for (const [key, schema] of Object.entries(this.shape)) {
      const val = obj[key];
      if (
        (val === undefined || val === null) && !(schema instanceof OptionalSchema) &&
        !(schema instanceof DefaultSchema)
      ) {
        ctx.fail(path, `missing required key "${key}"`);
        bad = true;
        continue;
      }
      const r = schema.check(val, ctx, [...path, key]);
      if (r === INVALID) bad = true;
      else if (r !== undefined) out[key] = r;
    }
    if (bad) return INVALID;
    const before = ctx.issues.length;
    this.o.refine?.(out as InferShape<S>, ctx, path);
    return ctx.issues.length > before ? INVALID : out as InferShape<S>;
  }
  protected json(): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [key, schema] of Object.entries(this.shape)) {
      properties[key] = schema.toJsonSchema();
      if (!(schema instanceof OptionalSchema) && !(schema instanceof DefaultSchema)) {
        required.push(key);
      }
    }
    for (const key of this.o.passthrough ?? []) properties[key] ??= {};
    return {
      type: "object",
      properties,
      ...(required.length ? { required } : {}),
      additionalProperties: false,
    };
  }
}

/** A mapping from free-form keys to values of one schema. */
class RecordSchema<T> extends Schema<Record<string, T>> {
  constructor(readonly value: Schema<T>) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): Record<string, T> | Invalid {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(path, `expected a mapping, got ${show(v)}`);
    }
    const out: Record<string, T> = {};
    let bad = false;
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      const r = this.value.check(val, ctx, [...path, k]);
      if (r === INVALID) bad = true;
      else out[k] = r;
    }
    return bad ? INVALID : out;
  }
  protected json(): JsonSchema {
    return { type: "object", additionalProperties: this.value.toJsonSchema() };
  }
}

// deno-lint-ignore no-explicit-any
type Variants = Record<string, Schema<any>>;

/**
 * The discriminated union a {@linkcode TaggedSchema} validates to: each variant's type with the
 * key set to the variant's name, so `switch (v[key])` narrows without casts.
 */
export type InferTagged<K extends string, V extends Variants> = {
  [N in keyof V & string]: Simplify<Omit<Infer<V[N]>, K> & { [P in K]: N }>;
}[keyof V & string];

/**
 * A mapping whose `key` field picks the schema of the rest, e.g. adapters by `type:`.
 * Each variant must be an object schema listing `key` in its passthrough.
 */
export class TaggedSchema<K extends string, V extends Variants> extends Schema<InferTagged<K, V>> {
  constructor(readonly key: K, readonly variants: V) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): InferTagged<K, V> | Invalid {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(path, `expected a mapping, got ${show(v)}`);
    }
    const tag = (v as Record<string, unknown>)[this.key];
    const names = Object.keys(this.variants);
    if (tag === undefined) {
      return ctx.fail(path, `missing required key "${this.key}" (one of ${names.join(", ")})`);
    }
    const variant = typeof tag === "string" && Object.hasOwn(this.variants, tag)
      ? this.variants[tag]
      : undefined;
    if (!variant) {
      return ctx.fail(
        [...path, this.key],
        `expected one of ${names.join(", ")}, got ${show(tag)}${
          typeof tag === "string" ? suggest(tag, names) : ""
        }`,
      );
    }
    const r = variant.check(v, ctx, path);
    if (r === INVALID) return INVALID;
    return { ...r, [this.key]: tag };
  }
  protected json(): JsonSchema {
    return {
      type: "object",
      required: [this.key],
      properties: { [this.key]: { enum: Object.keys(this.variants) } },
      allOf: Object.entries(this.variants).map(([name, schema]) => ({
        if: { properties: { [this.key]: { const: name } } },
        then: schema.toJsonSchema(),
      })),
    };
  }
}

/** A value that several schemas may describe; the first that accepts wins. */
class UnionSchema<T> extends Schema<T> {
  constructor(readonly options: Schema<T>[], readonly expected: string) {
    super();
  }
  check(v: unknown, ctx: Ctx, path: Path): T | Invalid {
    for (const o of this.options) {
      const probe = new Ctx();
      const r = o.check(v, probe, path);
      if (r !== INVALID) return r;
    }
    return ctx.fail(path, `expected ${this.expected}, got ${show(v)}`);
  }
  protected json(): JsonSchema {
    return { anyOf: this.options.map((o) => o.toJsonSchema()) };
  }
}

/** Schema constructors. */
export const s = {
  /** A string; numbers and booleans are taken as their text. */
  string: (o?: StringOpts): StringSchema => new StringSchema(o),
  /** An identifier: letters, digits and `._:-/`, as device ids and names use. */
  id: (): StringSchema =>
    new StringSchema({
      min: 1,
      max: 128,
      pattern: /^[A-Za-z0-9][A-Za-z0-9._:\-\/]*$/,
      patternName: "a name of letters, digits and ._:-/",
    }),
  /** An integer within bounds. */
  integer: (o?: NumOpts): NumberSchema => new NumberSchema(true, o),
  /** A finite number within bounds. */
  number: (o?: NumOpts): NumberSchema => new NumberSchema(false, o),
  /** true or false. */
  boolean: (): BooleanSchema => new BooleanSchema(),
  /** One of a fixed set of strings. */
  enum: <T extends string>(values: readonly T[]): EnumSchema<T> => new EnumSchema(values),
  /** A duration ("500ms", "10s", "30d") as milliseconds. */
  duration: (o?: NumOpts): DurationSchema => new DurationSchema(o),
  /** A size ("128KB", "2GB") as bytes. */
  bytes: (o?: NumOpts): BytesSchema => new BytesSchema(o),
  /** A list of items. */
  array: <T>(item: Schema<T>, o?: NumOpts): ArraySchema<T> => new ArraySchema(item, o),
  /** A mapping with known keys. */
  object: <S extends Shape>(shape: S, o?: ObjectOpts<S>): ObjectSchema<S> =>
    new ObjectSchema(shape, o),
  /** A mapping of free-form keys. */
  record: <T>(value: Schema<T>): RecordSchema<T> => new RecordSchema(value),
  /** A mapping discriminated by one key. */
  tagged: <K extends string, V extends Variants>(key: K, variants: V): TaggedSchema<K, V> =>
    new TaggedSchema(key, variants),
  /** The first of several schemas that accepts the value. */
  union: <T>(options: Schema<T>[], expected: string): UnionSchema<T> =>
    new UnionSchema(options, expected),
};
