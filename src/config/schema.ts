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
import type { Schema } from "./_schema_core.ts";
import {
  ArraySchema,
  type ObjectOpts,
  ObjectSchema,
  RecordSchema,
  type Shape,
  TaggedSchema,
  UnionSchema,
  type Variants,
} from "./_schema_compound.ts";
import {
  BooleanSchema,
  BytesSchema,
  DurationSchema,
  EnumSchema,
  NumberSchema,
  type NumOpts,
  type StringOpts,
  StringSchema,
} from "./_schema_scalars.ts";

export * from "./_schema_core.ts";
export { formatBytes, parseBytes, parseDuration } from "./_schema_scalars.ts";
export {
  type Infer,
  type InferShape,
  type InferTagged,
  type ObjectOpts,
  ObjectSchema,
  suggest,
  TaggedSchema,
} from "./_schema_compound.ts";

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
