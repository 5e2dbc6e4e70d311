import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";

Deno.test("per-reading mode publishes each reading on gateways/{gatewayId}/devices/{deviceId}/telemetry", async () => {
  const broker = await startMosquitto();
  const client = await mqtt.connectAsync(broker.url);
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  client.on("message", (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) }));
  await client.subscribeAsync("gateways/+/devices/+/telemetry", { qos: 1 });
  const dir = await Deno.makeTempDir();
  const gw = await startGateway(
    dir,
    `
gateway: { id: per-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  topicMode: per-reading
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 50ms, prefix: tank }
`,
  );
  try {
    await waitFor(
      "readings of both devices",
      () =>
        got.some((m) => m.topic === "gateways/per-gw/devices/tank-1/telemetry") &&
        got.some((m) => m.topic === "gateways/per-gw/devices/tank-2/telemetry"),
    );
    const m = got[0];
    assert.equal(m.body.gw, "per-gw");
    assert.equal(typeof m.body.epoch, "string");
    assert.equal(typeof m.body.seq, "number");
    assert.equal(m.body.metric, "temperature");
    assert.equal(m.body.unit, "C");
    assert.equal(m.topic, `gateways/per-gw/devices/${m.body.device}/telemetry`);
  } finally {
    await gw.kill();
    await client.endAsync();
    await broker.stop();
  }
});
