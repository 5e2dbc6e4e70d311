import assert from "node:assert/strict";
import { ConfigError, loadConfigFile, parseConfig } from "./load.ts";
import { gatewaySchema } from "./gateway.ts";
import { s } from "./schema.ts";
import { adapters } from "../../adapters/mod.ts";
import { configJsonSchema } from "../cli/mod.ts";
import { laughs } from "../../test/helpers/hostile.ts";

const schema = s.object({
  port: s.integer({ min: 1, max: 65535 }),
  secret: s.string().optional(),
  on: s.boolean().default(false),
});

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, schema, {
      displayName: "t.yaml",
      env: (n) => env[n],
      readFile: () => "s3cret\n",
    });
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  return [];
}

Deno.test("${NAME} substitutes environment variables; a whole-value reference keeps its type", () => {
  const v = parseConfig("port: ${PORT}\non: ${ON}\nsecret: pre-${S:-dflt}", schema, {
    env: (n) => ({ PORT: "1883", ON: "true" } as Record<string, string>)[n],
  });
  assert.deepEqual(v, { port: 1883, on: true, secret: "pre-dflt" });
});

Deno.test("${file:PATH} reads a secret file without its trailing newline", () => {
  const v = parseConfig("port: 1\nsecret: ${file:/run/secrets/x}", schema, {
    readFile: () => "s3cret\n",
  });
  assert.equal(v.secret, "s3cret");
});

Deno.test("errors name file:line:col, the key path and every problem at once", () => {
  assert.deepEqual(problems("port: 70000\nextra: 1\nsecret: ${NOPE}\n"), [
    "t.yaml:1:7 port: expected an integer 1–65535, got 70000",
    "t.yaml:2:1 extra: unknown key; expected one of port, secret, on",
    "t.yaml:3:9 secret: environment variable NOPE is not set (referenced as ${NOPE})",
  ]);
  assert.deepEqual(problems("port: 70000\n"), [
    "t.yaml:1:7 port: expected an integer 1–65535, got 70000",
  ]);
});

Deno.test("unknown keys suggest the closest known key", () => {
  assert.match(problems("prot: 1\n")[0], /prot: unknown key \(did you mean "port"\?\)/);
});

Deno.test("config/schema.json is generated from the same schema (run `deno task schema`)", async () => {
  const onDisk = JSON.parse(
    await Deno.readTextFile(new URL("../../config/schema.json", import.meta.url)),
  );
  assert.deepEqual(onDisk, configJsonSchema({ adapters }));
});

Deno.test("the gateway schema fills defaults for an almost empty file", () => {
  const c = parseConfig("gateway: { id: gw-1 }", gatewaySchema(adapters));
  assert.equal(c.buffer.retention, 30 * 86_400_000);
  assert.equal(c.buffer.commitInterval, 20);
  assert.equal(c.http.listen, "127.0.0.1:8787");
  assert.deepEqual(c.adapters, []);
});

function gatewayProblems(text: string): string[] {
  try {
    parseConfig(text, gatewaySchema(adapters), { displayName: "t.yaml" });
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  return [];
}

Deno.test("a 100,000-deep flow list is refused before parsing, naming where", () => {
  const deep = "gateway: { id: gw }\nx: " + "[".repeat(100_000) + "]".repeat(100_000) + "\n";
  assert.deepEqual(gatewayProblems(deep), [
    "t.yaml:2:67 nested deeper than 64 levels of mappings and lists",
  ]);
  const maps = gatewayProblems("gateway: { id: gw }\nx: " + "[{a: ".repeat(50_000));
  assert.match(maps[0], /^t\.yaml:2:\d+ nested deeper than 64 levels/);
  const huge = "gateway: { id: gw }\n#" + "x".repeat(300_000);
  assert.match(gatewayProblems(huge)[0], /^t\.yaml:1:1 config is \d+ characters; at most 262144/);
});

Deno.test("deep block nesting (compact `- - -` and indented maps) is refused", () => {
  assert.match(gatewayProblems("- ".repeat(100_000) + "x\n")[0], /nested deeper than 64 levels/);
  const indented = Array.from({ length: 200 }, (_, i) => " ".repeat(i) + `k${i}:`).join("\n");
  assert.match(gatewayProblems(indented)[0], /^t\.yaml:65:\d+ nested deeper than 64 levels/);
});

Deno.test("billion laughs: aliases expand to at most 10,000 values", () => {
  const p = gatewayProblems("gateway: { id: gw }\n" + laughs());
  assert.equal(p.length, 1);
  assert.match(p[0], /^t\.yaml:\d+:\d+ x\d.*: aliases expand to more than 10000 values/);
});

Deno.test("an alias inside itself is refused, not followed forever", () => {
  assert.match(gatewayProblems("gateway: { id: gw }\nx: &a [1, *a]\n")[0], /nested deeper than 64/);
});

Deno.test("aliases of a few values resolve like the anchored value", () => {
  const v = parseConfig("x: &a 5\ny: *a\n", s.object({ x: s.number(), y: s.number() }));
  assert.deepEqual(v, { x: 5, y: 5 });
});

Deno.test("more than 20,000 values in one file are refused (each costs heap while parsing)", () => {
  const flat = "gateway: { id: gw }\nx: [" + "1,".repeat(30_000) + "1]\n";
  assert.match(gatewayProblems(flat)[0], /^t\.yaml:2:\d+ more than 20000 values in one config$/);
});

Deno.test("a whole-value reference is re-read within the same limits", () => {
  const v = parseConfig("secret: ${DEEP}", s.object({ secret: s.string() }), {
    env: () => "[".repeat(100_000),
  });
  assert.equal(v.secret, "[".repeat(100_000));
});

Deno.test("a file with thousands of problems reports the first 20 and how many more", () => {
  const p = gatewayProblems("gateway: { id: gw }\n" + "}{ x\n".repeat(5000));
  assert.equal(p.length, 21);
  assert.match(p[0], /^t\.yaml:2:\d+ YAML syntax error: /);
  assert.match(p[20], /^t\.yaml:\d+:\d+ \d+ more problems not shown; fix these first$/);
});

Deno.test("loadConfigFile() reads no more than 256 KB + 1 byte of a file or device", () => {
  for (const path of ["/dev/zero", "/dev/urandom"]) {
    assert.throws(
      () => loadConfigFile(path, gatewaySchema(adapters)),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message === `${path}:1:1 config file is larger than 262144 bytes (the most read)`,
    );
  }
});
