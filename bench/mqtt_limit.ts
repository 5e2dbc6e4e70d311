/**
 * The transport's own limit for the drain figure: mqtt.js alone publishing QoS 1 over mutual TLS
 * to the same broker, the same number in flight, the same payloads (the drain's batches, encoded
 * beforehand, so no buffer read and no encoding is counted). Prints one JSON line: readings,
 * seconds, messages. Args: broker URL, CA, cert, key, readings; env OUTPOST_BENCH_INFLIGHT.
 */
import mqtt from "mqtt";
import { encodeBatches } from "../src/uplink/encode.ts";
import { makeReadings } from "./_data.ts";

const [url, ca, cert, key, n] = Deno.args;
const total = Number(n);
const inflight = Number(Deno.env.get("OUTPOST_BENCH_INFLIGHT") ?? 16);
const id = { gatewayId: "bench-gw", epoch: "a1b2c3d4e5f6" };
const T0 = Date.now() - 86_400_000;
// The forwarder reads 2000 readings per step and sends them as batches of at most 128 KB.
const payloads: { payload: string; count: number }[] = [];
for (let i = 0; i < total; i += 2000) {
  const rs = makeReadings(2000, i, T0).map((r, k) => ({ ...r, seq: i + k + 1 }));
  for (const b of encodeBatches(rs, id, { maxBytes: 128 * 1024 })) payloads.push(b);
}
const client = mqtt.connect(url, {
  clientId: "bench-raw",
  clean: true,
  protocolVersion: 4,
  reconnectPeriod: 0,
  ca: Deno.readTextFileSync(ca),
  cert: Deno.readTextFileSync(cert),
  key: Deno.readTextFileSync(key),
});
await new Promise<void>((resolve, reject) => {
  client.once("connect", () => resolve());
  client.once("error", reject);
});
const topic = "gateways/bench-gw/telemetry";
const t0 = performance.now();
await new Promise<void>((resolve, reject) => {
  let next = 0;
  let open = 0;
  const pump = () => {
    while (open < inflight && next < payloads.length) {
      open++;
      client.publish(topic, payloads[next++].payload, { qos: 1 }, (err) => {
        open--;
        if (err) return reject(err);
        if (next === payloads.length && open === 0) resolve();
        else pump();
      });
    }
  };
  pump();
});
const seconds = (performance.now() - t0) / 1000;
await client.endAsync();
const readings = payloads.reduce((s, p) => s + p.count, 0);
console.log(JSON.stringify({ readings, seconds, messages: payloads.length }));
