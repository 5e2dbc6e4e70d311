import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./load.ts";
import { gatewaySchema } from "./gateway.ts";
import { s } from "./schema.ts";
import { adapters } from "../../adapters/mod.ts";
import { configJsonSchema } from "../cli/mod.ts";

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
