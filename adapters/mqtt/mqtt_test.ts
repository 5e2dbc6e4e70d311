import { type AdapterRun, runAdapter } from "../../test/helpers/adapter_run.ts";
import assert from "node:assert/strict";
import mqttjs from "mqtt";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { gatewaySchema } from "../../src/config/gateway.ts";
import { parseConfig } from "../../src/config/load.ts";
import { checkReading } from "../../src/reading.ts";
import { BrokerSetupError, type Emit } from "../../src/adapter.ts";
import { startMosquitto } from "../../test/helpers/mosquitto.ts";
import { freePort, waitFor } from "../../test/helpers/ports.ts";
import { deepJsonList, longCsv, wideJsonObject } from "../../test/helpers/hostile.ts";
import {
  type CompiledSubscription,
  compileSubscription,
  mqtt,
  type MqttConfig,
  type SubscriptionConfig,
} from "./mod.ts";
import { compileTopic, matchTopic } from "./_topic.ts";
import { mulberry32 as prng } from "../../src/rng.ts";

function validate(raw: Record<string, unknown>): MqttConfig | string {
  const ctx = new Ctx();
  const r = mqtt.schema.check(raw, ctx, []);
  if (r === INVALID) return ctx.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
  return r;
}

function config(raw: Record<string, unknown>): MqttConfig {
  const r = validate(raw);
  if (typeof r === "string") throw new Error(r);
  return r;
}

function run(cfg: MqttConfig): AdapterRun {
  return runAdapter(mqtt, cfg, { name: "esp" });
}

const SUBSCRIPTIONS = [
  { topic: "sensors/{device}/temperature", format: "number", metric: "temperature", unit: "°C" },
  { topic: "sensors/{device}/{metric}", format: "number" },
  {
    topic: "esp/+/state",
    device: "esp-{1}",
    fields: {
      "env.temp": { metric: "temperature", unit: "°C" },
      "env.hum": "humidity",
      "relay.0": "relay",
      "raw": { metric: "pressure", unit: "hPa", scale: 0.01 },
    },
    timestampField: "ts",
  },
  {
    topic: "csv/{device}",
    format: "csv",
    columns: ["-", "temperature", { metric: "humidity", unit: "%" }],
    timestampColumn: 0,
  },
  { topic: "free/#", device: "{1}" },
];

Deno.test("mqtt config names the problem of a subscription", () => {
  const bad = validate({
    url: "mqtt://127.0.0.1:1883",
    subscriptions: [
      { topic: "a/#/b", device: "x" },
      { topic: "a/+", device: "{2}" },
      { topic: "a/{dev}", device: "{device}" },
      { topic: "a/+", device: "x", format: "csv" },
      { topic: "a/+", device: "x", format: "number" },
      { topic: "a/+", device: "x", columns: ["t"] },
      { topic: "a/+", device: "x", fromat: "json" },
    ],
  });
  assert.equal(typeof bad, "string");
  const text = bad as string;
  assert.match(text, /subscriptions\.0\.topic: "#" must be the last level/);
  assert.match(text, /subscriptions\.1\.device: \{2\} is past the last level/);
  assert.match(
    text,
    /subscriptions\.2\.device: \{device\} is not a level of the topic \(named levels: dev\)/,
  );
  assert.match(text, /subscriptions\.3: missing key "columns"/);
  assert.match(text, /subscriptions\.4: missing key "metric"/);
  assert.match(text, /subscriptions\.5\.columns: applies to format csv only/);
  assert.match(text, /subscriptions\.6\.fromat: unknown key \(did you mean "format"\?\)/);
  assert.equal(typeof validate({ url: "mqtt://h", subscriptions: SUBSCRIPTIONS }), "object");
});

