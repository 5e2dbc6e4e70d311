import assert from "node:assert/strict";
import mqtt from "mqtt";
import { Ctx, INVALID } from "../config/schema.ts";
import { silentLogger } from "../log.ts";
import { startMosquitto } from "../../test/helpers/mosquitto.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { reconnectDelay, topicMatchesFilter } from "../common/mqtt.ts";
import { MqttUplink } from "./mqtt.ts";
import { type MqttUplinkConfig, mqttUplinkSchema } from "./mqtt_config.ts";
import type { InboundMessage } from "./uplink.ts";

function config(raw: Record<string, unknown>): MqttUplinkConfig {
  const ctx = new Ctx();
  const out = mqttUplinkSchema.check(raw, ctx, ["uplink"]);
  assert.deepEqual(ctx.issues, []);
  assert.notEqual(out, INVALID);
  return out as MqttUplinkConfig;
}

Deno.test("topicMatchesFilter() follows MQTT wildcards", () => {
  const yes: [string, string][] = [
    ["gateways/gw1/cmd/+", "gateways/gw1/cmd/ping"],
    ["gateways/+/cmd/+", "gateways/fleet/cmd/restart"],
    ["gateways/#", "gateways/gw1/cmd/ping"],
    ["gateways/#", "gateways"],
    ["#", "a/b"],
    ["a/+", "a/"],
  ];
  const no: [string, string][] = [
    ["gateways/gw1/cmd/+", "gateways/gw1/cmd/ping/x"],
    ["gateways/gw1/cmd/+", "gateways/gw2/cmd/ping"],
    ["gateways/gw1/cmd/+", "gateways/gw1/cmd"],
    ["#", "$SYS/broker/uptime"],
    ["+/broker/uptime", "$SYS/broker/uptime"],
  ];
  for (const [f, t] of yes) assert.ok(topicMatchesFilter(f, t), `${f} matches ${t}`);
  for (const [f, t] of no) assert.ok(!topicMatchesFilter(f, t), `${f} does not match ${t}`);
});

Deno.test({
  name:
    "subscribe() renews its subscription on every connection, delivers only matching messages and ends with close()",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const broker = await startMosquitto();
  const uplink = new MqttUplink({
    config: config({ url: broker.url, reconnect: { min: "50ms", max: "200ms" } }),
    gatewayId: "sub-gw",
    epoch: "e1",
    version: "test",
    log: silentLogger(),
  });
  const got: InboundMessage[] = [];
  const peer = await mqtt.connectAsync(broker.url, { reconnectPeriod: 100 });
  try {
    const sub = uplink.subscribe(["t/sub-gw/cmd/+"], (m) => got.push(m));
    assert.equal(sub.active, false, "not before a connection");
    uplink.start();
    await waitFor("the subscription granted", () => sub.active);
    await peer.publishAsync("t/sub-gw/cmd/ping", "one", { qos: 1 });
    await peer.publishAsync("t/other/cmd/ping", "not for us", { qos: 1 });
    await peer.publishAsync("t/sub-gw/cmd/ping", "two", { qos: 1, retain: true });
    await waitFor("two messages", () => got.length === 2);
    assert.deepEqual(got.map((m) => new TextDecoder().decode(m.payload)), ["one", "two"]);
    assert.equal(got[0].topic, "t/sub-gw/cmd/ping");
    assert.equal(got[1].retain, false, "live delivery, not from the retained store");

    // A broker restart: a fresh clean session, subscribed again without being asked.
    await broker.stop();
    await waitFor("the uplink to notice", () => !uplink.connected && !sub.active);
    await broker.start();
    await waitFor("subscribed again", () => uplink.connected && sub.active, 15_000);
    await waitFor("the peer back", () => peer.connected);
    await peer.publishAsync("t/sub-gw/cmd/ping", "three", { qos: 1 });
    await waitFor("the message after the reconnect", () => got.length === 3);
    assert.equal(new TextDecoder().decode(got[2].payload), "three");

    // Publishing on the same connection is confirmed by PUBACK.
    const echoed: string[] = [];
    peer.on("message", (_t, p) => echoed.push(p.toString()));
    await peer.subscribeAsync("t/sub-gw/reply", { qos: 1 });
    await uplink.publish("t/sub-gw/reply", "pong");
    await waitFor("the reply at the peer", () => echoed.includes("pong"));

    sub.close();
    assert.equal(sub.active, false);
    await peer.publishAsync("t/sub-gw/cmd/ping", "four", { qos: 1 });
    // The reply round trip below is ordered after "four" at the broker.
    await uplink.publish("t/sub-gw/reply", "after");
    await waitFor("the second reply at the peer", () => echoed.includes("after"));
    assert.equal(got.length, 3, "nothing after close()");
  } finally {
    await uplink.close();
    await peer.endAsync(true);
    await broker.stop();
  }
});

Deno.test("reconnectDelay() with the default bounds never waits more than 5 s", () => {
  const bounds = config({ url: "mqtt://127.0.0.1:1" }).reconnect;
  assert.deepEqual(bounds, { min: 1000, max: 5000 });
  for (let attempt = 0; attempt < 40; attempt++) {
    assert.ok(reconnectDelay(attempt, bounds, () => 0.9999) <= 5000, `attempt ${attempt}`);
    assert.ok(reconnectDelay(attempt, bounds, () => 0) >= 500, `attempt ${attempt}`);
  }
  // Exponential below the cap: the second attempt may wait up to 2 s, the first up to 1 s.
  assert.ok(reconnectDelay(1, bounds, () => 0.9999) > 1000);
  assert.ok(reconnectDelay(0, bounds, () => 0.9999) <= 1000);
});

Deno.test({
  name:
    "the uplink is back within 5 s of the broker's return after a long outage, and shows the next attempt",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const broker = await startMosquitto();
  const uplink = new MqttUplink({
    config: config({ url: broker.url }),
    gatewayId: "reconnect-gw",
    epoch: "e1",
    version: "test",
    log: silentLogger(),
  });
  try {
    uplink.start();
    await waitFor("connected", () => uplink.connected, 15_000);
    await broker.stop();
    await waitFor("the drop noticed", () => !uplink.connected);
    // Long enough for an uncapped 1 s·2^n backoff to grow past 8 s.
    const outageEnds = Date.now() + 12_000;
    let seenNext = 0;
    while (Date.now() < outageEnds) {
      const next = uplink.state().nextAttemptAt;
      if (typeof next === "number") {
        seenNext++;
        assert.ok(next - Date.now() <= 5000, `next attempt ${next - Date.now()}ms away`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seenNext > 0, "nextAttemptAt shown while offline");
    await broker.start();
    const back = Date.now();
    await waitFor("reconnected", () => uplink.connected, 15_000);
    const took = Date.now() - back;
    assert.ok(took <= 5500, `reconnected ${took}ms after the broker returned`);
    assert.equal(uplink.state().nextAttemptAt, null);
  } finally {
    await uplink.close();
    await broker.stop();
  }
});
