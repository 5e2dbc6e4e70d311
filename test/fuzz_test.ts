/**
 * Seeded fuzzing of every ingest parser and of the config loader, called directly (no broker,
 * no process): 110,000 cases. Each parser must return its result or its documented refusal,
 * never throw anything else, keep its output bounded and valid, and give back exactly what a
 * valid input holds. A failure names the seed: `FUZZ_SEED=<n> deno test -A test/fuzz_test.ts`
 * repeats the run.
 */
import assert from "node:assert/strict";
import { mulberry32 } from "../src/rng.ts";
import { checkReading, type Reading } from "../src/reading.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { ConfigError, parseConfig } from "../src/config/load.ts";
import { gatewaySchema } from "../src/config/gateway.ts";
import { adapters } from "../adapters/mod.ts";
import { compileSubscription, mqtt, type MqttConfig } from "../adapters/mqtt/mod.ts";
import { MAX_READINGS_PER_MESSAGE } from "../adapters/mqtt/_parse.ts";
import { type MapOptions, mapPayload, parseAvailability } from "../adapters/zigbee2mqtt/mod.ts";
import { parseBody } from "../adapters/http/mod.ts";
import { parseLine } from "../adapters/exec/_parse.ts";
import { type Codec, decodeRegisters, encodeRegisters } from "../adapters/modbus/_decode.ts";
import { ModbusEncodeError } from "../adapters/modbus/mod.ts";
import { laughs } from "./helpers/hostile.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_261_203) >>> 0;
/** Longest refusal message allowed: they go into logs and replies. */
const MAX_ERROR_CHARS = 1000;

type Rnd = () => number;

/** Runs `cases` cases of `body` from a seed derived from SEED; a failure names seed and case. */
function fuzz(name: string, salt: number, cases: number, body: (rnd: Rnd) => void): void {
  const rnd = mulberry32(SEED ^ salt);
  for (let i = 0; i < cases; i++) {
    try {
      body(rnd);
    } catch (e) {
      throw new Error(
        `${name}: case ${i} of FUZZ_SEED=${SEED} failed: ${(e as Error).message.slice(0, 2000)}`,
        { cause: e },
      );
    }
  }
}

const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)];

const SCALARS: unknown[] = [
  0,
  -1.5,
  1e308,
  -1e-300,
  true,
  false,
  null,
  "",
  "12.5",
  "x",
  "ON",
  "2024-01-01T00:00:00Z",
  1_700_000_000,
  "\u0000",
  "💡",
];
const KEYS = ["a", "temp", "ts", "0", "constructor", "__proto__", "a.b", "value", "device", "x y"];

