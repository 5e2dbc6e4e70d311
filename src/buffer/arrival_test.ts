import assert from "node:assert/strict";
import { Ctx } from "../config/schema.ts";
import { type BufferConfig, bufferSchema } from "../config/gateway.ts";
import { silentLogger } from "../log.ts";
import { Buffer } from "./buffer.ts";
import { Arrivals } from "./_arrival.ts";

function config(dir: string): BufferConfig {
  return bufferSchema.check({ path: `${dir}/buffer.db` }, new Ctx(), []) as BufferConfig;
}

Deno.test("oldestPendingArrivalTs() goes by when readings were stored, not by their timestamps; acks move it on; a reopen counts from the open", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: Date.UTC(2026, 10, 1, 12) };
  const now = () => clock.t;
  try {
    let b = Buffer.open(config(dir), { log: silentLogger(), now });
    const backdated = (n: number, device: string) =>
      Array.from({ length: n }, (_, i) => ({
        device,
        metric: "flow",
        value: i,
        ts: clock.t - 48 * 3600_000 + i,
      }));
    const first = await b.append(backdated(10, "a"));
    const firstAt = clock.t;
    clock.t += 5000;
    await b.append(backdated(10, "b"));
    const s = b.stats();
    assert.equal(s.oldestPendingTs, Date.UTC(2026, 10, 1, 12) - 48 * 3600_000);
    assert.equal(s.oldestPendingArrivalTs, firstAt);
    // The first commit forwarded: the second commit's arrival.
    b.ack(first.seqs[0], first.seqs.at(-1)!);
    assert.equal(b.oldestPendingArrivalTs(), firstAt + 5000);
    b.close();

    clock.t += 60_000;
    b = Buffer.open(config(dir), { log: silentLogger(), now });
    assert.equal(b.oldestPendingArrivalTs(), clock.t, "pending from before: arrived at the open");
    b.ack(1, b.lastSeq);
    assert.equal(b.oldestPendingArrivalTs(), null);
    b.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Arrivals stays bounded over many commits and never reports a reading later than it arrived", () => {
  const a = new Arrivals();
  for (let i = 1; i <= 100_000; i++) a.note(i * 10, i * 1000);
  assert.ok(a.size <= 4096, `${a.size} entries`);
  for (const seq of [1, 10, 11, 55_555, 999_991, 1_000_000]) {
    const at = a.arrivalOf(seq)!;
    const truth = Math.ceil(seq / 10) * 1000;
    assert.ok(at <= truth, `seq ${seq}: ${at} > ${truth}`);
    // 100,000 s of commits in at most 4096 buckets: each well under 70 s wide.
    assert.ok(truth - at < 70_000, `seq ${seq}: ${truth - at} ms early`);
  }
  assert.equal(a.arrivalOf(1_000_001), null);
  a.trim(500_000);
  assert.ok(a.arrivalOf(500_001)! <= 50_001_000);
  a.trim(1_000_000);
  assert.equal(a.size, 0);
});