Deno.test("topic patterns match as a broker does", () => {
  const p = compileTopic("sensors/{device}/#");
  assert.ok(typeof p === "object");
  assert.equal(p.filter, "sensors/+/#");
  assert.deepEqual(matchTopic(p, "sensors/a/b/c")?.named, { device: "a" });
  assert.ok(matchTopic(p, "sensors/a"));
  assert.equal(matchTopic(p, "other/a/b"), undefined);
  const q = compileTopic("+/x");
  assert.ok(typeof q === "object");
  assert.equal(matchTopic(q, "$SYS/x"), undefined);
  assert.equal(typeof compileTopic("a/b+/c"), "string");
});

Deno.test("mqtt adapter reads number, JSON and CSV payloads from a real broker", async () => {
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  const r = run(config({
    url: broker.url,
    reconnect: { min: "20ms", max: "200ms" },
    subscriptions: SUBSCRIPTIONS,
  }));
  try {
    await waitFor("subscription", () => r.counts.get("subscribed") === 1);
    const ts = Date.now() - 5000;
    await pub.publishAsync("sensors/esp32-a/temperature", "21.5", { qos: 1 });
    await pub.publishAsync(
      "esp/7f3a/state",
      JSON.stringify({ env: { temp: 22, hum: 40.5 }, relay: [true], raw: 101325, ts: ts / 1000 }),
      { qos: 1 },
    );
    await pub.publishAsync("csv/boiler", `${ts},60.5,33\n${ts + 1000},61,34\n`, { qos: 1 });
    await pub.publishAsync("free/node-9/x", JSON.stringify({ a: 1, b: { c: false }, s: "str" }), {
      qos: 1,
    });
    // Invalid payloads: counted and skipped, later ones still read.
    await pub.publishAsync("sensors/esp32-a/temperature", "warm", { qos: 1 });
    await pub.publishAsync("esp/7f3a/state", "{nope", { qos: 1 });
    await pub.publishAsync("csv/boiler", "1,2", { qos: 1 });
    await pub.publishAsync("sensors/bad id/temperature", "1", { qos: 1 });
    await pub.publishAsync("sensors/esp32-a/humidity", "41", { qos: 1 });
    await waitFor("readings", () => r.collected.length === 12);
    await waitFor("invalid count", () => r.counts.get("invalid_payloads") === 4);
    const rows = r.collected.map((x) => [x.device, x.metric, x.value, x.unit ?? null]);
    assert.deepEqual(rows, [
      ["esp32-a", "temperature", 21.5, "°C"],
      ["esp-7f3a", "temperature", 22, "°C"],
      ["esp-7f3a", "humidity", 40.5, null],
      ["esp-7f3a", "relay", true, null],
      ["esp-7f3a", "pressure", 1013.25, "hPa"],
      ["boiler", "temperature", 60.5, null],
      ["boiler", "humidity", 33, "%"],
      ["boiler", "temperature", 61, null],
      ["boiler", "humidity", 34, "%"],
      ["node-9", "a", 1, null],
      ["node-9", "b.c", false, null],
      ["esp32-a", "humidity", 41, null],
    ]);
    assert.equal(r.collected[1].ts, ts);
    assert.equal(r.collected[5].ts, ts);
    assert.equal(r.collected[7].ts, ts + 1000);
  } finally {
    await pub.endAsync();
    await r.stop();
    await broker.stop();
  }
});

Deno.test("mqtt adapter reconnects after the broker restarts", async () => {
  const broker = await startMosquitto();
  const r = run(config({
    url: broker.url,
    reconnect: { min: "20ms", max: "100ms" },
    subscriptions: [{ topic: "sensors/{device}/{metric}", format: "number" }],
  }));
  let pub: mqttjs.MqttClient | undefined;
  try {
    await waitFor("subscription", () => r.counts.get("subscribed") === 1);
    await broker.stop();
    await waitFor("disconnect noticed", () => r.counts.get("disconnects") === 1);
    await broker.start();
    await waitFor("resubscription", () => r.counts.get("subscribed") === 2);
    pub = await mqttjs.connectAsync(broker.url);
    await pub.publishAsync("sensors/dev-1/level", "3", { qos: 1 });
    await waitFor("reading after reconnect", () => r.collected.length === 1);
    assert.deepEqual([r.collected[0].device, r.collected[0].value], ["dev-1", 3]);
  } finally {
    await pub?.endAsync();
    await r.stop();
    await broker.stop();
  }
});

