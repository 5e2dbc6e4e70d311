/**
 * The core of the schema language (see `schema.ts`): key paths, issues, the validation context,
 * and the base schema with its optional and default wrappers.
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
/** The type of {@linkcode INVALID}. */
export type Invalid = typeof INVALID;

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

/** A `${NAME}` substitution, accepted wherever a scalar is. */
export const SUBST = { type: "string", pattern: "^\\$\\{[^}]+\\}$" };

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
