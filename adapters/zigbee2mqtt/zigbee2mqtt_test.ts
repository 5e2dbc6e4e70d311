import { type AdapterRun, runAdapter } from "../../test/helpers/adapter_run.ts";
import { deepJsonList, wideJsonObject } from "../../test/helpers/hostile.ts";
import assert from "node:assert/strict";
import mqttjs from "mqtt";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { gatewaySchema } from "../../src/config/gateway.ts";
import { parseConfig } from "../../src/config/load.ts";
import { checkReading, type Reading } from "../../src/reading.ts";
import { startMosquitto } from "../../test/helpers/mosquitto.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { mulberry32 as prng } from "../../src/rng.ts";
import { silentLogger } from "../../src/log.ts";
import {
  type MapOptions,
  mapPayload,
  parseAvailability,
  sanitizeId,
  zigbee2mqtt,
  type Zigbee2mqttConfig,
} from "./mod.ts";

function config(raw: Record<string, unknown>): Zigbee2mqttConfig {
  const ctx = new Ctx();
  const r = zigbee2mqtt.schema.check(raw, ctx, []);
  if (r === INVALID) throw new Error(JSON.stringify(ctx.issues));
  return r;
}

function run(cfg: Zigbee2mqttConfig): AdapterRun {
  return runAdapter(zigbee2mqtt, cfg, { name: "zigbee" });
}

const byKey = (rs: Reading[], device: string) =>
  Object.fromEntries(
    rs.filter((r) => r.device === device).map((r) => [r.metric, [r.value, r.unit ?? null]]),
  );

Deno.test("zigbee2mqtt config rejects unknown keys and wildcard base topics", () => {
  const ctx = new Ctx();
  zigbee2mqtt.schema.check({ url: "mqtt://h", baseTopic: "z/#", exclud: ["x"] }, ctx, []);
  const text = ctx.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
  assert.match(text, /baseTopic: expected a topic without wildcards/);
  assert.match(text, /exclud: unknown key \(did you mean "exclude"\?\)/);
  const ok = config({ url: "mqtt://h" });
  assert.equal(ok.baseTopic, "zigbee2mqtt");
});

Deno.test("zigbee2mqtt adapter maps device payloads and availability from a real broker", async () => {
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  try {
    // Retained, as zigbee2mqtt publishes availability: seen on subscribe.
    await pub.publishAsync("zigbee2mqtt/Kitchen sensor/availability", '{"state":"online"}', {
      qos: 1,
      retain: true,
    });
    await pub.publishAsync("zigbee2mqtt/door/availability", "offline", { qos: 1, retain: true });
    await pub.publishAsync("zigbee2mqtt/bridge/state", '{"state":"online"}', {
      qos: 1,
      retain: true,
    });
    const r = run(config({
      url: broker.url,
      devices: { "Kitchen sensor": "kitchen-th" },
      metrics: { linkquality: { metric: "lqi", unit: "" }, "color.x": { metric: "cx" } },
      exclude: ["battery_low"],
      reconnect: { min: "20ms", max: "100ms" },
    }));
    try {
      await waitFor("subscription", () => r.counts.get("subscribed") === 1);
      await waitFor("availability", () => r.states.size === 2);
      assert.equal(r.states.get("kitchen-th"), "online");
      assert.equal(r.states.get("door"), "offline");
      await pub.publishAsync("zigbee2mqtt/bridge", "ignored");
      await pub.publishAsync(
        "zigbee2mqtt/Kitchen sensor",
        JSON.stringify({
          temperature: 21.5,
          humidity: 45.2,
          pressure: 1013.1,
          battery: 97,
          voltage: 3005,
          linkquality: 120,
          last_seen: "2024-01-01T00:00:00.000Z",
          update: { state: "idle", installed_version: 1 },
          update_available: false,
        }),
        { qos: 1 },
      );
      await pub.publishAsync(
        "zigbee2mqtt/door",
        JSON.stringify({ contact: true, battery_low: false, tamper: false }),
        { qos: 1 },
      );
      await pub.publishAsync(
        "zigbee2mqtt/plug 1",
        JSON.stringify({
          state: "ON",
          power: 12.3,
          energy: 1.25,
          current: 0.05,
          color: { x: 0.3, y: 0.4 },
          action: "single",
          nothing: null,
        }),
        { qos: 1 },
      );
      await pub.publishAsync("zigbee2mqtt/door", "{broken", { qos: 1 });
      await pub.publishAsync("zigbee2mqtt/door/availability", "online", { qos: 1 });
      await pub.publishAsync(
        "zigbee2mqtt/leak",
        '{"water_leak":false,"illuminance":35,"co2":410}',
        {
          qos: 1,
        },
      );
      await waitFor("leak readings", () => r.collected.some((x) => x.device === "leak"));
      assert.equal(r.counts.get("invalid_payloads"), 1);
      assert.equal(r.states.get("door"), "online");
      assert.deepEqual(byKey(r.collected, "kitchen-th"), {
        temperature: [21.5, "°C"],
        humidity: [45.2, "%"],
        pressure: [1013.1, "hPa"],
        battery: [97, "%"],
        voltage: [3005, "mV"],
        lqi: [120, null],
      });
      assert.deepEqual(byKey(r.collected, "door"), {
        contact: [true, null],
        tamper: [false, null],
      });
      assert.deepEqual(byKey(r.collected, "plug_1"), {
        state: [true, null],
        power: [12.3, "W"],
        energy: [1.25, "kWh"],
        current: [0.05, "A"],
        cx: [0.3, null],
        "color.y": [0.4, null],
      });
      assert.deepEqual(byKey(r.collected, "leak"), {
        water_leak: [false, null],
        illuminance: [35, "lx"],
        co2: [410, "ppm"],
      });
      assert.ok(!r.collected.some((x) => x.device === "bridge"));

      // Broker loss: the adapter reconnects and resubscribes by itself.
      await broker.stop();
      await waitFor("disconnect noticed", () => r.counts.get("disconnects") === 1);
      await broker.start();
      await waitFor("resubscription", () => r.counts.get("subscribed") === 2);
      const again = await mqttjs.connectAsync(broker.url);
      try {
        await again.publishAsync("zigbee2mqtt/door", '{"contact":false}', { qos: 1 });
        await waitFor("reading after reconnect", () => r.collected.at(-1)?.value === false);
      } finally {
        await again.endAsync();
      }
    } finally {
      await r.stop();
    }
  } finally {
    await pub.endAsync(true);
    await broker.stop();
  }
});