Deno.test("mqtt adapter keeps order across 5,000 QoS 1 messages", async () => {
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  const r = run(config({
    url: broker.url,
    maxPending: 100,
    subscriptions: [{ topic: "n/{device}", format: "number", metric: "n" }],
  }));
  try {
    await waitFor("subscription", () => r.counts.get("subscribed") === 1);
    await Promise.all(
      Array.from({ length: 5000 }, (_, i) => pub.publishAsync("n/d", String(i), { qos: 1 })),
    );
    await waitFor("all readings", () => r.collected.length === 5000);
    r.collected.forEach((x, i) => assert.equal(x.value, i));
  } finally {
    await pub.endAsync();
    await r.stop();
    await broker.stop();
  }
});

Deno.test("mqtt adapter stops promptly while the broker is unreachable", async () => {
  const r = run(config({
    url: `mqtt://127.0.0.1:${freePort()}`,
    reconnect: { min: "10ms", max: "50ms" },
    subscriptions: [{ topic: "a/{device}" }],
  }));
  try {
    await waitFor("repeated connect failures", () => (r.counts.get("connect_failures") ?? 0) >= 3);
  } finally {
    await r.stop();
  }
});

Deno.test("mqtt adapter fails with BrokerSetupError when a TLS file is missing", async () => {
  const r = run(config({
    url: "mqtts://127.0.0.1:8883",
    tls: { ca: "/nonexistent/ca.pem" },
    subscriptions: [{ topic: "a/{device}" }],
  }));
  await assert.rejects(r.stop(), (e: Error) => {
    assert.ok(e instanceof BrokerSetupError);
    assert.match(e.message, /Cannot read TLS file "\/nonexistent\/ca.pem" \(tls.ca\)/);
    assert.ok(e.cause instanceof Deno.errors.NotFound);
    return true;
  });
});

function fuzz(
  seed: number,
  sub: Record<string, unknown>,
  topic: string,
  generate: (rnd: () => number) => string | Uint8Array,
): { ok: number; invalid: number } {
  const cfg = config({ url: "mqtt://h", subscriptions: [sub] })
    .subscriptions[0] as SubscriptionConfig;
  const c = compileSubscription(cfg);
  const m = c.match(topic);
  assert.ok(m);
  const rnd = prng(seed);
  const now = Date.now();
  let ok = 0;
  let invalid = 0;
  for (let i = 0; i < 10_000; i++) {
    const payload = generate(rnd);
    const r = c.parse(m, payload, now);
    if ("error" in r) invalid++;
    else {
      ok++;
      for (const reading of r.readings) assert.equal(checkReading(reading, now), undefined);
    }
  }
  return { ok, invalid };
}

function mutate(rnd: () => number, text: string): string {
  const chars = [...text];
  for (let m = Math.floor(rnd() * 4); m > 0; m--) {
    const at = Math.floor(rnd() * (chars.length + 1));
    const k = rnd();
    const ch = String.fromCharCode(Math.floor(rnd() * 0x250));
    if (k < 0.4) chars[at] = ch;
    else if (k < 0.7) chars.splice(at, 1);
    else chars.splice(at, 0, ch);
  }
  return chars.join("");
}

