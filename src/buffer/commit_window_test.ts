import assert from "node:assert/strict";
import { Buffer, WIDE_COMMIT_ROWS } from "./buffer.ts";
import { Ctx, INVALID } from "../config/schema.ts";
import { type BufferConfig, bufferSchema } from "../config/gateway.ts";
import { silentLogger } from "../log.ts";
import type { Reading } from "../reading.ts";

function config(dir: string, over: Record<string, unknown> = {}): BufferConfig {
  const c = bufferSchema.check({ path: `${dir}/buffer.db`, ...over }, new Ctx(), []);
  if (c === INVALID) throw new Error("bad test config");
  return c;
}

function reading(i: number): Reading {
  return { device: `dev-${i % 50}`, metric: "t", value: i, unit: "C", ts: Date.now() };
}

/** Appends one reading every `gapMs`, `n` times; returns the commits and the slowest append. */
async function trickle(b: Buffer, n: number, gapMs: number, coalesce = true) {
  const before = b.stats().commits;
  const waits: Promise<number>[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    waits.push(b.append([reading(i)], { coalesce }).then(() => performance.now() - t));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  const slowest = Math.max(...await Promise.all(waits));
  return { commits: b.stats().commits - before, slowest };
}

Deno.test("single readings trickling in share commits: 30 over ~1 s take at most 3 commits, none waits past the window", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir), { log: silentLogger() });
  try {
    await b.append([reading(0)]);
    const { commits, slowest } = await trickle(b, 30, 33);
    assert.ok(commits <= 3, `30 single readings took ${commits} commits`);
    assert.ok(slowest <= 1000 + 150, `an append waited ${Math.round(slowest)} ms`);
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("commitWindow: 20ms commits each trickled reading on its own (the old behaviour)", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir, { commitWindow: 20 }), { log: silentLogger() });
  try {
    const { commits } = await trickle(b, 30, 33);
    assert.ok(commits >= 25, `expected a commit per reading, got ${commits}`);
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("appends without coalesce (pollers) commit after commitInterval, not the window", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir), { log: silentLogger() });
  try {
    await b.append([reading(0)]);
    const t = performance.now();
    await b.append([reading(1)]);
    assert.ok(performance.now() - t < 500, `poller append waited ${performance.now() - t} ms`);
    const { commits } = await trickle(b, 10, 33, false);
    assert.ok(commits >= 8, `expected a commit per poll, got ${commits}`);
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a reading after a quiet spell and a batch of 32 or more commit after commitInterval, not the window", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir, { commitInterval: 20, commitWindow: 1000 }), {
    log: silentLogger(),
  });
  try {
    // Nothing committed for longer than the window: no reason to wait.
    const t = performance.now();
    await b.append([reading(0)]);
    assert.ok(performance.now() - t < 500, `lone reading waited ${performance.now() - t} ms`);
    // Right after a commit, enough readings to be worth a commit go at once too.
    const t2 = performance.now();
    await b.append(Array.from({ length: WIDE_COMMIT_ROWS }, (_, i) => reading(i)));
    assert.ok(performance.now() - t2 < 500, `batch waited ${performance.now() - t2} ms`);
    // A single reading right after a commit waits for the window instead.
    const t3 = performance.now();
    await b.append([reading(1)], { coalesce: true });
    assert.ok(
      performance.now() - t3 >= 500,
      `single reading committed after ${performance.now() - t3} ms`,
    );
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acknowledgements ride along with the next commit of readings instead of a commit of their own", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir), { log: silentLogger() });
  try {
    await b.append([reading(0)]);
    const before = b.stats().commits;
    for (let k = 0; k < 3; k++) {
      const res = await Promise.all(
        Array.from({ length: 10 }, (_, i) => b.append([reading(i)], { coalesce: true })),
      );
      const seqs = res.flatMap((r) => r.seqs);
      b.ack(1, seqs[seqs.length - 1]);
    }
    // Three windows of readings, three commits: none for the acknowledgements in between.
    assert.equal(b.stats().commits - before, 3);
    b.close();
    const again = Buffer.open(config(dir), { log: silentLogger() });
    // The last acknowledgement is written at close; the others went with the commits.
    assert.equal(again.stats().pending, 0);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("new buffer files use 2 KB pages: a commit of a few readings writes about two of them", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir, { commitWindow: 1 }), { log: silentLogger() });
  try {
    await b.append([reading(0)]);
    const wal = () => Deno.statSync(`${dir}/buffer.db-wal`).size;
    const before = wal();
    // Same series (dev-0): no new row in `series`.
    await b.append([reading(50)]);
    // WAL frames: a 24-byte header and one page each.
    const frames = (wal() - before) / (2048 + 24);
    assert.equal(frames, Math.round(frames), "WAL frames are not 2 KB pages");
    assert.ok(frames <= 3, `one reading wrote ${frames} pages`);
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});
