/**
 * A buffer at its cap with `overflow: reject-new` refuses new readings; the mqtt adapter must not
 * acknowledge (PUBACK) a message whose readings it refused, so the broker keeps it: the adapter
 * holds it and tries again until the buffer has room, and a message still held when the adapter
 * stops is handed out again on the next session.
 */
import assert from "node:assert/strict";
import mqttjs from "mqtt";
import { mqtt, type MqttConfig } from "../adapters/mqtt/mod.ts";
import { Buffer } from "../src/buffer/mod.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import { Pipeline } from "../src/pipeline.ts";
import type { Reading } from "../src/reading.ts";
import { type AdapterRun, runAdapter } from "./helpers/adapter_run.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";

const T0 = Date.now() - 60_000;

function adapterConfig(url: string): MqttConfig {
  const ctx = new Ctx();
  const c = mqtt.schema.check(
    {
      url,
      clientId: "outpost-full-test",
      cleanSession: false,
      reconnect: { min: "20ms", max: "100ms" },
      subscriptions: [{ topic: "n/{device}", format: "number", metric: "n" }],
    },
    ctx,
    [],
  );
  if (c === INVALID) throw new Error(ctx.issues.map((i) => i.message).join("; "));
  return c;
}

/** A buffer capped at 1,000 rows in reject-new mode, `fill` rows already in it (unforwarded). */
async function fullBuffer(dir: string, fill: number): Promise<Buffer> {
  const ctx = new Ctx();
  const c = bufferSchema.check(
    { path: `${dir}/buffer.db`, maxRows: 1000, overflow: "reject-new", integrityCheck: false },
    ctx,
    [],
  );
  if (c === INVALID) throw new Error(ctx.issues.map((i) => i.message).join("; "));
  const b = Buffer.open(c as never, { log: silentLogger() });
  const rows: Reading[] = Array.from({ length: fill }, (_, i) => ({
    device: "filler",
    metric: "x",
    value: i,
    ts: T0 + i,
  }));
  await b.append(rows);
  return b;
}

/** Runs the adapter against `emit`; `collected` holds what `emit` was handed. */
function start(cfg: MqttConfig, emit: (rs: Reading[]) => ReturnType<Pipeline["emit"]>) {
  return runAdapter(mqtt, cfg, { name: "esp", emit });
}

function storedValues(b: Buffer): number[] {
  return b.query({ device: "d", limit: 100 }).map((r) => r.value as number);
}

/**
 * The adapter on a real Mosquitto in front of a buffer with room for two: once it subscribed,
 * 1 to 4 are published with QoS 1 and 1 and 2 are stored, 3 and 4 refused (and held, not
 * acknowledged). `next()` starts the next session of the same client, whose emit accepts and
 * records the values. Everything is stopped after `fn`.
 */
async function withTwoRefused(
  fn: (r: {
    buffer: Buffer;
    pub: mqttjs.MqttClient;
    first: AdapterRun;
    next(): { run: AdapterRun; got: number[] };
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const broker = await startMosquitto();
  const pub = await mqttjs.connectAsync(broker.url);
  const buffer = await fullBuffer(dir, 998);
  const pipeline = new Pipeline({ buffer, log: silentLogger() });
  const cfg = adapterConfig(broker.url);
  const first = start(cfg, (rs) => pipeline.emit("esp", rs));
  let second: AdapterRun | undefined;
  const next = () => {
    const got: number[] = [];
    second = start(cfg, (rs) => {
      for (const r of rs) got.push(r.value as number);
      return Promise.resolve({ accepted: rs.length, rejected: 0, seqs: [] });
    });
    return { run: second, got };
  };
  try {
    await waitFor("subscription", () => first.counts.get("subscribed") === 1);
    for (const v of [1, 2, 3, 4]) await pub.publishAsync("n/d", String(v), { qos: 1 });
    await waitFor("the refusal", () => buffer.stats().rejectedFull >= 2, 10_000);
    await fn({ buffer, pub, first, next });
  } finally {
    await pub.endAsync();
    await second?.stop();
    await first.stop();
    buffer.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("mqtt adapter does not PUBACK readings a full buffer refused; the broker resends them", async () => {
  await withTwoRefused(async ({ buffer, first, next }) => {
    await waitFor("all four handed to emit", () => first.collected.length >= 4);
    await first.stop();
    assert.deepEqual(storedValues(buffer), [1, 2]);
    // The next session of the same client gets 3 and 4 again from the broker: never acknowledged.
    const { got } = next();
    await waitFor("the refused messages again", () => got.length >= 2, 10_000);
    assert.deepEqual(got, [3, 4]);
  });
});

Deno.test("mqtt adapter stores held readings once the full buffer has room, each once", async () => {
  await withTwoRefused(async ({ buffer, pub, first, next }) => {
    // The uplink confirms the filler: forwarded rows make room in reject-new mode.
    buffer.ack(1, 998);
    await waitFor("3 and 4 stored", () => storedValues(buffer).length === 4, 10_000);
    assert.deepEqual(storedValues(buffer), [1, 2, 3, 4]);
    await first.stop();
    // Stored, so acknowledged: the next session gets only what comes next.
    const { run, got } = next();
    await waitFor("subscription", () => run.counts.get("subscribed") === 1);
    await pub.publishAsync("n/d", "5", { qos: 1 });
    await waitFor("message 5", () => got.length >= 1);
    assert.deepEqual(got, [5]);
  });
});