/** A random JSON value; now and then a hostile one (deep, wide). */
function randomJson(rnd: Rnd, depth = 0): unknown {
  const k = rnd();
  if (depth > 5 || k < 0.4) return pick(rnd, SCALARS);
  if (k < 0.6) return Array.from({ length: int(rnd, 4) }, () => randomJson(rnd, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = int(rnd, 5); i > 0; i--) o[pick(rnd, KEYS)] = randomJson(rnd, depth + 1);
  return o;
}

/** Text that breaks the shape limits: nesting of 20–200 levels or up to 12,000 values. */
function hostileJson(rnd: Rnd): string {
  if (rnd() < 0.5) {
    const d = 20 + int(rnd, 180);
    return "[".repeat(d) + (rnd() < 0.5 ? "]".repeat(d) : "");
  }
  return `[${"1,".repeat(int(rnd, 12_000))}1]`;
}

function mutate(rnd: Rnd, text: string): string {
  const chars = [...text];
  for (let m = 1 + int(rnd, 4); m > 0; m--) {
    const at = int(rnd, chars.length + 1);
    const k = rnd();
    const ch = pick(rnd, ["[", "{", "]", "}", ",", '"', ":", "\n", "\\", "-", "&", "*", " "]);
    const any = String.fromCharCode(int(rnd, 0x250));
    if (k < 0.3) chars[at] = rnd() < 0.5 ? ch : any;
    else if (k < 0.6) chars.splice(at, 1);
    else chars.splice(at, 0, rnd() < 0.5 ? ch : any);
  }
  return chars.join("");
}

function randomBytes(rnd: Rnd): Uint8Array {
  return Uint8Array.from({ length: int(rnd, 40) }, () => int(rnd, 256));
}

/** A finite number that survives String()/JSON and back exactly. */
function num(rnd: Rnd): number {
  const k = rnd();
  if (k < 0.3) return int(rnd, 2000) - 1000;
  if (k < 0.6) return Math.round((rnd() - 0.5) * 1e6) / 100;
  return (rnd() - 0.5) * 10 ** int(rnd, 12);
}

function metricName(rnd: Rnd): string {
  return pick(rnd, ["t", "temp", "hum", "p1", "energy_kwh", "v"]) + int(rnd, 100);
}

function assertReadings(readings: readonly Reading[], now: number, max: number): void {
  assert.ok(readings.length <= max, `${readings.length} readings, at most ${max}`);
  for (const r of readings) assert.equal(checkReading(r, now), undefined, JSON.stringify(r));
}

function assertRefusal(error: unknown): void {
  assert.equal(typeof error, "string");
  assert.ok((error as string).length <= MAX_ERROR_CHARS, `error of ${(error as string).length}`);
}

function mqttSub(raw: Record<string, unknown>) {
  const ctx = new Ctx();
  const c = mqtt.schema.check({ url: "mqtt://h", subscriptions: [raw] }, ctx, []);
  assert.notEqual(c, INVALID, JSON.stringify(ctx.issues));
  return compileSubscription((c as MqttConfig).subscriptions[0]);
}

Deno.test("fuzz: mqtt JSON payloads (25,000 cases)", () => {
  const now = Date.now();
  const free = mqttSub({ topic: "j/{device}", timestampField: "ts" });
  const mapped = mqttSub({
    topic: "j/{device}",
    fields: { "env.temp": { metric: "temperature", scale: 0.1 }, "v.0": "first", a: "a" },
  });
  const m = free.match("j/dev-1")!;
  fuzz("mqtt json", 1, 25_000, (rnd) => {
    const k = rnd();
    if (k < 0.25) {
      // Valid: a flat or nested object of numbers and booleans comes back value for value.
      const doc: Record<string, unknown> = {};
      const expected = new Map<string, number | boolean>();
      for (let i = 1 + int(rnd, 6); i > 0; i--) {
        const name = metricName(rnd);
        const v = rnd() < 0.8 ? num(rnd) : rnd() < 0.5;
        if (rnd() < 0.3) {
          doc.g = { ...(doc.g as object ?? {}), [name]: v };
          expected.set(`g.${name}`, v);
        } else {
          doc[name] = v;
          expected.set(name, v);
        }
      }
      const r = free.parse(m, JSON.stringify(doc), now);
      assert.ok(!("error" in r), JSON.stringify(r));
      assert.deepEqual(
        new Map(r.readings.map((x) => [x.metric, x.value])),
        expected,
      );
      return;
    }
    const payload = k < 0.55
      ? JSON.stringify(randomJson(rnd)) ?? ""
      : k < 0.8
      ? mutate(rnd, JSON.stringify({ env: { temp: 215 }, v: [1, 2], a: true, ts: 1.7e9 }))
      : k < 0.9
      ? hostileJson(rnd)
      : randomBytes(rnd);
    for (const sub of [free, mapped]) {
      const r = sub.parse(m, payload, now);
      if ("error" in r) assertRefusal(r.error);
      else assertReadings(r.readings, now, MAX_READINGS_PER_MESSAGE);
    }
  });
});

Deno.test("fuzz: mqtt CSV and number payloads (20,000 cases)", () => {
  const now = Date.now();
  const csv = mqttSub({
    topic: "c/{device}",
    format: "csv",
    columns: ["-", "a", { metric: "b", unit: "V" }],
    timestampColumn: 0,
  });
  const number = mqttSub({ topic: "n/{device}/{metric}", format: "number" });
  const mc = csv.match("c/d")!;
  const mn = number.match("n/d/volts")!;
  fuzz("mqtt csv", 2, 15_000, (rnd) => {
    const k = rnd();
    if (k < 0.3) {
      const rows = Array.from({ length: 1 + int(rnd, 20) }, () => ({
        ts: now - int(rnd, 86_400_000),
        a: num(rnd),
        b: num(rnd),
      }));
      const text = rows.map((r) => `${r.ts},${r.a},${r.b}`).join(rnd() < 0.5 ? "\n" : "\r\n");
      const r = csv.parse(mc, text, now);
      assert.ok(!("error" in r), JSON.stringify(r));
      assert.deepEqual(
        r.readings.map((x) => [x.metric, x.value, x.ts]),
        rows.flatMap((row) => [["a", row.a, row.ts], ["b", row.b, row.ts]]),
      );
      return;
    }
    const payload = k < 0.6
      ? mutate(rnd, `${now},60.5,33\n${now - 1000},61,true\n`)
      : k < 0.75
      ? Array.from({ length: int(rnd, 12_000) }, () => "1,2,3").join("\n")
      : k < 0.85
      ? "1,2," + "9".repeat(int(rnd, 20_000))
      : randomBytes(rnd);
    const r = csv.parse(mc, payload, now);
    if ("error" in r) assertRefusal(r.error);
    else assertReadings(r.readings, now, MAX_READINGS_PER_MESSAGE);
  });
  fuzz("mqtt number", 3, 5_000, (rnd) => {
    const v = num(rnd);
    const ok = number.parse(mn, String(v), now);
    assert.ok(!("error" in ok) && ok.readings[0].value === v, JSON.stringify(ok));
    const r = number.parse(mn, rnd() < 0.5 ? mutate(rnd, String(v)) : randomBytes(rnd), now);
    if ("error" in r) assertRefusal(r.error);
    else assertReadings(r.readings, now, 1);
  });
});

Deno.test("fuzz: zigbee2mqtt payloads (15,000 cases)", () => {
  const now = Date.now();
  const options: MapOptions[] = [
    { strings: false, timestamp: "received" },
    { strings: true, timestamp: "last_seen", exclude: new Set(["linkquality"]) },
  ];
  fuzz("zigbee2mqtt", 4, 15_000, (rnd) => {
    const k = rnd();
    if (k < 0.25) {
      const doc = {
        temperature: num(rnd),
        battery: int(rnd, 101),
        state: rnd() < 0.5 ? "ON" : "OFF",
      };
      const r = mapPayload("kitchen", JSON.stringify(doc), options[0], now);
      assert.ok(!("error" in r), JSON.stringify(r));
      assert.deepEqual(r.readings.map((x) => [x.metric, x.value, x.unit]), [
        ["temperature", doc.temperature, "°C"],
        ["battery", doc.battery, "%"],
        ["state", doc.state === "ON", undefined],
      ]);
      return;
    }
    const text = k < 0.55
      ? JSON.stringify(randomJson(rnd)) ?? ""
      : k < 0.8
      ? mutate(rnd, '{"temperature":21.5,"color":{"x":0.3},"last_seen":"2024-01-01T00:00:00Z"}')
      : hostileJson(rnd);
    const r = mapPayload("dev-1", text, pick(rnd, options), now);
    if ("error" in r) assertRefusal(r.error);
    else assertReadings(r.readings, now, 1000);
    const a = parseAvailability(text);
    assert.ok(a === undefined || a === "online" || a === "offline");
  });
});

Deno.test("fuzz: http bodies (15,000 cases)", () => {
  const now = Date.now();
  fuzz("http body", 5, 15_000, (rnd) => {
    const k = rnd();
    if (k < 0.3) {
      const readings: Reading[] = Array.from({ length: 1 + int(rnd, 20) }, () => {
        const r: Reading = {
          device: `dev-${int(rnd, 50)}`,
          metric: metricName(rnd),
          value: rnd() < 0.7 ? num(rnd) : rnd() < 0.5 ? rnd() < 0.5 : "text",
          ts: now - int(rnd, 86_400_000),
        };
        if (rnd() < 0.5) r.unit = "V";
        return r;
      });
      const body = rnd() < 0.5 ? JSON.stringify(readings) : JSON.stringify({ readings });
      assert.deepEqual(parseBody(body, now, 100), { readings });
      return;
    }
    const text = k < 0.6
      ? JSON.stringify(randomJson(rnd)) ?? ""
      : k < 0.85
      ? mutate(rnd, `{"readings":[{"device":"d","metric":"m","value":1,"ts":${now}}]}`)
      : hostileJson(rnd);
    const r = parseBody(text, now, 100);
    if ("error" in r) {
      assertRefusal(r.error);
      assert.ok(r.status === 400 || r.status === 413);
    } else assertReadings(r.readings, now, 100);
  });
});

Deno.test("fuzz: exec JSON lines (15,000 cases)", () => {
  const now = Date.now();
  fuzz("exec line", 6, 15_000, (rnd) => {
    const k = rnd();
    if (k < 0.3) {
      const readings: Reading[] = Array.from({ length: 1 + int(rnd, 5) }, () => ({
        device: `d${int(rnd, 9)}`,
        metric: metricName(rnd),
        value: num(rnd),
        ts: now - int(rnd, 1000),
      }));
      const line = readings.length === 1 && rnd() < 0.5
        ? JSON.stringify(readings[0])
        : JSON.stringify(readings);
      assert.deepEqual(parseLine(line, now), { readings });
      return;
    }
    const text = k < 0.6 ? JSON.stringify(randomJson(rnd)) ?? "" : k < 0.85
      ? mutate(
        rnd,
        `[{"device":"d","metric":"m","value":1,"unit":"V","ts":"2024-01-01T00:00:00Z"}]`,
      )
      : hostileJson(rnd);
    const r = parseLine(text, now);
    if ("error" in r) assertRefusal(r.error);
    else {
      // exec hands readings to the pipeline, which validates them; here only the shape counts.
      assert.ok(r.readings.length <= 10_000);
      for (const x of r.readings) {
        assert.equal(typeof x.device, "string");
        assert.ok(["number", "boolean", "string"].includes(typeof x.value));
      }
    }
  });
});

Deno.test("fuzz: modbus register decoding (10,000 cases)", () => {
  const types = [
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "float32",
    "int64",
    "uint64",
    "float64",
    "string",
  ] as const;
  const orders = ["ABCD", "CDAB", "BADC", "DCBA"] as const;
  const sizes: Record<string, number> = {
    bool: 1,
    int16: 1,
    uint16: 1,
    int32: 2,
    uint32: 2,
    float32: 2,
    int64: 4,
    uint64: 4,
    float64: 4,
  };
  fuzz("modbus decode", 7, 10_000, (rnd) => {
    const type = pick(rnd, types);
    const c: Codec = { type, order: pick(rnd, orders), scale: 1, offset: 0 };
    if (type === "string") c.length = 1 + int(rnd, 8);
    if (type === "bool" && rnd() < 0.5) c.bit = int(rnd, 16);
    const words = Array.from({ length: c.length ?? sizes[type] }, () => int(rnd, 0x10000));
    const v = decodeRegisters(words, c);
    if (type === "string") assert.equal(typeof v, "string");
    else if (type === "bool") assert.equal(typeof v, "boolean");
    else assert.equal(typeof v, "number");
    // Exact types come back register for register.
    if (["int16", "uint16", "int32", "uint32"].includes(type)) {
      assert.deepEqual(encodeRegisters(v, c), words);
    }
    if (type === "float32" && Number.isFinite(v) && !Object.is(v, -0)) {
      assert.equal(decodeRegisters(encodeRegisters(v, c), c), v);
    }
    if (rnd() < 0.3) {
      try {
        encodeRegisters(pick(rnd, [NaN, 1e30, -1, "x", true, "💡💡💡💡💡💡💡💡💡"]), c);
      } catch (e) {
        assert.ok(e instanceof ModbusEncodeError, String(e));
      }
    }
  });
});

const BASE_CONFIG = `gateway:
  id: gw-1
buffer:
  path: /tmp/b.db
  maxRows: 100000
adapters:
  - type: simulated
    name: sim
    devices: 3
    metrics:
      - { name: t, pattern: sine, min: 0, max: 10 }
  - type: mqtt
    name: esp
    url: mqtt://127.0.0.1:1883
    subscriptions:
      - { topic: "s/{device}/{metric}", format: number, maxMessageBytes: 1KB }
rules:
  - name: hot
    when: { device: sim-1, metric: t, above: 9 }
`;

/** Random YAML structure: nested flow and block collections, anchors and aliases. */
function randomYaml(rnd: Rnd): string {
  const k = rnd();
  if (k < 0.3) return "x: " + "[".repeat(int(rnd, 150)) + "1" + "]".repeat(int(rnd, 150));
  if (k < 0.5) {
    return Array.from({ length: int(rnd, 120) }, (_, i) => " ".repeat(i) + "k:").join("\n");
  }
  if (k < 0.65) return "- ".repeat(int(rnd, 150)) + "x";
  // Expanding aliases and building big documents cost milliseconds each: fewer of those.
  if (k < 0.67) return laughs(1 + int(rnd, 9));
  if (k < 0.75) return "x: &a [1, *a]\ny: *a";
  if (k < 0.753) return "x: [" + "1,".repeat(int(rnd, 25_000)) + "1]";
  return `x: ${JSON.stringify(randomJson(rnd))}`;
}

Deno.test("fuzz: config loader (10,000 cases)", () => {
  const schema = gatewaySchema(adapters);
  const opts = {
    displayName: "f.yaml",
    env: (n: string) => (n === "GW" ? "gw-env" : undefined),
    readFile: (p: string) => {
      throw new Error(`no file ${p}`);
    },
  };
  const load = (text: string) => {
    try {
      return parseConfig(text, schema, opts);
    } catch (e) {
      assert.ok(e instanceof ConfigError, `threw ${(e as Error).name}: ${(e as Error).message}`);
      assert.ok(
        e.problems.length >= 1 && e.problems.length <= 500,
        `${e.problems.length} problems: ${e.problems.slice(0, 3).map((p) => p.message)} in ${
          text.slice(0, 300)
        }`,
      );
      for (const p of e.problems) {
        assert.ok(p.line >= 1 && p.col >= 1 && p.message.length <= MAX_ERROR_CHARS, p.message);
      }
      return undefined;
    }
  };
  fuzz("config", 8, 10_000, (rnd) => {
    const k = rnd();
    if (k < 0.2) {
      const devices = 1 + int(rnd, 1000);
      const maxRows = 1000 + int(rnd, 1e9);
      const id = `gw-${int(rnd, 1e6)}`;
      const c = load(
        BASE_CONFIG.replace("gw-1", id).replace("devices: 3", `devices: ${devices}`)
          .replace("maxRows: 100000", `maxRows: ${maxRows}`),
      );
      assert.ok(c, "a valid config loads");
      assert.equal(c.gateway.id, id);
      assert.equal(c.buffer.maxRows, maxRows);
      assert.equal((c.adapters[0].config as { devices: number }).devices, devices);
      assert.equal(
        (c.adapters[1].config as MqttConfig).subscriptions[0].maxMessageBytes,
        1024,
      );
      return;
    }
    load(k < 0.7 ? mutate(rnd, BASE_CONFIG) : `gateway: { id: \${GW} }\n${randomYaml(rnd)}\n`);
  });
});
