import assert from "node:assert/strict";
import mqtt from "mqtt";
// mqtt-packet's internal number cache, to see that Outpost never fills it.
import numbers from "mqtt-packet/numbers.js";
import { startMosquitto } from "../../test/helpers/mosquitto.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import {
  BROKER_URL,
  BrokerSetupError,
  connectMqtt,
  DEFAULT_RECONNECT,
  mqttClientOptions,
  reconnectDelay,
} from "./mqtt.ts";

Deno.test("mqttClientOptions() builds MQTT 3.1.1 options from config, with no mqtt.js reconnect", () => {
  const o = mqttClientOptions({ url: "mqtt://127.0.0.1:1883", keepalive: 1500 }, {
    clientId: "fallback",
  });
  assert.equal(o.clientId, "fallback");
  assert.equal(o.clean, true);
  assert.equal(o.keepalive, 2, "keepalive in whole seconds, rounded up");
  assert.equal(o.connectTimeout, 15_000);
  assert.equal(o.reconnectPeriod, 0);
  assert.equal(o.protocolVersion, 4);
  assert.equal(o.rejectUnauthorized, true);
  const named = mqttClientOptions({
    url: "mqtt://h",
    clientId: "mine",
    clean: false,
    username: "u",
    password: "p",
    connectTimeout: 500,
    tls: { servername: "broker.lan", rejectUnauthorized: false },
  }, { clientId: "fallback", will: { topic: "t", payload: "gone", qos: 1, retain: true } });
  assert.deepEqual(
    [named.clientId, named.clean, named.username, named.password, named.connectTimeout],
    ["mine", false, "u", "p", 500],
  );
  assert.deepEqual([named.servername, named.rejectUnauthorized], ["broker.lan", false]);
  assert.equal(named.will?.topic, "t");
});

Deno.test("mqttClientOptions() reads the TLS files and names the one it cannot read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, "CA");
    await Deno.writeTextFile(`${dir}/c.pem`, "CERT");
    const o = mqttClientOptions({
      url: "mqtts://h:8883",
      tls: { ca: `${dir}/ca.pem`, cert: `${dir}/c.pem`, key: `${dir}/c.pem` },
    });
    assert.deepEqual([o.ca, o.cert, o.key], ["CA", "CERT", "CERT"]);
    assert.throws(
      () =>
        mqttClientOptions({
          url: "mqtts://h:8883",
          tls: { ca: `${dir}/ca.pem`, cert: `${dir}/c.pem`, key: `${dir}/missing.key` },
        }),
      (e: Error) => {
        assert.ok(e instanceof BrokerSetupError);
        assert.equal(
          e.message.split(":")[0],
          `Cannot read TLS file "${dir}/missing.key" (tls.key)`,
        );
        assert.ok(e.cause instanceof Deno.errors.NotFound);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconnectDelay() draws between min / 2 and a ceiling that doubles from min up to max", () => {
  const b = DEFAULT_RECONNECT;
  assert.deepEqual(b, { min: 1000, max: 5000 });
  const high = [0, 1, 2, 3, 30, 1e6].map((a) => reconnectDelay(a, b, () => 1));
  assert.deepEqual(high, [1000, 2000, 4000, 5000, 5000, 5000]);
  for (const a of [0, 1, 5, 100]) assert.equal(reconnectDelay(a, b, () => 0), 500);
  for (let i = 0; i < 1000; i++) {
    const d = reconnectDelay(i % 8, b);
    assert.ok(d >= 500 && d <= 5000, `${d}`);
  }
});

Deno.test("BROKER_URL takes mqtt:// and mqtts:// with host and port only", () => {
  for (const u of ["mqtt://127.0.0.1:1883", "mqtts://broker.lan:8883/", "mqtt://h"]) {
    assert.ok(BROKER_URL.test(u), u);
  }
  for (const u of ["http://h", "mqtt://h/path", "mqtt://"]) {
    assert.ok(!BROKER_URL.test(u), u);
  }
});

Deno.test("connectMqtt() over mutual TLS with reconnect: waits with backoff while the broker is away, then reconnects and renews its subscription", async () => {
  const broker = await startMosquitto({ tls: true });
  const c = broker.certs!;
  const client = connectMqtt(
    { url: broker.tlsUrl, tls: { ca: c.ca, cert: c.clientCert, key: c.clientKey } },
    { clientId: "helper-test", reconnect: { min: 40, max: 160 } },
  );
  const got: string[] = [];
  const periods: number[] = [];
  client.on("message", (_t, p) => got.push(p.toString()));
  client.on("error", () => {});
  client.on("close", () => periods.push(client.options.reconnectPeriod ?? 0));
  try {
    await waitFor("the first connection", () => client.connected);
    await client.subscribeAsync("helper/t", { qos: 1 });
    await broker.stop();
    await waitFor("a few failed attempts", () => periods.length >= 8);
    assert.ok(
      periods.every((p) => p >= 20 && p <= 160),
      `delays within [min / 2, max]: ${periods}`,
    );
    assert.ok(periods[0] <= 40 && periods[1] <= 80, `the ceiling doubles from min: ${periods}`);
    // Six draws below 160 ms all at or under 40 ms would be a 1-in-100,000 chance.
    assert.ok(periods.slice(2).some((p) => p > 40), `delays grow past min: ${periods}`);
    await broker.start();
    await waitFor("the reconnection", () => client.connected);
    const pub = await mqtt.connectAsync(broker.url);
    try {
      // The renewed subscription may land just after the connect event: publish until it shows.
      await waitFor("a message on the renewed subscription", async () => {
        await pub.publishAsync("helper/t", "back", { qos: 1 });
        return got.includes("back");
      });
    } finally {
      await pub.endAsync();
    }
  } finally {
    await client.endAsync(true);
    await broker.stop();
  }
});

Deno.test("an MQTT client never builds mqtt-packet's 65,536-entry number cache (about 9 MB of heap)", async () => {
  const broker = await startMosquitto();
  const client = connectMqtt({ url: broker.url }, { clientId: "cache-test" });
  client.on("error", () => {});
  try {
    await waitFor("the connection", () => client.connected);
    // QoS 1 writes a packet id, the number the cache would have served.
    await client.publishAsync("helper/cache", "x", { qos: 1 });
    assert.equal(Object.keys(numbers.cache).length, 0, "no cached 2-byte buffers");
  } finally {
    await client.endAsync(true);
    await broker.stop();
  }
});
