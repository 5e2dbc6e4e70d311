import assert from "node:assert/strict";
import { Buffer } from "./buffer/buffer.ts";
import { bufferSchema } from "./config/gateway.ts";
import { Ctx } from "./config/schema.ts";
import { createLogger, type LogRecord, silentLogger } from "./log.ts";
import { Pipeline } from "./pipeline.ts";

Deno.test("emit() drops invalid readings by reason and keeps the valid ones in order", async () => {
  const dir = await Deno.makeTempDir();
  const buffer = Buffer.open(
    bufferSchema.check({ path: `${dir}/b.db` }, new Ctx(), []) as never,
    { log: silentLogger() },
  );
  const p = new Pipeline({ buffer, log: silentLogger() });
  const now = Date.now();
  const ok = (v: number) => ({ device: "d", metric: "m", value: v, ts: now });
  const res = await p.emit("src", [
    ok(1),
    { ...ok(0), value: NaN },
    ok(2),
    { ...ok(0), ts: now + 7 * 86_400_000 },
    { ...ok(0), device: "bad id" },
    ok(3),
  ]);
  assert.equal(res.accepted, 3);
  assert.equal(res.rejected, 3);
  assert.deepEqual(buffer.readPending(0, 10).readings.map((r) => r.value), [1, 2, 3]);
  const st = p.stats();
  assert.deepEqual([st.invalid.value, st.invalid.timestamp, st.invalid.device], [1, 1, 1]);
  assert.deepEqual(st.bySource.src, { received: 6, accepted: 3, invalid: 3 });
  buffer.close();
});

Deno.test("emit() refuses readings of new series beyond buffer.maxSeries; known series keep flowing", async () => {
  const dir = await Deno.makeTempDir();
  const config = (maxSeries: number) =>
    bufferSchema.check({ path: `${dir}/b.db`, maxSeries }, new Ctx(), []) as never;
  const log = createLogger({ sink: () => {} });
  const buffer = Buffer.open(config(100), { log: silentLogger() });
  const p = new Pipeline({ buffer, log });
  const now = Date.now();
  const dev = (from: number, n: number, metric = "t") =>
    Array.from({ length: n }, (_, i) => ({ device: `d${from + i}`, metric, value: i, ts: now }));
  // 60 below the limit: no check, all stored.
  assert.equal((await p.emit("src", dev(0, 60))).accepted, 60);
  // 60 more new ones with room for 40: the first 40 in order, the rest refused.
  const res = await p.emit("src", [...dev(60, 60), ...dev(0, 60)]);
  assert.deepEqual([res.accepted, res.rejected], [100, 20]);
  assert.equal(buffer.seriesCount, 100);
  assert.equal(p.stats().seriesLimit, 20);
  // Known series still flow; a new metric of a known device is a new series and is refused.
  const again = await p.emit("src", [...dev(0, 100), ...dev(0, 1, "rh")]);
  assert.deepEqual([again.accepted, again.rejected], [100, 1]);
  assert.deepEqual(Object.keys(p.lastValues()).length, 100);
  const errors = log.recent(100).filter((r: LogRecord) => r.level === "error");
  assert.equal(errors.length, 1, "logged once a minute");
  assert.match(errors[0].msg, /series limit of 100 reached \(buffer\.maxSeries\)/);
  assert.equal(errors[0].fields?.device, "d100");
  // Raised by a reload: new series are taken again.
  buffer.reconfigure(config(200));
  assert.equal((await p.emit("src", dev(100, 20))).accepted, 20);
  buffer.close();
});
