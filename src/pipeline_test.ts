import assert from "node:assert/strict";
import { Buffer } from "./buffer/buffer.ts";
import { bufferSchema } from "./config/gateway.ts";
import { Ctx } from "./config/schema.ts";
import { silentLogger } from "./log.ts";
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
