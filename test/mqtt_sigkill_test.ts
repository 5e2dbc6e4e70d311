/**
 * The mqtt adapter acknowledges a QoS 1 message to its broker only once the readings it carries
 * are committed to the buffer: a gateway SIGKILLed in the middle of a steady stream loses nothing
 * the broker took from a device, because what it had not stored yet was never PUBACKed and the
 * broker hands it out again over the persistent session. And a message the buffer refuses for
 * want of disk space is not PUBACKed either: it arrives once the disk has room again.
 */
import assert from "node:assert/strict";
import mqttjs from "mqtt";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { canMount, fillTo, mountTmpfs, unmount } from "./helpers/tmpfs.ts";
import { exportReadings } from "../src/buffer/export.ts";
import { mulberry32 as rng } from "../src/rng.ts";

interface AdapterStatus {
  name: string;
  counters: Record<string, number>;
}

async function counters(gw: GatewayProcess): Promise<Record<string, number>> {
  const s = await gw.status() as unknown as { adapters: AdapterStatus[] };
  return s.adapters.find((a) => a.name === "esp")?.counters ?? {};
}

async function hasDevice(gw: GatewayProcess, device: string): Promise<boolean> {
  const s = await gw.status() as unknown as { devices: Record<string, unknown> };
  return device in s.devices;
}

function config(buffer: string, url: string, extra = ""): string {
  return `
gateway: { id: mqtt-kill-gw }
buffer: { path: ${buffer}${extra} }
adapters:
  - type: mqtt
    name: esp
    url: ${url}
    clientId: outpost-kill-esp
    cleanSession: false
    reconnect: { min: 50ms, max: 300ms }
    subscriptions:
      - { topic: "dev/{device}/{metric}", format: number, qos: 1 }
`;
}

/** Values stored for metric `n`, from the buffer file (the gateway must be stopped). */
function storedValues(buffer: string): Set<number> & { rows: number } {
  const out = Object.assign(new Set<number>(), { rows: 0 });
  for (const r of exportReadings(buffer)) {
    if (r.metric !== "n") continue;
    out.add(r.value as number);
    out.rows++;
  }
  return out;
}

/** A device-side publisher: a numbered QoS 1 stream over 50 devices; remembers what the broker PUBACKed. */
async function publisher(url: string) {
  const client = await mqttjs.connectAsync(url, { clientId: `dev-pub-${Date.now()}` });
  const acked = new Set<number>();
  let next = 0;
  let outstanding = 0;
  const send = (n: number) => {
    for (let i = 0; i < n; i++) {
      const value = next++;
      outstanding++;
      client.publish(`dev/d${value % 50}/n`, String(value), { qos: 1 }, (err) => {
        outstanding--;
        if (!err) acked.add(value);
      });
    }
  };
  let timer: ReturnType<typeof setInterval> | undefined;
  return {
    acked,
    get sent() {
      return next;
    },
    /** Sends `perTick` messages every 10 ms until `stop()`. */
    start(perTick: number) {
      timer = setInterval(() => send(perTick), 10);
    },
    async stop() {
      clearInterval(timer);
      await waitFor("the broker to PUBACK every message", () => outstanding === 0, 30_000);
    },
    async end(device: string) {
      await client.publishAsync(`dev/${device}/end`, "1", { qos: 1 });
      await client.endAsync();
    },
  };
}

