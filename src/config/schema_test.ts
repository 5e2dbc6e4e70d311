import assert from "node:assert/strict";
import {
  Ctx,
  formatBytes,
  type Infer,
  INVALID,
  type Issue,
  parseBytes,
  parseDuration,
  s,
  type Schema,
  suggest,
} from "./schema.ts";

/** Validates `v` and returns the value or the issues as "path: message" lines. */
function run<T>(schema: Schema<T>, v: unknown): { value?: T; issues: string[] } {
  const ctx = new Ctx();
  const r = schema.check(v, ctx, []);
  const issues = ctx.issues.map((i: Issue) => `${i.path.join(".")}: ${i.message}`);
  return r === INVALID ? { issues } : { value: r, issues };
}

/** Compile-time equality of two types. */
type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends (<X>() => X extends B ? 1 : 2) ? true
  : false;

Deno.test("object() returns the known keys with their converted values", () => {
  const schema = s.object({ host: s.string(), port: s.integer({ min: 1, max: 65535 }) });
  assert.deepEqual(run(schema, { host: "plc", port: 502 }), {
    value: { host: "plc", port: 502 },
    issues: [],
  });
});

Deno.test("object() names a missing required key at the mapping and an unknown key with a suggestion", () => {
  const schema = s.object({ host: s.string(), port: s.integer() });
  const r = run(schema, { hots: "plc" });
  assert.equal(r.value, undefined);
  assert.deepEqual(r.issues, [
    'hots: unknown key (did you mean "host"?); expected one of host, port',
    ': missing required key "host"',
    ': missing required key "port"',
  ]);
  const ctx = new Ctx();
  schema.check({ hots: "plc", host: "a", port: 1 }, ctx, ["adapters", 0]);
  assert.deepEqual(ctx.issues[0].path, ["adapters", 0, "hots"]);
  assert.equal(ctx.issues[0].atKey, true, "an unknown key is reported at the key, not its value");
});

Deno.test("object() collects every problem in one pass, each at its own path", () => {
  const schema = s.object({
    a: s.integer(),
    nested: s.object({ b: s.boolean(), list: s.array(s.enum(["x", "y"] as const)) }),
  });
  const r = run(schema, { a: "one", nested: { b: "yes", list: ["x", "z"] } });
  assert.deepEqual(r.issues, [
    'a: expected an integer, got "one"',
    'nested.b: expected true or false, got "yes"',
    'nested.list.1: expected one of x, y, got "z"',
  ]);
});

Deno.test("object() rejects a list, a scalar and nothing as a mapping", () => {
  const schema = s.object({ a: s.string().optional() });
  assert.deepEqual(run(schema, [1]).issues, [": expected a mapping, got a list"]);
  assert.deepEqual(run(schema, 3).issues, [": expected a mapping, got 3"]);
  assert.deepEqual(run(schema, null).issues, [": expected a mapping, got nothing"]);
  assert.deepEqual(run(schema, {}).value, {});
});

Deno.test("passthrough keys are accepted and left out of the value", () => {
  const schema = s.object({ a: s.integer() }, { passthrough: ["type"] });
  assert.deepEqual(run(schema, { a: 1, type: "x" }), { value: { a: 1 }, issues: [] });
  assert.deepEqual(schema.toJsonSchema().properties, { a: s.integer().toJsonSchema(), type: {} });
});

Deno.test("default() fills an absent or null key; optional() leaves it out", () => {
  const schema = s.object({
    retries: s.integer({ min: 0 }).default(3),
    name: s.string().optional(),
  });
  assert.deepEqual(run(schema, {}).value, { retries: 3 });
  assert.deepEqual(run(schema, { retries: null }).value, { retries: 3 });
  assert.deepEqual(run(schema, { retries: 0, name: "n" }).value, { retries: 0, name: "n" });
  assert.ok(!("name" in run(schema, {}).value!), "an absent optional key is not set to undefined");
  assert.deepEqual(run(schema, { retries: -1 }).issues, [
    "retries: expected an integer ≥ 0, got -1",
  ]);
  const _t: Equals<Infer<typeof schema>, { retries: number; name?: string | undefined }> = true;
});

