/**
 * Drains a prefilled buffer to an MQTT broker over mutual TLS, as a gateway process would, and
 * prints one JSON line: readings, seconds, messages, payload bytes, billable units, peak RSS (with
 * the V8 heap and external memory at that moment), RSS at the start.
 * Args: buffer path, broker URL, CA, cert, key.
 */
import { Buffer } from "../src/buffer/buffer.ts";
import { Forwarder } from "../src/forwarder.ts";
import { MqttUplink } from "../src/uplink/mqtt.ts";
import { mqttUplinkSchema } from "../src/uplink/mqtt_config.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import type { OutMessage } from "../src/uplink/uplink.ts";

const [path, url, ca, cert, key] = Deno.args;
const log = silentLogger();
const buffer = Buffer.open(
  bufferSchema.check({ path, integrityCheck: false }, new Ctx(), []) as never,
  { log },
);
const config = mqttUplinkSchema.check(
  {
    url,
    tls: { ca, cert, key },
    maxInflight: Number(Deno.env.get("OUTPOST_BENCH_INFLIGHT") ?? 16),
    maxMessageBytes: Deno.env.get("OUTPOST_BENCH_MSG") ?? "128KB",
  },
  new Ctx(),
  [],
);
const uplink = new MqttUplink({
  config: config as never,
  gatewayId: "bench-gw",
  epoch: buffer.epoch,
  version: "bench",
  log,
});
let messages = 0;
let bytes = 0;
let billable = 0;
const send = uplink.send.bind(uplink);
uplink.send = (m: OutMessage) => {
  messages++;
  // Payload, topic and the MQTT fixed header, variable header and packet id.
  bytes += m.payload.length + m.topic.length + 9;
  billable += Math.ceil(m.payload.length / 5120);
  return send(m);
};
let peakRss = Deno.memoryUsage().rss;
let peakHeap = 0;
let peakExternal = 0;
let peakFile = 0;
const sample = () => {
  const m = Deno.memoryUsage();
  if (m.rss > peakRss) {
    peakRss = m.rss;
    peakHeap = m.heapTotal;
    peakExternal = m.external;
    // File-backed pages (the binary's code) as against the process's own memory.
    const s = Deno.readTextFileSync("/proc/self/status");
    peakFile = Number(/^RssFile:\s*(\d+)/m.exec(s)?.[1] ?? 0) * 1024;
  }
};
const startRss = peakRss;
const sampler = setInterval(sample, 50);
const pending = buffer.stats().pending;
const connected = Promise.withResolvers<void>();
uplink.onStateChange((up) => up && connected.resolve());
uplink.start();
await connected.promise;
const forwarder = new Forwarder({
  buffer,
  uplink,
  log,
  readRows: Deno.env.get("OUTPOST_BENCH_ROWS")
    ? Number(Deno.env.get("OUTPOST_BENCH_ROWS"))
    : undefined,
});
const t0 = performance.now();
forwarder.start();
await forwarder.idle();
const seconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
sample();
forwarder.stop();
await uplink.close();
buffer.close();
console.log(
  JSON.stringify({
    readings: pending,
    seconds,
    messages,
    bytes,
    billable,
    peakRss,
    startRss,
    peakHeap,
    peakExternal,
    peakFile,
  }),
);
