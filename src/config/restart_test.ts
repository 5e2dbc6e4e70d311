import assert from "node:assert/strict";
import { adapters } from "../../adapters/mod.ts";
import { gatewaySchema } from "./gateway.ts";
import { parseConfig } from "./load.ts";
import { restartOnly } from "./restart.ts";

const BASE = `gateway: { id: r }
buffer: { path: data/b.db }
adapters:
  - { type: simulated, name: sim, devices: 1 }
`;
const parse = (extra = "", base = BASE) => parseConfig(base + extra, gatewaySchema(adapters));

Deno.test("restartOnly() names the sections a reload does not apply, and nothing a reload does", () => {
  assert.deepEqual(restartOnly(parse(), parse()), []);
  // Applied by a reload: adapters, rules, the uplink.
  assert.deepEqual(
    restartOnly(parse(), parse("rules: []\nuplink: { type: mqtt, url: mqtt://127.0.0.1:1883 }\n")),
    [],
  );
  assert.deepEqual(restartOnly(parse(), parse("http: { listen: 127.0.0.1:9999 }\n")), ["http"]);
  assert.deepEqual(restartOnly(parse(), parse("log: { level: debug }\n")), ["log"]);
  assert.deepEqual(
    restartOnly(parse(), parse("", BASE.replace("data/b.db", "data/c.db"))),
    ["buffer.path"],
  );
  // devices: and update: (their own schemas need channels and keys; the comparison is the same).
  const plain = parse();
  const withDevices = { ...plain, devices: { classes: {} }, update: { channel: "x" } } as never;
  assert.deepEqual(restartOnly(plain, withDevices), ["update", "devices"]);
});
