/**
 * Fault injection: a buffer on a small real tmpfs, driven through appends (with new series), acks,
 * evictions at the row cap, drops of the oldest and retention pruning while a filler file leaves
 * it 0 bytes to a few pages of room, so commits hit SQLITE_FULL at every kind of step. After each
 * operation the buffer's memory must equal a fresh count of the file; after a restart every
 * accepted reading must go upstream under its own device.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  Buffer,
  BufferError,
  type BufferOptions,
  DiskFullError,
  type FaultStep,
} from "./buffer.ts";
import { Ctx, INVALID } from "../config/schema.ts";
import { type BufferConfig, bufferSchema } from "../config/gateway.ts";
import { silentLogger } from "../log.ts";
import { mulberry32 } from "../rng.ts";
import { Forwarder } from "../forwarder.ts";
import type { Reading, StoredReading } from "../reading.ts";
import type { OutMessage, Uplink, UplinkState } from "../uplink/uplink.ts";
import { canMount, fillTo, mountTmpfs, unmount } from "../../test/helpers/tmpfs.ts";

const T0 = Date.UTC(2026, 10, 1);

function config(dir: string, over: Partial<BufferConfig> = {}): BufferConfig {
  const c = bufferSchema.check({ path: `${dir}/buffer.db` }, new Ctx(), []);
  if (c === INVALID) throw new Error("bad test config");
  return { ...c, ...over };
}

/** An in-process uplink that confirms every message at once and keeps what it got. */
export class StubUplink implements Uplink {
  readonly type = "stub";
  readonly maxInflight = 4;
  connected = true;
  readonly got: StoredReading[] = [];
  encode(readings: StoredReading[]): OutMessage[] {
    const out: OutMessage[] = [];
    for (let i = 0; i < readings.length; i += 100) {
      const part = readings.slice(i, i + 100);
      out.push({
        topic: "t",
        payload: JSON.stringify(part),
        first: part[0].seq,
        last: part[part.length - 1].seq,
        count: part.length,
      });
    }
    return out;
  }
  send(m: OutMessage): Promise<void> {
    this.got.push(...JSON.parse(m.payload));
    return Promise.resolve();
  }
  state(): UplinkState {
    return {
      type: "stub",
      target: "stub",
      connected: true,
      since: 0,
      lastError: null,
      acked: 0,
      failed: 0,
      inflight: 0,
    };
  }
  onStateChange(): () => void {
    return () => {};
  }
  start(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** What the test knows independently of the buffer. */
interface Model {
  /** uid (the reading's value) → device it was sent as. */
  device: Map<number, string>;
  /** seq → uid for every accepted reading. */
  uid: Map<number, number>;
  /** Sequence ranges this test acknowledged. */
  acked: [number, number][];
}

function ackedByTest(m: Model, seq: number): boolean {
  return m.acked.some(([lo, hi]) => seq >= lo && seq <= hi);
}

/** Memory equals the file: rows, pending, counters, next seq, floor and series. */
function assertMatchesFile(b: Buffer, path: string, m: Model, where: string): void {
  const s = b.stats();
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const one = (sql: string) => Number(Object.values(db.prepare(sql).get()!)[0]);
    const rows = one("SELECT count(*) FROM readings") + one("SELECT count(*) FROM local_readings");
    assert.equal(s.rows, rows, `${where}: rows in memory ${s.rows}, in the file ${rows}`);
    const seqs = (db.prepare("SELECT seq FROM readings").all() as { seq: number }[]).map((r) =>
      Number(r.seq)
    );
    const pending = seqs.filter((q) => !b.isForwarded(q)).length;
    assert.equal(
      s.pending,
      pending,
      `${where}: pending in memory ${s.pending}, in the file ${pending}`,
    );
    const skipped = seqs.filter((q) => b.isForwarded(q) && !ackedByTest(m, q));
    assert.deepEqual(skipped, [], `${where}: rows in the file the buffer calls forwarded`);
    const meta = new Map(
      (db.prepare("SELECT key, value FROM meta").all() as { key: string; value: unknown }[])
        .map((r) => [r.key, r.value]),
    );
    for (const c of ["droppedUnforwarded", "evictedForwarded", "rejectedFull", "pruned"] as const) {
      assert.equal(s[c], Number(meta.get(c) ?? 0), `${where}: ${c} in memory vs the file`);
    }
    assert.equal(s.nextSeq, Number(meta.get("next_seq") ?? 1), `${where}: next seq`);
    assert.equal(b.seriesCount, one("SELECT count(*) FROM series"), `${where}: series count`);
    const joined = db.prepare(
      "SELECT r.seq, r.value, s.device FROM readings r LEFT JOIN series s ON s.id = r.sid",
    ).all() as { seq: number; value: number; device: string | null }[];
    for (const r of joined) {
      assert.equal(
        r.device,
        m.device.get(Number(r.value)),
        `${where}: seq ${r.seq} stored under the wrong series`,
      );
    }
    for (const r of b.query({ limit: 1_000_000 })) {
      assert.equal(r.device, m.device.get(Number(r.value)), `${where}: query seq ${r.seq}`);
    }
    // Every accepted reading is stored, or counted as gone.
    assert.equal(
      s.rows + s.evictedForwarded + s.droppedUnforwarded + s.pruned,
      m.uid.size,
      `${where}: stored + evicted + dropped + pruned ≠ accepted`,
    );
  } finally {
    db.close();
  }
}

/** A seeded run of appends, acks, prunes and restarts, checking memory against the file each time. */
class Driver {
  readonly m: Model = { device: new Map(), uid: new Map(), acked: [] };
  now = T0;
  b: Buffer;
  #uid = 0;
  #devices = 1;
  readonly #rnd: () => number;
  readonly #opts: BufferOptions;