Deno.test("string() takes numbers and booleans as text and checks length and pattern", () => {
  assert.equal(run(s.string(), 42).value, "42");
  assert.equal(run(s.string(), true).value, "true");
  assert.deepEqual(run(s.string(), {}).issues, [": expected a string, got a mapping"]);
  assert.deepEqual(run(s.string({ min: 1 }), "").issues, [
    ": expected a string, got an empty string",
  ]);
  assert.deepEqual(run(s.string({ min: 3 }), "ab").issues, [
    ': expected a string of at least 3 characters, got "ab"',
  ]);
  assert.deepEqual(run(s.string({ max: 2 }), "abc").issues, [
    ": expected a string of at most 2 characters",
  ]);
  assert.deepEqual(run(s.id(), "-bad").issues, [
    ': expected a name of letters, digits and ._:-/, got "-bad"',
  ]);
  assert.equal(run(s.id(), "plant-1/line.2").value, "plant-1/line.2");
});

Deno.test("error messages mask credentials and cut long values", () => {
  const r = run(s.integer(), "mqtt://user:hunter2@broker:1883");
  assert.equal(r.issues.length, 1);
  assert.ok(!r.issues[0].includes("hunter2"), r.issues[0]);
  const long = run(s.integer(), "x".repeat(100)).issues[0];
  assert.ok(long.endsWith('..."'), long);
  assert.ok(long.length < 100, long);
});

Deno.test("integer() and number() check type, finiteness and range", () => {
  assert.equal(run(s.number(), 1.5).value, 1.5);
  assert.deepEqual(run(s.integer(), 1.5).issues, [": expected an integer, got 1.5"]);
  assert.deepEqual(run(s.number(), Infinity).issues, [": expected a number, got Infinity"]);
  assert.deepEqual(run(s.number({ min: 0, max: 1 }), 2).issues, [
    ": expected a number 0–1, got 2",
  ]);
  assert.deepEqual(run(s.integer({ max: 9 }), 10).issues, [": expected an integer ≤ 9, got 10"]);
  assert.deepEqual(run(s.integer(), "5").issues, [': expected an integer, got "5"']);
});

Deno.test("boolean() takes only true or false", () => {
  assert.equal(run(s.boolean(), false).value, false);
  assert.deepEqual(run(s.boolean(), "true").issues, [': expected true or false, got "true"']);
});

Deno.test("enum() lists the allowed values and infers their union", () => {
  const e = s.enum(["drop-oldest", "reject-new"] as const);
  assert.equal(run(e, "reject-new").value, "reject-new");
  assert.deepEqual(run(e, "drop").issues, [
    ': expected one of drop-oldest, reject-new, got "drop"',
  ]);
  const _t: Equals<Infer<typeof e>, "drop-oldest" | "reject-new"> = true;
});

Deno.test("array() checks bounds and reports items by index", () => {
  const a = s.array(s.integer(), { min: 1, max: 2 });
  assert.deepEqual(run(a, [1, 2]).value, [1, 2]);
  assert.deepEqual(run(a, []).issues, [": expected a list of at least 1 item(s), got 0"]);
  assert.deepEqual(run(a, [1, 2, 3]).issues, [": expected a list of at most 2 items, got 3"]);
  assert.deepEqual(run(a, "1").issues, [': expected a list, got "1"']);
  assert.deepEqual(run(s.array(s.integer()), [1, "x", 3, "y"]).issues, [
    '1: expected an integer, got "x"',
    '3: expected an integer, got "y"',
  ]);
});

Deno.test("record() validates every value under its free-form key", () => {
  const r = s.record(s.integer());
  assert.deepEqual(run(r, { a: 1, b: 2 }).value, { a: 1, b: 2 });
  assert.deepEqual(run(r, { a: 1, b: "2" }).issues, ['b: expected an integer, got "2"']);
  assert.deepEqual(run(r, [1]).issues, [": expected a mapping, got a list"]);
});

Deno.test("duration() parses units into milliseconds and states its range", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration(" 1.5s "), 1500);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("30d"), 30 * 86_400_000);
  assert.equal(parseDuration("5 minutes"), undefined);
  assert.equal(parseDuration("-5s"), undefined);
  const d = s.duration({ min: 1000, max: 60_000 });
  assert.equal(run(d, "10s").value, 10_000);
  assert.equal(run(d, 5000).value, 5000, "a bare number is milliseconds");
  assert.deepEqual(run(d, "2h").issues, [
    ': expected a duration such as "500ms", "10s", "5m", "30d" between 1s and 60s, got "2h"',
  ]);
  assert.deepEqual(run(s.duration({ min: 1500 }), "1s").issues, [
    ': expected a duration such as "500ms", "10s", "5m", "30d" of at least 1500ms, got "1s"',
  ]);
  assert.deepEqual(run(s.duration(), "soon").issues, [
    ': expected a duration such as "500ms", "10s", "5m", "30d", got "soon"',
  ]);
  assert.deepEqual(run(s.duration(), -1).issues.length, 1);
});