Deno.test({
  name:
    "mqtt adapter: SIGKILL during a steady 1,000 msgs/s QoS 1 stream, 3 times, then a SIGTERM: every message the broker acknowledged to the device is in the buffer",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const seed = Number(Deno.env.get("OUTPOST_TEST_SEED") ?? Date.now() % 100_000);
  const random = rng(seed);
  const dir = await Deno.makeTempDir({ prefix: "outpost-mqtt-kill-" });
  const buffer = `${dir}/buffer.db`;
  const broker = await startMosquitto({ persistent: true });
  const yaml = config(buffer, broker.url);
  let gw = await startGateway(dir, yaml, { waitHealthy: true });
  const pub = await publisher(broker.url);
  try {
    await waitFor("the subscription", async () => (await counters(gw)).subscribed >= 1);
    pub.start(10);
    for (let kill = 0; kill < 3; kill++) {
      // Let the stream reach the gateway (a redelivered backlog first after a restart).
      const before = pub.sent;
      await waitFor("messages to flow", async () => (await counters(gw)).messages > 300);
      await new Promise((r) => setTimeout(r, 200 + Math.floor(random() * 800)));
      assert.ok(pub.sent > before, "the stream is running");
      await gw.kill();
      gw = await startGateway(dir, yaml, { waitHealthy: true, httpPort: gw.httpPort });
    }
    // A stop (SIGTERM) in the middle of the stream loses nothing either.
    await waitFor("messages to flow", async () => (await counters(gw)).messages > 300);
    assert.equal(await gw.stop(), 0);
    gw = await startGateway(dir, yaml, { waitHealthy: true, httpPort: gw.httpPort });
    await waitFor("messages to flow", async () => (await counters(gw)).messages > 300);
    await pub.stop();
    // Messages keep their order through the broker: once this one is stored, all before it are.
    await pub.end("last");
    await waitFor("the last message in the buffer", () => hasDevice(gw, "last"), 30_000);
    assert.equal(await gw.stop(), 0);
    const stored = storedValues(buffer);
    const missing = [...pub.acked].filter((v) => !stored.has(v)).sort((a, b) => a - b);
    console.log(
      `seed ${seed}: ${pub.sent} sent, ${pub.acked.size} acknowledged by the broker, ${stored.size} stored (${
        stored.rows - stored.size
      } twice), ${missing.length} missing`,
    );
    assert.ok(pub.acked.size >= 2000, `only ${pub.acked.size} messages went out`);
    assert.deepEqual(
      missing.slice(0, 20),
      [],
      `${missing.length} acknowledged messages lost (seed ${seed})`,
    );
  } finally {
    await gw.kill();
    await broker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "mqtt adapter: messages the buffer refuses for a full disk are not acknowledged and are stored once space returns, without a restart",
  ignore: !canMount,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-mqtt-full-" });
  const mnt = `${dir}/mnt`;
  await Deno.mkdir(mnt);
  await mountTmpfs(mnt, 16 * 1024 * 1024);
  const filler = `${mnt}/filler`;
  const buffer = `${mnt}/buffer.db`;
  const broker = await startMosquitto({ persistent: true });
  const yaml = config(buffer, broker.url, ", minFreeDisk: 2MB, reserve: 1MB");
  const gw = await startGateway(dir, yaml, { waitHealthy: true });
  const pub = await publisher(broker.url);
  try {
    await waitFor("the subscription", async () => (await counters(gw)).subscribed >= 1);
    pub.start(5);
    await waitFor("messages to be stored", async () => (await counters(gw)).readings > 200);
    fillTo(filler, 0);
    await waitFor(
      "the buffer to refuse",
      async () => (await counters(gw)).emit_failures > 0,
      10_000,
    );
    // The buffer's reserve went back to the disk when it filled; the filler takes that too.
    fillTo(filler, 0);
    // Messages go on arriving while the disk stays full.
    const sentAtFull = pub.sent;
    await waitFor("300 more messages", () => pub.sent > sentAtFull + 300);
    assert.ok((await counters(gw)).emit_failures > 0);
    await pub.stop();
    assert.ok(pub.acked.size > 300, `${pub.acked.size} messages went out`);
    Deno.removeSync(filler);
    await pub.end("last");
    const arrived = await waitFor("the last message", () => hasDevice(gw, "last"), 15_000)
      .then(() => true, () => false);
    const pid = gw.pid;
    assert.equal(await gw.stop(), 0);
    const stored = storedValues(buffer);
    const missing = [...pub.acked].filter((v) => !stored.has(v)).sort((a, b) => a - b);
    console.log(
      `${pub.acked.size} acknowledged by the broker, ${stored.size} stored, ${missing.length} missing, same process ${pid}`,
    );
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} messages lost to the full disk`);
    assert.ok(arrived, "the message sent after the disk had room again was stored");
  } finally {
    await gw.kill();
    await broker.stop();
    await unmount(mnt);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
