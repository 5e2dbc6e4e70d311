/**
 * Hostile payloads on subscribed topics, against a gateway process under the production heap cap
 * and a real Mosquitto with a persistent session: each is refused before parsing, acknowledged
 * (never redelivered after a restart), counted by reason, and later messages still flow.
 */
import assert from "node:assert/strict";
import mqttjs from "mqtt";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { deepJsonList, longCsv, wideJsonObject } from "./helpers/hostile.ts";

interface AdapterStatus {
  name: string;
  counters: Record<string, number>;
}

async function counters(gw: GatewayProcess, name: string): Promise<Record<string, number>> {
  const s = await gw.status() as unknown as { adapters: AdapterStatus[] };
  return s.adapters.find((a) => a.name === name)?.counters ?? {};
}

async function devices(gw: GatewayProcess): Promise<Record<string, unknown>> {
  return ((await gw.status()) as unknown as { devices: Record<string, unknown> }).devices;
}

Deno.test({
  name:
    "a 5M-deep JSON list, 600k JSON fields and a 700k-line CSV are refused, acknowledged and counted; the gateway lives and later messages flow",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-limits-" });
  const broker = await startMosquitto({ persistent: true });
  const pub = await mqttjs.connectAsync(broker.url);
  const yaml = `
gateway: { id: limits-gw }
buffer: { path: ${dir}/buffer.db }
log: { format: json }
adapters:
  - type: mqtt
    name: esp
    url: ${broker.url}
    clientId: outpost-limits-esp
    cleanSession: false
    reconnect: { min: 50ms, max: 500ms }
    subscriptions:
      - { topic: "json/{device}", format: json }
      - { topic: "csv/{device}", format: csv, columns: ["-", level], timestampColumn: 0 }
      - { topic: "big/{device}", format: json, maxMessageBytes: 16MB }
      - { topic: "bigcsv/{device}", format: csv, columns: ["-", level], maxMessageBytes: 16MB }
  - type: zigbee2mqtt
    name: zigbee
    url: ${broker.url}
    clientId: outpost-limits-zigbee
    cleanSession: false
    reconnect: { min: 50ms, max: 500ms }
`;
  let gw = await startGateway(dir, yaml, { waitHealthy: true });
  try {
    await waitFor("subscriptions", async () => {
      const [a, b] = [await counters(gw, "esp"), await counters(gw, "zigbee")];
      return a.subscribed >= 1 && b.subscribed >= 1;
    });
    const deep = deepJsonList(5_000_000);
    const wide = wideJsonObject(600_000);
    const csv = longCsv(700_000);
    assert.ok(csv.length > 9_000_000 && deep.length === 10_000_000 && wide.length > 8_000_000);
    // Over the default 256 KB: refused by size before anything is decoded.
    await pub.publishAsync("json/deep", deep, { qos: 1 });
    await pub.publishAsync("json/wide", wide, { qos: 1 });
    await pub.publishAsync("csv/long", csv, { qos: 1 });
    await pub.publishAsync("zigbee2mqtt/deep", deep, { qos: 1 });
    // Under a 16 MB size limit: refused by shape.
    await pub.publishAsync("big/deep", deep, { qos: 1 });
    await pub.publishAsync("big/wide", wide, { qos: 1 });
    await pub.publishAsync("bigcsv/long", csv, { qos: 1 });
    await pub.publishAsync("zigbee2mqtt/small-deep", "[".repeat(100_000), { qos: 1 });
    await pub.publishAsync("json/good", JSON.stringify({ t: 21.5 }), { qos: 1 });
    await pub.publishAsync("zigbee2mqtt/kitchen", JSON.stringify({ temperature: 20 }), { qos: 1 });
    await waitFor("the good messages", async () => {
      const d = await devices(gw);
      return "good" in d && "kitchen" in d;
    }, 30_000);
    const esp = await counters(gw, "esp");
    assert.equal(esp.refused_size, 3, JSON.stringify(esp));
    assert.equal(esp.refused_depth, 1, JSON.stringify(esp));
    assert.equal(esp.refused_values, 1, JSON.stringify(esp));
    assert.equal(esp.refused_lines, 1, JSON.stringify(esp));
    assert.equal(esp.invalid_payloads, 6);
    const zigbee = await counters(gw, "zigbee");
    assert.equal(zigbee.refused_size, 1, JSON.stringify(zigbee));
    assert.equal(zigbee.refused_depth, 1, JSON.stringify(zigbee));
    const metrics = await (await gw.get("/metrics")).text();
    assert.match(
      metrics,
      /outpost_adapter_events_total\{adapter="esp",type="mqtt",event="refused_size"\} 3/,
    );
    // Logged once a minute per reason, with a short sample: no line near the payload's size.
    const out = gw.output();
    const refusals = out.split("\n").filter((l) => l.includes("payload refused"));
    assert.equal(refusals.filter((l) => l.includes('"reason":"size"')).length, 2, "esp + zigbee");
    for (const line of out.split("\n")) assert.ok(line.length < 2000, line.slice(0, 300));

    // Acknowledged: after a restart with the same persistent session nothing comes back.
    assert.equal(await gw.stop(), 0);
    gw = await startGateway(dir, yaml, { waitHealthy: true, httpPort: gw.httpPort });
    await waitFor("subscriptions again", async () => (await counters(gw, "esp")).subscribed >= 1);
    await pub.publishAsync("json/after", JSON.stringify({ t: 1 }), { qos: 1 });
    await waitFor("a message after the restart", async () => "after" in await devices(gw));
    const again = await counters(gw, "esp");
    assert.equal(again.messages, 1, `only the new message arrived: ${JSON.stringify(again)}`);
    assert.equal(again.invalid_payloads ?? 0, 0);
    assert.equal((await counters(gw, "zigbee")).invalid_payloads ?? 0, 0);
  } finally {
    await gw.kill();
    await pub.endAsync();
    await broker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
