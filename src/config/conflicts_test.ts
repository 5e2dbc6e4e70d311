import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./load.ts";
import { gatewaySchema } from "./gateway.ts";
import { listenOverlaps } from "./conflicts.ts";
import { adapters } from "../../adapters/mod.ts";
import { defineAdapter } from "../adapter.ts";
import { s } from "./schema.ts";

function problems(text: string): string[] {
  try {
    parseConfig(text, gatewaySchema(adapters), { displayName: "s.yaml" });
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  return [];
}

const REGS =
  "groups: [{ name: g, interval: 1s, registers: [{ name: r, function: holding, address: 0 }] }]";

function modbus(name: string, ports: string[], enabled = true): string {
  return `  - type: modbus
    name: ${name}
    enabled: ${enabled}
    devices:
${
    ports.map((p, i) =>
      `      - { name: ${name}-${i}, rtu: { port: ${p}, baudRate: 9600 }, ${REGS} }\n`
    ).join("")
  }`;
}

Deno.test("one serial port in two modbus entries is refused naming both places; one entry may share it", () => {
  const ok = problems(
    `gateway: { id: g }\nadapters:\n${modbus("a", ["/dev/ttyS7", "/dev/ttyS7"])}`,
  );
  assert.deepEqual(ok, []);
  const twice = problems(
    `gateway: { id: g }\nadapters:\n${modbus("a", ["/dev/ttyS7"])}${modbus("b", ["/dev/ttyS7"])}`,
  );
  assert.equal(twice.length, 1);
  assert.match(
    twice[0],
    /^s\.yaml:12:35 adapters\[1\]\.devices\[0\]\.rtu\.port: serial port "\/dev\/ttyS7" is opened by two adapters.* \(also adapters\[0\]\.devices\[0\]\.rtu\.port at s\.yaml:7:35\)$/,
  );
  const disabled = problems(
    `gateway: { id: g }\nadapters:\n${modbus("a", ["/dev/ttyS7"])}${
      modbus("b", ["/dev/ttyS7"], false)
    }`,
  );
  assert.deepEqual(disabled, [], "a disabled entry opens nothing");
});

Deno.test("a serial port reached through a symlink is the same port", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ttyUSB0`, "");
    await Deno.symlink(`${dir}/ttyUSB0`, `${dir}/by-id-plc`);
    const p = problems(
      `gateway: { id: g }\nadapters:\n${modbus("a", [`${dir}/ttyUSB0`])}${
        modbus("b", [`${dir}/by-id-plc`])
      }`,
    );
    assert.equal(p.length, 1);
    assert.match(p[0], new RegExp(`serial port "${dir}/by-id-plc" \\(${dir}/ttyUSB0\\) is opened`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one listen address for two servers is refused naming both places", () => {
  const http = (name: string, listen: string) =>
    `  - { type: http, name: ${name}, listen: "${listen}", tokens: [{ token: abcdefghijklmnopqrstu }] }\n`;
  const two = problems(
    `gateway: { id: g }\nadapters:\n${http("a", "127.0.0.1:9001")}${http("b", "127.0.0.1:9001")}`,
  );
  assert.deepEqual(two, [
    `s.yaml:4:36 adapters[1].listen: listen address "127.0.0.1:9001" is taken by another server ("127.0.0.1:9001"); the second one could not start (also adapters[0].listen at s.yaml:3:36)`,
  ]);
  const own = problems(`gateway: { id: g }\nadapters:\n${http("a", "localhost:8787")}`);
  assert.match(own[0], /adapters\[0\]\.listen: .* \(also http\.listen at s\.yaml:1:1\)$/);
  const apart = problems(
    `gateway: { id: g }\nadapters:\n${http("a", "127.0.0.1:9001")}${http("b", "127.0.0.2:9001")}`,
  );
  assert.deepEqual(apart, []);
});

Deno.test("duplicate adapter names name both entries", () => {
  const p = problems(
    "gateway: { id: g }\nadapters:\n  - { type: simulated, name: s }\n  - { type: simulated, name: s }\n",
  );
  assert.deepEqual(p, [
    `s.yaml:4:30 adapters[1].name: duplicate adapter name "s" (also adapters[0].name at s.yaml:3:30)`,
  ]);
});

Deno.test("any adapter's claims() take part: its serial ports and listen addresses conflict by the same rules", () => {
  const gadget = defineAdapter({
    type: "gadget",
    schema: s.object({ line: s.string(), serve: s.string() }),
    claims: (c) => ({
      serialPorts: [{ port: c.line, at: ["line"] }],
      listen: [{ address: c.serve, at: ["serve"] }],
    }),
    start: () => Promise.resolve(),
  });
  const schema = gatewaySchema({ ...adapters, gadget });
  const entry = (name: string, line: string, serve: string) =>
    `  - { type: gadget, name: ${name}, line: ${line}, serve: "${serve}" }\n`;
  const lines = (text: string) => {
    try {
      parseConfig(text, schema, { displayName: "g.yaml" });
      return [];
    } catch (e) {
      return (e as ConfigError).message.split("\n");
    }
  };
  assert.deepEqual(
    lines(
      `gateway: { id: g }\nadapters:\n${entry("a", "/dev/ttyS9", "127.0.0.1:9101")}${
        entry("b", "/dev/ttyS9", "127.0.0.1:9101")
      }${modbus("m", ["/dev/ttyS9"])}`,
    ),
    [
      `g.yaml:4:36 adapters[1].line: serial port "/dev/ttyS9" is opened by two adapters, and each would read the other's responses: put all devices of one line in one gadget entry (also adapters[0].line at g.yaml:3:36)`,
      `g.yaml:4:55 adapters[1].serve: listen address "127.0.0.1:9101" is taken by another server ("127.0.0.1:9101"); the second one could not start (also adapters[0].serve at g.yaml:3:55)`,
      `g.yaml:9:35 adapters[2].devices[0].rtu.port: serial port "/dev/ttyS9" is opened by two adapters, and each would read the other's responses: put all devices of one line in one modbus entry (also adapters[0].line at g.yaml:3:36)`,
    ],
  );
});

Deno.test("listenOverlaps(): same port with the same host, a wildcard or localhost", () => {
  assert.ok(listenOverlaps("0.0.0.0:80", "127.0.0.1:80"));
  assert.ok(listenOverlaps("[::]:80", "10.0.0.1:80"));
  assert.ok(listenOverlaps("localhost:80", "127.0.0.1:80"));
  assert.ok(!listenOverlaps("127.0.0.1:80", "127.0.0.1:81"));
  assert.ok(!listenOverlaps("127.0.0.1:80", "[::1]:80"));
});
