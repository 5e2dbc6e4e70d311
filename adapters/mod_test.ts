/**
 * The shape every adapter folder keeps, so a new adapter is one copied folder plus one line in
 * `adapters/mod.ts`: its files, its registry entry under the folder name, and an example that
 * `outpost check-config` accepts.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { gatewaySchema } from "../src/config/gateway.ts";
import { parseConfig } from "../src/config/load.ts";
import type { JsonSchema } from "../src/config/schema.ts";
import type { AdapterRegistry } from "../src/adapter.ts";
import { adapters } from "./mod.ts";

const registry: AdapterRegistry = adapters;

const ROOT = new URL("./", import.meta.url);

/** The adapter folders under adapters/. */
function folders(): string[] {
  return [...Deno.readDirSync(ROOT)]
    .filter((e) => e.isDirectory)
    .map((e) => e.name)
    .sort();
}

/** A distinct secret for every `${ENV}` and `${file:…}` an example names. */
const FAKE_SECRETS = {
  env: (name: string) => `example-secret-env-${name}`,
  readFile: (path: string) => `example-secret-file-${path}\n`,
};

Deno.test("every adapter folder has mod.ts, config.ts, README.md, example.yaml and <name>_test.ts", () => {
  const names = folders();
  assert.ok(names.length >= 7, `found adapter folders: ${names.join(", ")}`);
  const missing: string[] = [];
  for (const name of names) {
    for (const file of ["mod.ts", "config.ts", "README.md", "example.yaml", `${name}_test.ts`]) {
      try {
        Deno.statSync(new URL(`${name}/${file}`, ROOT));
      } catch {
        missing.push(`adapters/${name}/${file}`);
      }
    }
  }
  assert.deepEqual(missing, [], `missing files: ${missing.join(", ")}`);
});

Deno.test("every adapter folder is registered in adapters/mod.ts under its folder name, and only those", () => {
  assert.deepEqual(Object.keys(adapters).sort(), folders());
  for (const [key, mod] of Object.entries(adapters)) {
    assert.equal(mod.type, key, `adapters/${key}: the module's type is its folder name`);
  }
});

Deno.test("every adapter's example.yaml passes check-config within a minimal gateway config", () => {
  const schema = gatewaySchema(adapters);
  for (const name of folders()) {
    const file = `adapters/${name}/example.yaml`;
    let text = Deno.readTextFileSync(new URL(`${name}/example.yaml`, ROOT));
    const doc = parseYaml(text) as Record<string, unknown>;
    if (!doc.gateway) text = `gateway:\n  id: example\n${text}`;
    const c = parseConfig(text, schema, { displayName: file, ...FAKE_SECRETS });
    assert.ok(c.adapters.length > 0, `${file} declares an adapter`);
    assert.ok(
      c.adapters.some((a) => a.type === name),
      `${file} declares a ${name} adapter`,
    );
  }
});

Deno.test("every adapter README names each of its top-level config keys", () => {
  const missing: string[] = [];
  for (const name of folders()) {
    const readme = Deno.readTextFileSync(new URL(`${name}/README.md`, ROOT));
    const json: JsonSchema = registry[name].schema.toJsonSchema();
    for (const key of Object.keys((json.properties ?? {}) as Record<string, unknown>)) {
      if (key === "type") continue;
      if (!readme.includes(`\`${key}\``) && !readme.includes(`\`${key}.`)) {
        missing.push(`adapters/${name}/README.md: ${key}`);
      }
    }
  }
  assert.deepEqual(missing, [], `config keys the README does not name: ${missing.join(", ")}`);
});

Deno.test("a config validated against the registry narrows each entry's config by its type", () => {
  const c = parseConfig(
    "gateway: { id: g }\nadapters:\n  - { type: simulated, name: sim, devices: 2 }\n",
    gatewaySchema(adapters),
  );
  const entry = c.adapters[0];
  // `entry.config.devices` type-checks only once `type` has narrowed the union.
  assert.equal(entry.type === "simulated" ? entry.config.devices : undefined, 2);
});

Deno.test("adapters that poll say how often (modbus: the slowest group; simulated: its interval)", () => {
  const gw = parseConfig(
    `
gateway: { id: poll-gw }
adapters:
  - type: simulated
    name: sim
    interval: 250ms
  - type: modbus
    name: plc
    profiles:
      meter: { groups: [{ interval: 5s, registers: [{ name: p, function: holding, address: 0, type: uint16 }] }] }
    devices:
      - name: m1
        tcp: { host: 127.0.0.1 }
        profile: meter
        groups: [{ interval: 500ms, registers: [{ name: q, function: holding, address: 1, type: uint16 }] }]
  - type: http
    name: ingest
    tokens: [{ name: a, token: "0123456789abcdef0123" }]
`,
    gatewaySchema(adapters),
  );
  const interval = (i: number) => {
    const e = gw.adapters[i];
    return registry[e.type].pollInterval?.(e.config);
  };
  assert.equal(interval(0), 250);
  assert.equal(interval(1), 5000);
  assert.equal(interval(2), undefined);
});
