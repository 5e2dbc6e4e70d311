import assert from "node:assert/strict";
import { protectedChanges } from "./trust.ts";

const BASE = `gateway: { id: gw, site: "\${SITE:-plant}" }
uplink: { type: mqtt, url: mqtt://h:1883, password: "\${file:/etc/outpost/broker.pass}" }
commands:
  operatorKeys: [{ key: "ed25519:AAA=", scopes: [read] }]
adapters:
  - { type: exec, name: probe, command: /usr/bin/probe }
  - { type: simulated, name: sim, devices: 2 }
update:
  channel: https://releases.example.com/stable/
  trustedKeys: ["ed25519:BBB="]
  checkInterval: 6h
`;

function paths(after: string, before = BASE): string[] {
  return protectedChanges(before, after).map((c) => c.path);
}

Deno.test("protectedChanges() allows ordinary changes, reordered adapters and references kept in place", () => {
  assert.deepEqual(paths(BASE), []);
  assert.deepEqual(paths(BASE.replace("devices: 2", "devices: 3")), []);
  assert.deepEqual(paths(BASE.replace("checkInterval: 6h", "checkInterval: 1h")), []);
  const reordered = BASE.replace(
    "  - { type: exec, name: probe, command: /usr/bin/probe }\n  - { type: simulated, name: sim, devices: 2 }",
    "  - { type: simulated, name: sim, devices: 2 }\n  - { type: exec, name: probe, command: /usr/bin/probe }",
  );
  assert.notEqual(reordered, BASE);
  assert.deepEqual(paths(reordered), []);
  // Not YAML: left to the validation, which refuses it.
  assert.deepEqual(paths("gateway: [\n  id: x"), []);
});

Deno.test("protectedChanges() names every trust anchor a remote config-set touches", () => {
  assert.deepEqual(paths(BASE.replace("scopes: [read]", "scopes: [read, admin]")), [
    "commands.operatorKeys",
  ]);
  assert.deepEqual(paths(BASE.replace("commands:\n", "commands:\n  insecureUnsigned: true\n")), [
    "commands.insecureUnsigned",
  ]);
  assert.deepEqual(paths(BASE.replace(/commands:\n.*\n/, "")), ["commands.operatorKeys"]);
  assert.deepEqual(paths(BASE.replace("releases.example.com", "evil.example.com")), [
    "update.channel",
  ]);
  assert.deepEqual(paths(BASE.replace("BBB=", "CCC=")), ["update.trustedKeys"]);
  assert.deepEqual(
    paths(BASE.replace("checkInterval: 6h", "allowInsecure: true\n  checkInterval: 6h")),
    [
      "update.allowInsecure",
    ],
  );
  assert.deepEqual(paths(BASE.replace(/update:\n(.*\n)*/, "")), ["update"]);
  assert.deepEqual(paths(`${BASE}devices:\n  exec: { command: /usr/bin/flash }\n`), [
    "devices.exec",
  ]);
  assert.deepEqual(paths(BASE.replace("/usr/bin/probe", "/bin/sh")), ["adapters[name=probe]"]);
  assert.deepEqual(
    paths(BASE.replace("  - { type: exec, name: probe, command: /usr/bin/probe }\n", "")),
    [
      "adapters[name=probe]",
    ],
  );
  assert.deepEqual(
    paths(
      BASE.replace("type: simulated, name: sim, devices: 2", "type: exec, name: sim, command: sh"),
    ),
    [
      "adapters[name=sim]",
    ],
  );
  // An adapter whose type is a reference may be exec: it is guarded like one.
  const typed = BASE.replace("type: simulated, name: sim", 'type: "${SIM_TYPE}", name: sim');
  assert.deepEqual(paths(typed.replace("devices: 2", "devices: 3"), typed), ["adapters[name=sim]"]);
  // References: new ones, and existing ones moved where their value would show.
  assert.deepEqual(paths(BASE.replace('"${SITE:-plant}"', '"${file:/etc/shadow}"')), [
    "gateway.site",
  ]);
  assert.deepEqual(paths(BASE.replace("devices: 2", 'devices: 2, prefix: "x${HOME}"')), [
    "adapters[name=sim].prefix",
  ]);
  assert.deepEqual(
    paths(BASE.replace('"${SITE:-plant}"', '"${file:/etc/outpost/broker.pass}"')),
    ["gateway.site"],
  );
  // YAML aliases are resolved before comparing: no way around by indirection.
  const aliased = BASE.replace(
    "channel: https://releases.example.com/stable/",
    "channel: &c https://evil.example.com/\n  channelName: *c",
  );
  assert.deepEqual(paths(aliased), ["update.channel", "update.channelName"]);
});

Deno.test("protectedChanges() leaves YAML beyond the loader's limits to validation, unparsed", () => {
  const base = "gateway: { id: gw }\n";
  // 100,000-deep flow list: parsed naively it exhausts a 64 MB heap.
  assert.deepEqual(protectedChanges(base, base + "x: " + "[".repeat(100_000) + "\n"), []);
  // Alias expansion beyond what toJS allows: not a crash, refused later by validation.
  let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (let i = 1; i < 8; i++) {
    const prev = String.fromCharCode(96 + i);
    const cur = String.fromCharCode(97 + i);
    laughs += `${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(", ")}]\n`;
  }
  assert.deepEqual(protectedChanges(base, base + laughs), []);
});