Deno.test("bytes() parses binary multiples and states its range", () => {
  assert.equal(parseBytes("128KB"), 128 * 1024);
  assert.equal(parseBytes("1.5gb"), 1.5 * 1024 ** 3);
  assert.equal(parseBytes("512MiB"), 512 * 1024 ** 2);
  assert.equal(parseBytes("10"), undefined);
  assert.equal(formatBytes(128 * 1024), "128KB");
  assert.equal(formatBytes(1.5 * 1024 ** 3), "1.5GB");
  assert.equal(formatBytes(100), "100B");
  const b = s.bytes({ min: 1024, max: 1024 ** 2 });
  assert.equal(run(b, "64KB").value, 64 * 1024);
  assert.equal(run(b, 2048).value, 2048);
  assert.deepEqual(run(b, "2MB").issues, [
    ': expected a size such as "128KB", "500MB", "2GB" between 1KB and 1MB, got "2MB"',
  ]);
  assert.deepEqual(run(b, 1.5).issues.length, 1, "a fraction of a byte is refused");
  assert.deepEqual(run(s.bytes({ max: 1024 }), "big").issues, [
    ': expected a size such as "128KB", "500MB", "2GB" of at most 1KB, got "big"',
  ]);
});

Deno.test("refine runs only on a valid object and fails it with its own message", () => {
  let calls = 0;
  const range = s.object({ min: s.integer(), max: s.integer() }, {
    refine: (r, ctx, path) => {
      calls++;
      if (r.min > r.max) ctx.fail([...path, "min"], `expected min ≤ max (${r.max}), got ${r.min}`);
    },
  });
  assert.deepEqual(run(range, { min: 1, max: 2 }).value, { min: 1, max: 2 });
  assert.deepEqual(run(range, { min: 3, max: 2 }).issues, ["min: expected min ≤ max (2), got 3"]);
  assert.equal(calls, 2);
  run(range, { min: "a", max: 2 });
  assert.equal(calls, 2, "refine is skipped when a field is already invalid");
  const ctx = new Ctx();
  range.check({ min: 3, max: 2 }, ctx, ["retry"]);
  assert.deepEqual(ctx.issues[0].path, ["retry", "min"]);
});

Deno.test("conflict() records both places", () => {
  const ctx = new Ctx();
  assert.equal(ctx.conflict(["a", 1], "same port", ["a", 0]), INVALID);
  assert.deepEqual(ctx.issues, [{ path: ["a", 1], message: "same port", also: ["a", 0] }]);
});

const tcp = s.object({ host: s.string(), port: s.integer().default(502) }, {
  passthrough: ["kind"],
});
const serial = s.object({ device: s.string(), baud: s.integer().default(9600) }, {
  passthrough: ["kind"],
});
const link = s.tagged("kind", { tcp, serial });

Deno.test("tagged() picks the variant by its key and keeps the key in the value", () => {
  assert.deepEqual(run(link, { kind: "tcp", host: "plc" }).value, {
    kind: "tcp",
    host: "plc",
    port: 502,
  });
  assert.deepEqual(run(link, { kind: "serial", device: "/dev/ttyS0" }).value, {
    kind: "serial",
    device: "/dev/ttyS0",
    baud: 9600,
  });
});

Deno.test("tagged() infers a discriminated union that narrows without casts", () => {
  type Link = Infer<typeof link>;
  const _t: Equals<
    Link,
    { host: string; port: number; kind: "tcp" } | { device: string; baud: number; kind: "serial" }
  > = true;
  const describe = (l: Link): string => l.kind === "tcp" ? `${l.host}:${l.port}` : l.device;
  const v = run(link, { kind: "tcp", host: "plc", port: 5020 }).value!;
  assert.equal(describe(v), "plc:5020");
});

Deno.test("tagged() names a missing, unknown or misspelt tag and the variant's own errors", () => {
  assert.deepEqual(run(link, { host: "plc" }).issues, [
    ': missing required key "kind" (one of tcp, serial)',
  ]);
  assert.deepEqual(run(link, { kind: "tpc", host: "plc" }).issues, [
    'kind: expected one of tcp, serial, got "tpc" (did you mean "tcp"?)',
  ]);
  assert.deepEqual(run(link, { kind: 7 }).issues, ["kind: expected one of tcp, serial, got 7"]);
  assert.deepEqual(run(link, { kind: "tcp", device: "/dev/x" }).issues, [
    "device: unknown key; expected one of host, port",
    ': missing required key "host"',
  ]);
  assert.deepEqual(run(link, "tcp").issues, [': expected a mapping, got "tcp"']);
});

