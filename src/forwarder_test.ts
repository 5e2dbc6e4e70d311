import assert from "node:assert/strict";
import { Buffer } from "./buffer/buffer.ts";
import { bufferSchema } from "./config/gateway.ts";
import { Ctx } from "./config/schema.ts";
import { Forwarder } from "./forwarder.ts";
import { silentLogger } from "./log.ts";
import { decodeBatch } from "./uplink/encode.ts";
import { HttpsUplink } from "./uplink/https.ts";
import { httpsUplinkSchema } from "./uplink/https_config.ts";
import { testCerts } from "../test/helpers/certs.ts";
import { freePort, waitFor } from "../test/helpers/ports.ts";
import type { Reading } from "./reading.ts";

const T0 = Date.now() - 3_600_000;

function readings(n: number, start: number): Reading[] {
  return Array.from({ length: n }, (_, k) => ({
    device: `d${(start + k) % 4}`,
    metric: "m",
    value: start + k,
    ts: T0 + start + k,
  }));
}

/** A TLS ingest server that can be stopped and started on the same port. */
async function ingestServer(port: number, policy: (seqs: number[]) => number) {
  const c = await testCerts();
  const cert = await Deno.readTextFile(c.serverCert);
  const key = await Deno.readTextFile(c.serverKey);
  const received: number[][] = [];
  let server: Deno.HttpServer | undefined;
  const api = {
    received,
    start() {
      server = Deno.serve(
        { port, hostname: "127.0.0.1", cert, key, onListen() {} },
        async (req) => {
          if (req.method !== "POST") return new Response(null, { status: 204 });
          const batch = decodeBatch(await req.text());
          const seqs = batch.readings.map((r) => r.seq);
          const status = policy(seqs);
          if (status < 300) received.push(seqs);
          return new Response(status < 300 ? "{}" : `{"error":"refused"}`, { status });
        },
      );
    },
    async stop() {
      await server?.shutdown();
      server = undefined;
    },
  };
  api.start();
  return api;
}

Deno.test("forwarder over HTTPS: a 400 batch is set aside and reported, later batches delivered, nothing resent after 2xx", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const c = await testCerts();
  const poisoned = 37;
  const server = await ingestServer(port, (seqs) => seqs.includes(poisoned) ? 400 : 200);
  const buffer = Buffer.open(
    bufferSchema.check({ path: `${dir}/b.db` }, new Ctx(), []) as never,
    { log: silentLogger() },
  );
  const config = httpsUplinkSchema.check(
    {
      url: `https://127.0.0.1:${port}/ingest`,
      tls: { ca: c.ca },
      targetMessageBytes: 512,
      retry: { min: "50ms", max: "200ms" },
    },
    new Ctx(),
    [],
  );
  const uplink = new HttpsUplink({
    config: config as never,
    gatewayId: "gw",
    epoch: buffer.epoch,
    version: "test",
    log: silentLogger(),
  });
  const forwarder = new Forwarder({ buffer, uplink, log: silentLogger() });
  try {
    uplink.start();
    forwarder.start();
    await buffer.append(readings(100, 0));
    await waitFor("the first 100 forwarded or set aside", () => buffer.stats().pending === 0);
    const aside = buffer.setAsideRanges();
    assert.equal(aside.length, 1);
    assert.ok(aside[0].lo <= poisoned && poisoned <= aside[0].hi);
    assert.match(aside[0].reason, /400/);
    assert.ok(forwarder.stats().setAside > 0);
    // Server down, readings keep coming, server up: everything completes.
    await server.stop();
    await buffer.append(readings(100, 100));
    await waitFor(
      "the uplink to notice",
      () => !uplink.connected || buffer.stats().pending === 100,
    );
    server.start();
    await waitFor(
      "the rest forwarded after the outage",
      () => buffer.stats().pending === 0,
      20_000,
    );
    const delivered = server.received.flat();
    const expected = Array.from({ length: 200 }, (_, i) => i + 1)
      .filter((s) => !(s >= aside[0].lo && s <= aside[0].hi));
    assert.deepEqual([...new Set(delivered)].sort((a, b) => a - b), expected);
    assert.equal(
      delivered.length,
      new Set(delivered).size,
      "an acknowledged batch is never resent",
    );
    // Set-aside readings stay in the buffer for export.
    assert.equal(buffer.query({ afterSeq: poisoned - 1, limit: 1 })[0].seq, poisoned);
  } finally {
    forwarder.stop();
    await uplink.close();
    buffer.close();
    await server.stop();
  }
});