Deno.test("zigbee2mqtt adapter connects with mutual TLS and a custom base topic", async () => {
  const broker = await startMosquitto({ tls: true });
  const certs = broker.certs!;
  const r = run(config({
    url: broker.tlsUrl,
    baseTopic: "site/z2m",
    tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
    timestamp: "last_seen",
    onlyMapped: true,
    devices: { "0x00158d0001a2b3c4": "bath-th" },
  }));
  const pub = await mqttjs.connectAsync(broker.url);
  try {
    await waitFor("subscription", () => r.counts.get("subscribed") === 1);
    await pub.publishAsync("site/z2m/unmapped", '{"temperature":1}', { qos: 1 });
    await pub.publishAsync(
      "site/z2m/0x00158d0001a2b3c4",
      '{"temperature":19.5,"last_seen":1700000000000}',
      { qos: 1 },
    );
    await waitFor("reading", () => r.collected.length === 1);
    assert.deepEqual(r.collected[0], {
      device: "bath-th",
      metric: "temperature",
      value: 19.5,
      unit: "°C",
      ts: 1_700_000_000_000,
    });
  } finally {
    await pub.endAsync();
    await r.stop();
    await broker.stop();
  }
});

Deno.test("availability and friendly names are read leniently", () => {
  assert.equal(parseAvailability("online"), "online");
  assert.equal(parseAvailability(' {"state":"offline"} '), "offline");
  assert.equal(parseAvailability('"online"'), "online");
  assert.equal(parseAvailability('{"state":"gone"}'), undefined);
  assert.equal(parseAvailability("null"), undefined);
  assert.equal(sanitizeId("Living room lamp"), "Living_room_lamp");
  assert.equal(sanitizeId("  ünïcode"), "n_code");
  assert.equal(sanitizeId("***"), undefined);
});