Deno.test("JSON field mapping survives 10,000 random payloads", () => {
  const scalars = [
    0,
    -1.5,
    1e308,
    1e-300,
    true,
    false,
    null,
    "",
    "12.5",
    "x",
    "2024-01-01T00:00:00Z",
    1_700_000_000,
  ];
  const keys = ["env", "temp", "hum", "ts", "relay", "0", "constructor", "a.b", "raw"];
  const value = (rnd: () => number, depth: number): unknown => {
    const k = rnd();
    if (depth > 4 || k < 0.4) return scalars[Math.floor(rnd() * scalars.length)];
    if (k < 0.6) return Array.from({ length: Math.floor(rnd() * 3) }, () => value(rnd, depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 5); i > 0; i--) {
      o[keys[Math.floor(rnd() * keys.length)]] = value(rnd, depth + 1);
    }
    return o;
  };
  const good = JSON.stringify({ env: { temp: 21.5, hum: "40" }, relay: [true], ts: 1_700_000_000 });
  for (
    const sub of [SUBSCRIPTIONS[2], { topic: "esp/+/state", device: "{1}", timestampField: "ts" }]
  ) {
    const { ok, invalid } = fuzz(7, sub, "esp/abc/state", (rnd) => {
      const k = rnd();
      if (k < 0.4) return JSON.stringify(value(rnd, 0)) ?? "";
      if (k < 0.8) return mutate(rnd, good);
      return new Uint8Array(
        Array.from({ length: Math.floor(rnd() * 30) }, () => Math.floor(rnd() * 256)),
      );
    });
    assert.ok(ok > 1000 && invalid > 1000, `both outcomes seen (${ok} ok, ${invalid} invalid)`);
  }
});

Deno.test("CSV parsing survives 10,000 random payloads", () => {
  const { ok, invalid } = fuzz(11, SUBSCRIPTIONS[3], "csv/boiler", (rnd) => {
    const k = rnd();
    if (k < 0.6) return mutate(rnd, `1700000000,60.5,33\n1700000001,61,true\n`);
    if (k < 0.8) {
      return Array.from(
        { length: Math.floor(rnd() * 4) },
        () =>
          Array.from(
            { length: Math.floor(rnd() * 5) },
            () => ["", "1", "-2.5e3", "x", "1e999", "2024-01-01", " 7 "][Math.floor(rnd() * 7)],
          ).join(
            ",",
          ),
      )
        .join(rnd() < 0.5 ? "\n" : "\r\n");
    }
    return Array.from(
      { length: Math.floor(rnd() * 40) },
      () => String.fromCharCode(Math.floor(rnd() * 128)),
    ).join("");
  });
  assert.ok(ok > 1000 && invalid > 1000, `both outcomes seen (${ok} ok, ${invalid} invalid)`);
});

Deno.test("example.yaml is a valid gateway config", () => {
  const text = Deno.readTextFileSync(new URL("./example.yaml", import.meta.url));
  const c = parseConfig(text, gatewaySchema({ [mqtt.type]: mqtt }), {
    env: (name) => name === "DEFAULTLESS" ? undefined : "env-secret-0123456789",
    readFile: () => "file-secret-0123456789\n",
    displayName: "example.yaml",
  });
  assert.equal(c.adapters[0].type, mqtt.type);
});

Deno.test("payloads over a size or shape limit are refused before parsing, with the reason", () => {
  const sub = (extra: Record<string, unknown>) =>
    compileSubscription(
      config({ url: "mqtt://h", subscriptions: [{ topic: "t/{device}", ...extra }] })
        .subscriptions[0],
    );
  const json = sub({});
  const m = json.match("t/d")!;
  const now = Date.now();
  const enc = new TextEncoder();
  assert.deepEqual(json.parse(m, enc.encode(deepJsonList(5_000_000)), now), {
    error: "message of 10000000 bytes exceeds the limit of 262144 bytes (maxMessageBytes)",
    reason: "size",
  });
  const big = sub({ maxMessageBytes: "16MB" });
  assert.equal(big.config.maxMessageBytes, 16 * 1024 ** 2);
  const reason = (s: CompiledSubscription, payload: string) => {
    const r = s.parse(m, enc.encode(payload), now);
    return "error" in r ? r.reason ?? r.error : "ok";
  };
  assert.equal(reason(big, deepJsonList(5_000_000)), "depth");
  assert.equal(reason(big, wideJsonObject(600_000)), "values");
  assert.equal(reason(big, JSON.stringify({ a: { b: [1, 2] } })), "ok");
  const csv = sub({ format: "csv", columns: ["-", "v"], maxMessageBytes: "16MB" });
  assert.equal(reason(csv, longCsv(700_000)), "lines");
  assert.equal(reason(csv, longCsv(10_000)), "ok");
  assert.equal(reason(csv, "1," + "9".repeat(10_000)), "line_length");
});