Deno.test("tagged() refuses a tag naming an inherited property instead of throwing", () => {
  for (const tag of ["constructor", "toString", "__proto__"]) {
    assert.deepEqual(run(link, { kind: tag }).issues, [
      `kind: expected one of tcp, serial, got "${tag}"`,
    ]);
  }
});

Deno.test("union() takes the first schema that accepts, else names what was expected", () => {
  const u = s.union<number | boolean>([s.number(), s.boolean()], "a number or true/false");
  assert.equal(run(u, 3).value, 3);
  assert.equal(run(u, false).value, false);
  assert.deepEqual(run(u, "x").issues, [': expected a number or true/false, got "x"']);
});

Deno.test("suggest() proposes a close key only", () => {
  assert.equal(suggest("prot", ["port", "host"]), ' (did you mean "port"?)');
  assert.equal(suggest("Retention", ["retention"]), ' (did you mean "retention"?)');
  assert.equal(suggest("zzzzzz", ["port", "host"]), "");
});

Deno.test("toJsonSchema() renders types, bounds, defaults, descriptions and required keys", () => {
  const schema = s.object({
    port: s.integer({ min: 1, max: 65535 }).default(502).describe("TCP port"),
    name: s.string({ min: 1, pattern: /^[a-z]+$/ }),
    mode: s.enum(["a", "b"] as const).optional(),
    tags: s.array(s.string(), { min: 1 }).optional(),
    every: s.duration().default(1000),
    cap: s.bytes().optional(),
  });
  const j = schema.toJsonSchema();
  assert.equal(j.type, "object");
  assert.equal(j.additionalProperties, false);
  assert.deepEqual(j.required, ["name"]);
  const p = j.properties as Record<string, Record<string, unknown>>;
  assert.deepEqual(p.port, {
    description: "TCP port",
    anyOf: [{ type: "integer", minimum: 1, maximum: 65535 }, {
      type: "string",
      pattern: "^\\$\\{[^}]+\\}$",
    }],
    default: 502,
  });
  assert.deepEqual(p.name, { type: "string", minLength: 1, pattern: "^[a-z]+$" });
  assert.deepEqual(p.mode, { enum: ["a", "b"] });
  assert.deepEqual(p.tags, { type: "array", items: { type: "string" }, minItems: 1 });
  assert.equal(p.every.default, 1000);
  assert.ok(Array.isArray(p.every.anyOf));
  assert.ok(Array.isArray(p.cap.anyOf));
  assert.deepEqual(s.record(s.boolean()).toJsonSchema(), {
    type: "object",
    additionalProperties: {
      anyOf: [{ type: "boolean" }, { type: "string", pattern: "^\\$\\{[^}]+\\}$" }],
    },
  });
});

Deno.test("toJsonSchema() of tagged() requires the tag and selects each variant by it", () => {
  const j = link.toJsonSchema();
  assert.deepEqual(j.required, ["kind"]);
  assert.deepEqual(j.properties, { kind: { enum: ["tcp", "serial"] } });
  const allOf = j.allOf as { if: unknown; then: Record<string, unknown> }[];
  assert.equal(allOf.length, 2);
  assert.deepEqual(allOf[0].if, { properties: { kind: { const: "tcp" } } });
  assert.deepEqual(allOf[0].then, tcp.toJsonSchema());
  assert.deepEqual(allOf[1].if, { properties: { kind: { const: "serial" } } });
});

Deno.test("a rejected value of a secret key (token, password, key) is never echoed in the error", () => {
  const schema = s.object({
    token: s.string({ min: 16 }),
    password: s.string({ pattern: /^\S+$/, patternName: "no spaces" }),
    name: s.string({ min: 16 }),
  });
  const r = run(schema, { token: "short-secret", password: "hunter 2", name: "plant" });
  assert.deepEqual(r.issues, [
    "token: expected a string of at least 16 characters, got 12 characters (not shown: a secret)",
    "password: expected no spaces, got 8 characters (not shown: a secret)",
    'name: expected a string of at least 16 characters, got "plant"',
  ]);
});
