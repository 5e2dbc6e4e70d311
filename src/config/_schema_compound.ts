/**
 * Compound schemas (see `schema.ts`): lists, mappings with known keys, free-form mappings,
 * tagged unions and plain unions; and the "did you mean" suggestion for mistyped keys.
 */
import {
  Ctx,
  DefaultSchema,
  INVALID,
  type Invalid,
  type JsonSchema,
  OptionalSchema,
  type Path,
  Schema,
  show,
} from "./_schema_core.ts";
import type { NumOpts } from "./_schema_scalars.ts";

export class ArraySchema<T> extends Schema<T[]> {
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
export type Shape = Record<string, Schema<any>>;
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
export class RecordSchema<T> extends Schema<Record<string, T>> {
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
export type Variants = Record<string, Schema<any>>;

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
export class UnionSchema<T> extends Schema<T> {
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