/** Runs the adapter with `emit` of the test's own (to refuse or hold readings). */
function runWith(cfg: MqttConfig, emit: Emit): AdapterRun {
  return runAdapter(mqtt, cfg, { name: "esp", emit });
}

Deno.test("mqtt adapter acknowledges a QoS 1 message only once its readings are stored", async () => {
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  const cfg = config({
    url: broker.url,
    clientId: "outpost-ack-test",
    cleanSession: false,
    reconnect: { min: "20ms", max: "100ms" },
    subscriptions: [{ topic: "n/{device}", format: "number", metric: "n" }],
  });
  const full = Object.assign(new Error("disk full"), { name: "DiskFullError" });
  let attempts = 0;
  // A buffer on a full disk: every emit is refused.
  const refusing = runWith(cfg, () => {
    attempts++;
    return Promise.reject(full);
  });
  let r: AdapterRun | undefined;
  try {
    await waitFor("subscription", () => refusing.counts.get("subscribed") === 1);
    for (const v of [1, 2, 3]) await pub.publishAsync("n/d", String(v), { qos: 1 });
    // Refused, then tried again rather than dropped.
    await waitFor("a retry", () => attempts >= 2);
    await refusing.stop();
    // Never acknowledged: the broker hands them to the next session, in order.
    r = run(cfg);
    await waitFor("the messages again", () => r!.collected.length === 3);
    assert.deepEqual(r.collected.map((x) => x.value), [1, 2, 3]);
    assert.ok((refusing.counts.get("disk_full") ?? 0) >= 3, "refusals counted as disk_full");
    await pub.publishAsync("n/d", "4", { qos: 1 });
    await waitFor("message 4", () => r!.collected.length === 4);
    await r.stop();
    // Stored and so acknowledged: a new session gets only what comes next.
    r = run(cfg);
    await waitFor("subscription", () => r!.counts.get("subscribed") === 1);
    await pub.publishAsync("n/d", "5", { qos: 1 });
    await waitFor("message 5", () => r!.collected.length >= 1);
    assert.deepEqual(r.collected.map((x) => x.value), [5]);
  } finally {
    await pub.endAsync();
    await r?.stop();
    await broker.stop();
  }
});

Deno.test("mqtt adapter reads on while a commit is open and acknowledges what it stored", async () => {
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  const cfg = config({
    url: broker.url,
    clientId: "outpost-hold-test",
    cleanSession: false,
    subscriptions: [{ topic: "n/{device}", format: "number", metric: "n" }],
  });
  // A commit that completes only when the test says so.
  let release!: () => void;
  const committed = new Promise<void>((resolve) => release = resolve);
  const batches: number[] = [];
  const held = runWith(cfg, async (rs) => {
    batches.push(rs.length);
    await committed;
    return { accepted: rs.length, rejected: 0, seqs: [] };
  });
  try {
    await waitFor("subscription", () => held.counts.get("subscribed") === 1);
    for (let v = 0; v < 200; v++) pub.publish("n/d", String(v), { qos: 1 });
    // All 200 reach the adapter while the first commit is still open: reading goes on.
    await waitFor("every message read", () => held.counts.get("readings") === 200);
    assert.ok(batches.length <= 2, `${batches.length} emit calls`);
    release();
    await waitFor("the rest emitted", () => batches.reduce((a, b) => a + b, 0) === 200);
  } finally {
    await held.stop();
    await pub.endAsync();
  }
  // Acknowledged after the commit: a new session with the same id gets nothing back.
  const r = run(cfg);
  try {
    await waitFor("subscription", () => r.counts.get("subscribed") === 1);
    const p2 = await mqttjs.connectAsync(broker.url);
    await p2.publishAsync("n/d", "1000", { qos: 1 });
    await waitFor("the new message", () => r.collected.length >= 1);
    assert.deepEqual(r.collected.map((x) => x.value), [1000]);
    await p2.endAsync();
  } finally {
    await r.stop();
    await broker.stop();
  }
});
