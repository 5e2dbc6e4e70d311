import assert from "node:assert/strict";
import { decodeBatch, encodeBatches, encodeReading, fillTopic } from "./encode.ts";
import type { StoredReading } from "../reading.ts";
import { mulberry32 } from "../rng.ts";

const id = { gatewayId: "gw-1", epoch: "e1" };

function sample(n: number, seed = 1): StoredReading[] {
  const rnd = mulberry32(seed);
  let seq = 100;
  return Array.from({ length: n }, (_, i) => {
    seq += rnd() < 0.1 ? 2 : 1; // holes, as after drops
    const kind = i % 7;
    return {
      seq,
      device: `dév-${i % 5}`,
      metric: kind === 3 ? "state" : "temp",
      value: kind === 3 ? `on "${i}"` : kind === 5 ? i % 2 === 0 : Math.round(rnd() * 1e4) / 100,
      ...(kind === 3 ? {} : { unit: "°C" }),
      ts: 1_795_000_000_000 + i * 37,
    };
  });
}

Deno.test("encodeBatches() round-trips through decodeBatch() with holes, units, strings and booleans", () => {
  const readings = sample(2000);
  const batches = encodeBatches(readings, id, { maxBytes: 128 * 1024 });
  const back = batches.flatMap((b) => decodeBatch(b.payload).readings);
  assert.deepEqual(back, readings);
  assert.equal(batches.reduce((n, b) => n + b.count, 0), 2000);
});

Deno.test("no batch exceeds maxBytes, and targetBytes closes batches near the target", () => {
  const readings = sample(5000, 7);
  for (const limits of [{ maxBytes: 4096 }, { maxBytes: 128 * 1024, targetBytes: 5120 }]) {
    const batches = encodeBatches(readings, id, limits);
    const cap = limits.targetBytes ?? limits.maxBytes;
    for (const b of batches) {
      const size = new TextEncoder().encode(b.payload).length;
      assert.ok(size <= cap, `${size} > ${cap}`);
    }
    // Every batch but the last is at least 90% full.
    for (const b of batches.slice(0, -1)) {
      assert.ok(new TextEncoder().encode(b.payload).length > cap * 0.9);
    }
    assert.deepEqual(batches.flatMap((b) => decodeBatch(b.payload).readings), readings);
  }
});

Deno.test("per-reading payloads and topics carry gateway, epoch and seq", () => {
  const r = sample(1)[0];
  assert.deepEqual(JSON.parse(encodeReading(r, id)), {
    gw: "gw-1",
    epoch: "e1",
    seq: r.seq,
    device: r.device,
    metric: r.metric,
    value: r.value,
    unit: "°C",
    ts: r.ts,
  });
  assert.equal(
    fillTopic("gateways/{gatewayId}/devices/{deviceId}/telemetry", {
      gatewayId: "gw-1",
      deviceId: "a/b+#",
    }),
    "gateways/gw-1/devices/a_b__/telemetry",
  );
});