Deno.test("backfill pacing: the backlog goes at the capped pace while new readings go at once", async () => {
  const { startMosquitto } = await import("../test/helpers/mosquitto.ts");
  const { subscribe } = await import("../test/helpers/subscriber.ts");
  const { MqttUplink } = await import("./uplink/mqtt.ts");
  const { mqttUplinkSchema } = await import("./uplink/mqtt_config.ts");
  const dir = await Deno.makeTempDir();
  const broker = await startMosquitto();
  const sub = await subscribe(broker.url);
  const buffer = Buffer.open(
    bufferSchema.check({ path: `${dir}/b.db` }, new Ctx(), []) as never,
    { log: silentLogger() },
  );
  await buffer.append(readings(3000, 0)); // the backlog of an outage
  const config = mqttUplinkSchema.check(
    {
      url: broker.url,
      targetMessageBytes: "1KB",
      backfill: { messagesPerSecond: 10 },
    },
    new Ctx(),
    [],
  ) as never;
  const uplink = new MqttUplink({
    config,
    gatewayId: "gw",
    epoch: buffer.epoch,
    version: "t",
    log: silentLogger(),
  });
  const forwarder = new Forwarder({
    buffer,
    uplink,
    log: silentLogger(),
    backfill: { messagesPerSecond: 10 },
  });
  try {
    forwarder.start();
    uplink.start();
    await waitFor("the uplink", () => uplink.connected);
    const started = Date.now();
    await buffer.append(readings(20, 3000)); // live readings, after the reconnect
    await waitFor("the live readings", () => {
      const u = sub.unique();
      return Array.from({ length: 20 }, (_, i) => 3001 + i).every((s) => u.has(s));
    }, 5000);
    const backlogDelivered = [...sub.unique().keys()].filter((s) => s <= 3000).length;
    assert.ok(backlogDelivered < 3000, "live readings arrived before the backlog finished");
    assert.ok(forwarder.stats().backlogLane !== null, "the paced lane is still draining");
    // ~55 readings per 1 KB message at 10 messages/s: the pace holds within a generous margin.
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(backlogDelivered <= (elapsed + 1.5) * 10 * 70, `${backlogDelivered} in ${elapsed}s`);
  } finally {
    forwarder.stop();
    await uplink.close();
    buffer.close();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("stuck(): readings pending, uplink connected and no acknowledgement for stuckAfterMs", async () => {
  const dir = await Deno.makeTempDir();
  const buffer = Buffer.open(
    bufferSchema.check({ path: `${dir}/b.db`, reserve: 0 }, new Ctx(), []) as never,
    { log: silentLogger() },
  );
  // A broker that takes messages and never confirms them.
  const held: (() => void)[] = [];
  const uplink = {
    type: "stub",
    maxInflight: 2,
    connected: true,
    encode: (rs: { seq: number }[]) => [{
      topic: "t",
      payload: "x",
      first: rs[0].seq,
      last: rs[rs.length - 1].seq,
      count: rs.length,
    }],
    send: () => new Promise<void>((resolve) => held.push(resolve)),
    state: () => ({}) as never,
    onStateChange: () => () => {},
    start() {},
    close: () => Promise.resolve(),
  };
  const fwd = new Forwarder({
    buffer,
    uplink: uplink as never,
    log: silentLogger(),
    stuckAfterMs: 100,
  });
  fwd.start();
  try {
    assert.equal(fwd.stuck(), undefined, "nothing pending");
    await buffer.append(readings(10, 0));
    await waitFor("a message in flight", () => held.length > 0);
    assert.equal(fwd.stuck(), undefined, "not yet");
    assert.match(
      fwd.stuck(Date.now() + 150) ?? "",
      /^10 readings pending and the uplink connected, but nothing acknowledged for \ds$/,
    );
    for (const r of held.splice(0)) r();
    await fwd.idle();
    assert.equal(fwd.stuck(Date.now() + 150), undefined, "all acknowledged");
    uplink.connected = false;
    await buffer.append(readings(10, 10));
    assert.equal(fwd.stuck(Date.now() + 150), undefined, "offline is not stuck");
  } finally {
    fwd.stop();
    for (const r of held.splice(0)) r();
    buffer.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in flight: at most ~160 KB of payload at once (one message always), whatever the uplink's maxInflight", async () => {
  const dir = await Deno.makeTempDir();
  const buffer = Buffer.open(
    bufferSchema.check({ path: `${dir}/b.db`, reserve: 0 }, new Ctx(), []) as never,
    { log: silentLogger() },
  );
  const held: { resolve: () => void; bytes: number }[] = [];
  let size = 50_000;
  const uplink = {
    type: "stub",
    maxInflight: 16,
    connected: true,
    encode: (rs: { seq: number }[]) => [{
      topic: "t",
      payload: "x".repeat(size),
      first: rs[0].seq,
      last: rs[rs.length - 1].seq,
      count: rs.length,
    }],
    send: (m: { payload: string }) =>
      new Promise<void>((resolve) => held.push({ resolve, bytes: m.payload.length })),
    state: () => ({}) as never,
    onStateChange: () => () => {},
    start() {},
    close: () => Promise.resolve(),
  };
  const fwd = new Forwarder({ buffer, uplink: uplink as never, log: silentLogger(), readRows: 2 });
  try {
    await buffer.append(readings(60, 0));
    fwd.start();
    await waitFor("messages in flight", () => held.length > 0);
    // 0, 50, 100, 150 KB in flight before each send: the fourth fills the budget.
    assert.equal(held.length, 4);
    held.shift()!.resolve();
    await waitFor("the next message sent", () => held.length === 4);
    // One message larger than the budget still goes, alone.
    for (const h of held.splice(0)) h.resolve();
    size = 400_000;
    await waitFor("a large message in flight", () => held.length > 0);
    assert.equal(held.length, 1);
    assert.equal(held[0].bytes, 400_000);
    size = 10;
    // Small messages: the uplink's maxInflight is the bound.
    held.shift()!.resolve();
    await waitFor("small messages in flight", () => held.length === 16);
    for (let i = 0; i < 100 && (held.length || buffer.pending); i++) {
      for (const h of held.splice(0)) h.resolve();
      await new Promise((r) => setTimeout(r, 5));
    }
    await fwd.idle();
    assert.equal(buffer.pending, 0);
  } finally {
    fwd.stop();
    for (const h of held.splice(0)) h.resolve();
    buffer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