  constructor(readonly cfg: BufferConfig, seed: number, fault?: (step: FaultStep) => void) {
    this.#rnd = mulberry32(seed);
    this.#opts = { log: silentLogger(), now: () => this.now, fault };
    this.b = Buffer.open(cfg, this.#opts);
  }

  async step(where: string): Promise<void> {
    const rnd = this.#rnd;
    const m = this.m;
    // Past the one-second refusal after a failed commit: every append really commits.
    this.now += 1001;
    const op = rnd();
    let what = "";
    if (op < 0.55) {
      const n = 1 + Math.floor(rnd() * 400);
      what = `append ${n}`;
      const batch: Reading[] = [];
      for (let i = 0; i < n; i++) {
        if (rnd() < 0.003) this.#devices++;
        const device = `dev-${Math.floor(rnd() * this.#devices)}`;
        m.device.set(++this.#uid, device);
        batch.push({ device, metric: "m", value: this.#uid, ts: this.now });
      }
      const p = this.b.append(batch);
      this.b.flush();
      try {
        const res = await p;
        res.seqs.forEach((seq, i) => m.uid.set(seq, batch[i].value as number));
      } catch (e) {
        assert.ok(e instanceof BufferError, String(e));
      }
    } else if (op < 0.8) {
      const s = this.b.stats();
      const lo = s.ackFloor + 1 + Math.floor(rnd() * Math.max(1, s.nextSeq - s.ackFloor));
      const hi = Math.min(s.nextSeq - 1, lo + Math.floor(rnd() * 500));
      what = `ack ${lo}-${hi}`;
      if (hi >= lo) {
        this.b.ack(lo, hi);
        m.acked.push([lo, hi]);
      }
      this.b.flush();
    } else if (op < 0.95) {
      this.now += Math.floor(rnd() * 40_000);
      what = "prune";
      try {
        this.b.prune();
      } catch { /* counted in commitFailures */ }
    } else {
      what = "restart";
      this.b.close();
      this.b = Buffer.open(this.cfg, this.#opts);
    }
    assertMatchesFile(this.b, this.cfg.path, m, `${where} (${what})`);
  }

  /** Restarts, forwards everything, and checks each reading went up once under its device. */
  async forwardAll(): Promise<void> {
    const m = this.m;
    this.b.close();
    this.b = Buffer.open(this.cfg, { ...this.#opts, fault: undefined });
    const b = this.b;
    assertMatchesFile(b, this.cfg.path, m, "after restart");
    const uplink = new StubUplink();
    const fwd = new Forwarder({ buffer: b, uplink, log: silentLogger() });
    fwd.start();
    await fwd.idle();
    fwd.stop();
    for (const r of uplink.got) {
      assert.equal(r.device, m.device.get(Number(r.value)), `seq ${r.seq} sent as another device`);
      assert.equal(m.uid.get(r.seq), Number(r.value), `seq ${r.seq} carries another reading`);
    }
    const got = new Set(uplink.got.map((r) => r.seq));
    const missing = [...m.uid.keys()].filter((q) => !ackedByTest(m, q) && !got.has(q));
    assert.equal(missing.length, b.stats().droppedUnforwarded, "unsent readings ≠ dropped count");
    assert.ok(got.size > 0, JSON.stringify(b.stats()));
    b.close();
  }
}

Deno.test({
  name:
    "SQLITE_FULL from a really full tmpfs in append, ack, evict, drop, prune and series insert leaves memory equal to the file; after a restart every reading goes upstream under its own device",
  ignore: !canMount,
  async fn() {
    const mnt = await Deno.makeTempDir();
    await mountTmpfs(mnt, 3 * 1024 * 1024);
    const filler = `${mnt}/filler`;
    try {
      const seed = Number(Deno.env.get("FAULT_SEED") ?? 7);
      const cfg = config(mnt, {
        maxRows: 3000,
        minFreeDisk: 0,
        reserve: 64 * 1024,
        retention: 60_000,
        commitRows: 100_000,
        integrityCheck: false,
      });
      const d = new Driver(cfg, seed);
      const rnd = mulberry32(seed + 1);
      const leaves = [0, 0, 4096, 8192, 16384, 32768, 65536, 262_144, 1 << 20];
      let failures = 0;
      for (let step = 0; step < 600; step++) {
        fillTo(filler, leaves[Math.floor(rnd() * leaves.length)]);
        const before = d.b.stats().commitFailures;
        await d.step(`step ${step} (seed ${seed})`);
        failures += Math.max(0, d.b.stats().commitFailures - before);
      }
      assert.ok(failures > 50, `only ${failures} commits failed: the disk was never full`);
      Deno.removeSync(filler);
      await d.forwardAll();
    } finally {
      await unmount(mnt);
      await Deno.remove(mnt);
    }
  },
});

Deno.test("a failure at each step of a write transaction (series, insert, evict, drop, meta, acks, prune, commit) leaves memory equal to the file", async () => {
  const steps: FaultStep[] = [
    "series",
    "insert",
    "evict",
    "drop",
    "meta",
    "acks",
    "prune",
    "commit",
  ];
  for (const target of steps) {
    const dir = await Deno.makeTempDir();
    const chance = mulberry32(99);
    let hits = 0;
    const d = new Driver(
      config(dir, { maxRows: 3000, retention: 60_000, commitRows: 100_000, reserve: 0 }),
      steps.indexOf(target) + 1,
      (step) => {
        // About one time in seven the step comes up, it fails the way a full disk does.
        if (step === target && chance() < 0.15) {
          hits++;
          throw Object.assign(new Error("database or disk is full"), { errcode: 13 });
        }
      },
    );
    for (let i = 0; i < 160; i++) await d.step(`${target} #${i}`);
    assert.ok(hits >= 3, `step "${target}" failed only ${hits} times`);
    await d.forwardAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "open() on a full disk comes up reporting it, refuses readings with DiskFullError, and takes them once space returns",
  ignore: !canMount,
  async fn() {
    const mnt = await Deno.makeTempDir();
    await mountTmpfs(mnt, 4 * 1024 * 1024);
    const filler = `${mnt}/filler`;
    try {
      let now = T0;
      const cfg = config(mnt, { minFreeDisk: 0, reserve: 256 * 1024, integrityCheck: false });
      const opts = { log: silentLogger(), now: () => now };
      const batch = (n: number) =>
        Array.from({ length: n }, (_, i) => ({ device: "d", metric: "m", value: i, ts: now }));
      let b = Buffer.open(cfg, opts);
      assert.equal(b.stats().reserve, "ready");
      await b.append(batch(100));
      b.close();
      fillTo(filler, 0);
      b = Buffer.open(cfg, opts);
      fillTo(filler, 0);
      assert.ok(b.stats().diskFull, "starts in the disk-full state");
      const refused = b.append(batch(10));
      b.flush();
      await assert.rejects(refused, DiskFullError);
      now += 1001;
      const tried = b.append(batch(5000));
      b.flush();
      await assert.rejects(tried, DiskFullError);
      assert.equal(b.stats().rows, 100);
      Deno.removeSync(filler);
      now += 1001;
      const ok = b.append(batch(10));
      b.flush();
      assert.equal((await ok).seqs.length, 10);
      assert.equal(b.stats().diskFull, null);
      assert.equal(b.stats().rows, 110);
      b.close();
      b = Buffer.open(cfg, opts);
      assert.equal(b.stats().rows, 110);
      b.close();
    } finally {
      await unmount(mnt);
      await Deno.remove(mnt);
    }
  },
});
