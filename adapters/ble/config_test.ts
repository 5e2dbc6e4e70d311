import { deepEqual, ok, throws } from "node:assert/strict";
import { gatewaySchema } from "../../src/config/gateway.ts";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { ble } from "./mod.ts";

const schema = gatewaySchema({ ble });

function problems(adapter: string): string[] {
  const text = `gateway: { id: gw }\nadapters:\n  - type: ble\n    name: ble\n${adapter}`;
  try {
    parseConfig(text, schema);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
  return [];
}

Deno.test("example.yaml is a valid gateway config", () => {
  const text = Deno.readTextFileSync(new URL("./example.yaml", import.meta.url));
  const config = parseConfig(text, schema, { displayName: "example.yaml" });
  const entry = config.adapters[0];
  deepEqual(entry.type, "ble");
  const c = entry.config as ReturnType<typeof ble.schema.check>;
  ok(typeof c === "object");
  deepEqual(c.bus, "system");
  deepEqual(c.layouts["nordic-tank"].manufacturer, 0x59);
  deepEqual(c.layouts["nordic-tank"].fields[1].scale, 1);
  deepEqual(c.devices[1].interval, 10_000);
  deepEqual(c.interval, 30_000);
});

Deno.test("ble config rejects unknown keys, naming the closest one", () => {
  deepEqual(
    problems(
      '    scanInterval: 5s\n    devices: [{ name: a, address: "AA:BB:CC:DD:EE:01", decoder: ruuvi }]\n',
    ),
    [
      'adapters[0].scanInterval: unknown key (did you mean "interval"?); expected one of bus, busAddress, adapter, interval, rssi, staleAfter, retryInterval, layouts, devices, discover',
    ],
  );
});

Deno.test("ble config rejects unknown decoders, duplicate names and duplicate addresses", () => {
  const found = problems([
    "    layouts:",
    "      ruuvi: { manufacturer: 1, fields: [{ metric: v, offset: 0, type: uint8 }] }",
    "    devices:",
    '      - { name: a, address: "AA:BB:CC:DD:EE:01", decoder: bthome }',
    '      - { name: a, address: "aa:bb:cc:dd:ee:01", decoder: xiaomi }',
    "",
  ].join("\n"));
  deepEqual(found.sort(), [
    "adapters[0].devices[1].address: duplicate address AA:BB:CC:DD:EE:01 (also devices[0])",
    'adapters[0].devices[1].decoder: unknown decoder "xiaomi"; expected one of bthome, ruuvi',
    'adapters[0].devices[1].name: duplicate device name "a" (also devices[0])',
    'adapters[0].layouts.ruuvi: "ruuvi" is a built-in decoder; choose another name',
  ]);
});

Deno.test("ble config checks addresses, field types and discover rules", () => {
  const found = problems([
    "    layouts:",
    "      tank: { manufacturer: 1, fields: [{ metric: x, offset: 0, type: int24 }] }",
    "    devices:",
    '      - { name: a, address: "AA:BB:CC:DD:EE", decoder: bthome }',
    "    discover:",
    "      - { decoder: bthome, prefix: p }",
    "",
  ].join("\n"));
  deepEqual(found.length, 3, found.join("\n"));
  ok(
    found[0].startsWith("adapters[0].layouts.tank.fields[0].type: expected one of int8, uint8"),
    found[0],
  );
  ok(found[1].startsWith("adapters[0].devices[0].address: expected a Bluetooth address"), found[1]);
  deepEqual(
    found[2],
    'adapters[0].discover[0]: expected exactly one of "serviceUuid" or "manufacturer"',
  );
});

Deno.test("ble config wants one payload source per layout and keeps rssi for the signal", () => {
  const found = problems([
    "    layouts:",
    "      both:",
    "        manufacturer: 1",
    '        serviceData: "aa01"',
    "        fields:",
    "          - { metric: rssi, offset: 0, type: uint8 }",
    "          - { metric: v, offset: 1, type: uint8 }",
    "          - { metric: v, offset: 2, type: uint8 }",
    "    discover:",
    "      - { serviceUuid: fcd2, decoder: both, prefix: p }",
    "",
  ].join("\n"));
  deepEqual(found, [
    'adapters[0].layouts.both: expected exactly one of "manufacturer" or "serviceData" as the payload source',
    'adapters[0].layouts.both.fields[0].metric: "rssi" is reserved for the signal strength',
    'adapters[0].layouts.both.fields[2].metric: duplicate metric "v"',
  ]);
});

Deno.test("ble config needs at least one device or discover rule", () => {
  const found = problems("");
  deepEqual(found, ['adapters[0]: expected at least one entry in "devices" or "discover"']);
  throws(
    () =>
      parseConfig("gateway: { id: gw }\nadapters: [{ type: ble, name: b, devices: [] }]", schema),
    ConfigError,
  );
});