Deno.test("zigbee2mqtt payload mapping survives 10,000 random payloads", () => {
  const rnd = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const keys = [
    "temperature",
    "humidity",
    "state",
    "color",
    "x",
    "last_seen",
    "update",
    "bad key",
    "a.b",
    "constructor",
    "toString",
    "",
    "power",
    "action",
    "linkquality",
  ];
  const scalars = [
    0,
    -40,
    1e308,
    -1e308,
    0.1,
    true,
    false,
    null,
    "ON",
    "OFF",
    "",
    "single",
    "2024-01-01T00:00:00Z",
    1_700_000_000_000,
    12,
    "x".repeat(3000),
  ];
  const value = (depth: number): unknown => {
    const k = rnd();
    if (depth > 5 || k < 0.5) return pick(scalars);
    if (k < 0.6) return Array.from({ length: Math.floor(rnd() * 3) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 6); i > 0; i--) o[pick(keys)] = value(depth + 1);
    return o;
  };
  const options: MapOptions[] = [
    { strings: false, timestamp: "received" },
    {
      strings: true,
      timestamp: "last_seen",
      metrics: { temperature: { metric: "t", scale: 1e308 }, "color.x": { metric: "bad metric" } },
      include: new Set(["temperature", "color", "action", "last_seen"]),
      exclude: new Set(["color.y"]),
    },
  ];
  const good = JSON.stringify({ temperature: 21.5, state: "ON", color: { x: 1 }, last_seen: 1 });
  const now = Date.now();
  let ok = 0;
  let invalid = 0;
  for (let i = 0; i < 10_000; i++) {
    const k = rnd();
    let text: string;
    if (k < 0.5) text = JSON.stringify(value(0)) ?? "";
    else if (k < 0.85) {
      const chars = [...good];
      for (let m = Math.floor(rnd() * 4); m > 0; m--) {
        chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(Math.floor(rnd() * 0x250));
      }
      text = chars.join("");
    } else {
      text = Array.from(
        { length: Math.floor(rnd() * 30) },
        () => String.fromCharCode(Math.floor(rnd() * 0x3000)),
      ).join("");
    }
    const r = mapPayload(pick(["dev-1", "a"]), text, pick(options), now);
    if ("error" in r) invalid++;
    else {
      ok++;
      for (const reading of r.readings) assert.equal(checkReading(reading, now), undefined);
    }
  }
  assert.ok(ok > 1000 && invalid > 1000, `both outcomes seen (${ok} ok, ${invalid} invalid)`);
});

Deno.test("example.yaml is a valid gateway config", () => {
  const text = Deno.readTextFileSync(new URL("./example.yaml", import.meta.url));
  const c = parseConfig(text, gatewaySchema({ [zigbee2mqtt.type]: zigbee2mqtt }), {
    env: (name) => name === "DEFAULTLESS" ? undefined : "env-secret-0123456789",
    readFile: () => "file-secret-0123456789\n",
    displayName: "example.yaml",
  });
  assert.equal(c.adapters[0].type, zigbee2mqtt.type);
});

Deno.test("mapPayload() refuses deep and wide JSON before parsing it", () => {
  const o = { strings: false, timestamp: "received" as const };
  assert.deepEqual(mapPayload("d", deepJsonList(1_000_000), o, Date.now()), {
    error: "JSON nested deeper than 32 levels",
    reason: "depth",
  });
  assert.equal(
    (mapPayload("d", wideJsonObject(600_000), o, Date.now()) as { reason: string }).reason,
    "values",
  );
  assert.equal(parseAvailability("[".repeat(100_000)), undefined);
});

Deno.test("zigbee2mqtt adapter leaves messages the buffer refuses unacknowledged: the next session gets them", async () => {
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  const cfg = config({
    url: broker.url,
    clientId: "outpost-zigbee-ack",
    cleanSession: false,
    availability: false,
    reconnect: { min: "20ms", max: "100ms" },
  });
  const abort = new AbortController();
  const counts = new Map<string, number>();
  let attempts = 0;
  const refusing = zigbee2mqtt.start({
    name: "zigbee",
    config: cfg,
    // A buffer on a full disk.
    emit: () => {
      attempts++;
      return Promise.reject(Object.assign(new Error("full"), { name: "DiskFullError" }));
    },
    log: silentLogger(),
    signal: abort.signal,
    setDeviceState() {},
    count: (c, by = 1) => void counts.set(c, (counts.get(c) ?? 0) + by),
    setWriter() {},
  });
  let r: AdapterRun | undefined;
  try {
    await waitFor("subscription", () => counts.get("subscribed") === 1);
    for (const t of [1, 2]) {
      await pub.publishAsync("zigbee2mqtt/door", JSON.stringify({ temperature: t }), { qos: 1 });
    }
    await waitFor("a retry", () => attempts >= 2);
    abort.abort();
    await refusing;
    r = run(cfg);
    await waitFor("the messages again", () => r!.collected.length === 2);
    assert.deepEqual(r.collected.map((x) => x.value), [1, 2]);
  } finally {
    await pub.endAsync();
    await r?.stop();
    await broker.stop();
  }
});
