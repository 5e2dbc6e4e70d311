import assert from "node:assert/strict";
import type { EmitResult } from "../adapter.ts";
import { silentLogger } from "../log.ts";
import type { Reading } from "../reading.ts";
import { QueueStoppedError, ReadingQueue } from "./reading_queue.ts";

const reading = (value: number): Reading => ({ device: "d", metric: "n", value, ts: 1 });
const ok = (rs: Reading[]): EmitResult => ({ accepted: rs.length, rejected: 0, seqs: [] });

function queue(emit: (rs: Reading[]) => Promise<EmitResult>, highWater = 100) {
  const abort = new AbortController();
  const counts = new Map<string, number>();
  const q = new ReadingQueue(emit, {
    highWater,
    retry: { min: 5, max: 20 },
    log: silentLogger(),
    count: (c, by = 1) => void counts.set(c, (counts.get(c) ?? 0) + by),
    signal: abort.signal,
  });
  return { q, counts, abort };
}

Deno.test("push() resolves only once emit resolved for those readings", async () => {
  let commit!: () => void;
  const { q } = queue(async (rs) => {
    await new Promise<void>((r) => commit = r);
    return ok(rs);
  });
  let stored = false;
  const p = q.push([reading(1)]).then(() => stored = true);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(stored, false, "not before the commit");
  commit();
  await p;
  assert.equal(stored, true);
});

Deno.test("a refused batch stays at the head and is emitted again, in order, not dropped", async () => {
  const emitted: number[] = [];
  let refuse = 3;
  const { q, counts } = queue((rs) => {
    if (refuse-- > 0) {
      return Promise.reject(Object.assign(new Error("full"), { name: "DiskFullError" }));
    }
    emitted.push(...rs.map((r) => r.value as number));
    return Promise.resolve(ok(rs));
  });
  await Promise.all([q.push([reading(1), reading(2)]), q.push([reading(3)])]);
  assert.deepEqual(emitted, [1, 2, 3]);
  assert.equal(counts.get("emit_failures"), 3);
  assert.ok((counts.get("disk_full") ?? 0) >= 3);
});

Deno.test("stopping gives up unstored readings: their promises reject, flush() returns", async () => {
  const { q, abort } = queue(() => Promise.reject(new Error("cannot write")));
  const p = q.push([reading(1)]);
  const rejected = assert.rejects(p, QueueStoppedError);
  await new Promise((r) => setTimeout(r, 10));
  abort.abort();
  await rejected;
  await q.flush();
  assert.equal(q.size, 0);
  await assert.rejects(q.push([reading(2)]), QueueStoppedError);
});

Deno.test("room() holds the source at the high-water mark until the queue drains below it", async () => {
  let commit!: () => void;
  const { q } = queue(async (rs) => {
    await new Promise<void>((r) => commit = r);
    return ok(rs);
  }, 3);
  const stored = q.push([reading(1), reading(2), reading(3)]);
  const wait = q.room();
  assert.ok(wait, "full at 3 readings");
  let free = false;
  wait.then(() => free = true);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(free, false);
  commit();
  await stored;
  await wait;
  assert.equal(q.room(), undefined);
});

Deno.test("readings a full buffer refused (retryFrom) stay at the head; those before are settled", async () => {
  const stored: number[] = [];
  let room = 2;
  const { q, counts } = queue((rs) => {
    // A buffer at its cap in reject-new mode: the first `room` are stored, the rest refused.
    const n = Math.min(room, rs.length);
    room = 0;
    stored.push(...rs.slice(0, n).map((r) => r.value as number));
    if (n === rs.length) return Promise.resolve(ok(rs));
    return Promise.resolve({ accepted: n, rejected: rs.length - n, seqs: [], retryFrom: n });
  });
  const settled: number[] = [];
  const first = q.push([reading(1), reading(2)]).then(() => settled.push(1));
  const second = q.push([reading(3)]).then(() => settled.push(3));
  await first;
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(settled, [1], "the refused message is not acknowledged");
  assert.ok((counts.get("buffer_full") ?? 0) >= 1);
  room = 10;
  await second;
  assert.deepEqual(stored, [1, 2, 3], "each reading stored once");
  assert.equal(counts.get("rejected"), undefined);
});
