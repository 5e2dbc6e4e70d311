import assert from "node:assert/strict";
import { Buffer } from "./buffer.ts";
import { exportReadings } from "./export.ts";
import { DatabaseSync } from "node:sqlite";
import { processOwner } from "./owner.ts";
import { Ctx, INVALID } from "../config/schema.ts";
import { type BufferConfig, bufferSchema } from "../config/gateway.ts";
import { createLogger, type LogRecord, silentLogger } from "../log.ts";
import type { Reading } from "../reading.ts";

const T0 = Date.UTC(2026, 10, 1);

function config(dir: string, over: Partial<BufferConfig> = {}): BufferConfig {
  const c = bufferSchema.check({ path: `${dir}/buffer.db` }, new Ctx(), []);
  if (c === INVALID) throw new Error("bad test config");
  return { ...c, ...over };
}

function readings(n: number, start = 0, device = (i: number) => `dev-${i % 3}`): Reading[] {
  return Array.from({ length: n }, (_, k) => {
    const i = start + k;
    return { device: device(i), metric: "m", value: i, unit: "u", ts: T0 + i };
  });
}

Deno.test("append() gives increasing sequence numbers that survive a restart", async () => {
  const dir = await Deno.makeTempDir();
  let b = Buffer.open(config(dir), { log: silentLogger() });
  const first = await b.append(readings(5));
  assert.deepEqual(first.seqs, [1, 2, 3, 4, 5]);
  b.close();
  b = Buffer.open(config(dir), { log: silentLogger() });
  const second = await b.append(readings(2, 5));
  assert.deepEqual(second.seqs, [6, 7]);
  assert.deepEqual(b.stats().pending, 7);
  b.close();
});

Deno.test("a buffer held by another running process is refused; once it is gone the file is taken over", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  let b = Buffer.open(config(dir), { log: silentLogger() });
  await b.append(readings(3));
  b.close();
  // Another process holds it, as a second gateway would (closing leaves no owner behind).
  const other = new Deno.Command("sleep", { args: ["60"] }).spawn();
  const setOwner = (value: string) => {
    const db = new DatabaseSync(path);
    db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('owner', ?)").run(value);
    db.close();
  };
  try {
    setOwner(JSON.stringify(processOwner(other.pid)));
    assert.throws(
      () => Buffer.open(config(dir), { log: silentLogger() }),
      new RegExp(`Cannot open buffer ".*": in use by process ${other.pid} \\(\\S*sleep 60\\)`),
    );
    // The same pid with another start time is a reused pid, not the holder.
    setOwner(JSON.stringify({ ...processOwner(other.pid), start: "1" }));
    Buffer.open(config(dir), { log: silentLogger() }).close();
    setOwner(JSON.stringify(processOwner(other.pid)));
  } finally {
    other.kill("SIGKILL");
    await other.status;
  }
  // Killed (SIGKILL, power cut): its row stays, but it no longer runs.
  b = Buffer.open(config(dir), { log: silentLogger() });
  assert.deepEqual((await b.append(readings(1, 3))).seqs, [4]);
  b.close();
});

Deno.test("append() groups concurrent callers into one commit and keeps types", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir, { commitInterval: 50 }), { log: silentLogger() });
  const [a, c] = await Promise.all([
    b.append([{ device: "d", metric: "on", value: true, ts: T0 }]),
    b.append([{ device: "d", metric: "label", value: "running", ts: T0 }, {
      device: "d",
      metric: "x",
      value: -1.5e-7,
      ts: T0,
    }]),
  ]);
  assert.deepEqual(a.seqs, [1]);
  assert.deepEqual(c.seqs, [2, 3]);
  const got = b.readPending(0, 10).readings.map((r) => r.value);
  assert.deepEqual(got, [true, "running", -1.5e-7]);
  b.close();
});

Deno.test("ack() removes ranges from pending, out of order too, and persists", async () => {
  const dir = await Deno.makeTempDir();
  let b = Buffer.open(config(dir), { log: silentLogger() });
  await b.append(readings(100));
  b.ack(51, 80);
  assert.deepEqual(b.stats().pending, 70);
  assert.deepEqual(b.readPending(0, 1000).readings.length, 70);
  b.ack(1, 50);
  assert.deepEqual(b.ackFloor, 80);
  assert.deepEqual(b.stats().pending, 20);
  b.ack(1, 50); // twice is harmless
  assert.deepEqual(b.stats().pending, 20);
  b.ack(91, 95);
  b.close();
  b = Buffer.open(config(dir), { log: silentLogger() });
  const left = b.readPending(0, 1000).readings.map((r) => r.seq);
  assert.deepEqual(left, [81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 96, 97, 98, 99, 100]);
  assert.deepEqual(b.stats().pending, 15);
  b.close();
});

Deno.test("readPending() pages with scannedTo across acknowledged holes", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir), { log: silentLogger() });
  await b.append(readings(30));
  b.ack(5, 20);
  const p1 = b.readPending(0, 3);
  assert.deepEqual(p1.readings.map((r) => r.seq), [1, 2, 3]);
  assert.deepEqual(p1.scannedTo, 3);
  const p2 = b.readPending(p1.scannedTo, 3);
  assert.deepEqual(p2.readings.map((r) => r.seq), [4, 21, 22]);
  const p3 = b.readPending(22, 100, 25);
  assert.deepEqual(p3.readings.map((r) => r.seq), [23, 24, 25]);
  assert.deepEqual(p3.scannedTo, 25);
  b.close();
});

Deno.test("row cap: forwarded rows go first, then the oldest unforwarded, counted exactly", async () => {
  const dir = await Deno.makeTempDir();
  const lines: LogRecord[] = [];
  const log = createLogger({ sink: () => {}, ringSize: 100 });
  const b = Buffer.open(config(dir, { maxRows: 1000, commitRows: 100 }), { log });
  await b.append(readings(1000));
  b.ack(1, 300);
  // 300 forwarded rows make room for 300 more without losing anything.
  await b.append(readings(300, 1000));
  let s = b.stats();
  assert.deepEqual(s.rows, 1000);
  assert.deepEqual(s.evictedForwarded, 300);
  assert.deepEqual(s.droppedUnforwarded, 0);
  // Now only unforwarded rows remain: 250 more drop the 250 oldest.
  await b.append(readings(250, 1300));
  s = b.stats();
  assert.deepEqual(s.rows, 1000);
  assert.deepEqual(s.droppedUnforwarded, 250);
  const seqs = b.readPending(0, 5000).readings.map((r) => r.seq);
  assert.deepEqual(seqs.length, 1000);
  assert.deepEqual(seqs[0], 551);
  assert.deepEqual(seqs.at(-1), 1550);
  assert.deepEqual(b.query({ afterSeq: 1540 }).map((r) => r.value), [
    1540,
    1541,
    1542,
    1543,
    1544,
    1545,
    1546,
    1547,
    1548,
    1549,
  ]);
  lines.push(...log.recent());
  const warnings = lines.filter((l) => l.msg.includes("cap"));
  assert.deepEqual(warnings.length, 1, "the episode is logged once");
  b.close();
});

Deno.test("reject-new: readings beyond the cap are refused and counted; stored ones untouched", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir, { maxRows: 1000, overflow: "reject-new" }), {
    log: silentLogger(),
  });
  await b.append(readings(990));
  const r = await b.append(readings(25, 990));
  assert.deepEqual(r.seqs.length, 10);
  assert.deepEqual(r.rejected, 15);
  const s = b.stats();
  assert.deepEqual(s.rejectedFull, 15);
  assert.deepEqual(s.rows, 1000);
  assert.deepEqual(s.droppedUnforwarded, 0);
  assert.deepEqual(b.readPending(0, 1)[`readings`][0].seq, 1);
  b.close();
});

Deno.test("byte cap keeps the database under maxBytes by dropping the oldest", async () => {
  const dir = await Deno.makeTempDir();
  const maxBytes = 2 * 1024 * 1024;
  const b = Buffer.open(config(dir, { maxBytes, commitRows: 5000 }), { log: silentLogger() });
  for (let i = 0; i < 40; i++) await b.append(readings(5000, i * 5000));
  const s = b.stats();
  assert.ok(s.bytes <= maxBytes * 1.05, `bytes ${s.bytes} over cap ${maxBytes}`);
  assert.ok(s.droppedUnforwarded > 0);
  assert.deepEqual(
    s.rows + s.droppedUnforwarded,
    200_000,
    "every reading is either stored or counted",
  );
  assert.deepEqual(b.lastSeq, 200_000);
  b.close();
});

Deno.test("low disk space acts as a cap", async () => {
  const dir = await Deno.makeTempDir();
  let free = 10 * 1024 ** 3;
  let now = T0;
  const b = Buffer.open(config(dir, { minFreeDisk: 1024 ** 3 }), {
    log: silentLogger(),
    freeDisk: () => free,
    now: () => now,
  });
  await b.append(readings(20_000));
  free = 100 * 1024 ** 2;
  now += 5000;
  for (let i = 1; i <= 10; i++) await b.append(readings(20_000, i * 20_000));
  const s = b.stats();
  assert.deepEqual(s.atCap, "disk");
  assert.ok(s.droppedUnforwarded > 0);
  assert.deepEqual(s.rows + s.droppedUnforwarded, 220_000);
  b.close();
});

Deno.test("minFreeDisk is checked at every commit, not every few seconds", async () => {
  const dir = await Deno.makeTempDir();
  let free = 10 * 1024 ** 3;
  const b = Buffer.open(config(dir, { minFreeDisk: 1024 ** 3, reserve: 0 }), {
    log: silentLogger(),
    freeDisk: () => free,
    now: () => T0,
  });
  await b.append(readings(5000));
  assert.equal(b.stats().atCap, null);
  // The same instant: a check throttled by the clock would not see the disk go low.
  free = 100 * 1024 ** 2;
  await b.append(readings(5000, 5000));
  const s = b.stats();
  assert.equal(s.atCap, "disk");
  assert.ok(s.droppedUnforwarded > 0);
  assert.equal(s.freeDisk, free);
  b.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corrupt buffer file is moved aside and a fresh one starts", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  const b = Buffer.open(config(dir), { log: silentLogger() });
  await b.append(readings(2000));
  b.close();
  // Overwrite pages in the middle of the file with garbage.
  const f = await Deno.open(path, { write: true });
  await f.seek(4096 * 2, Deno.SeekMode.Start);
  await f.write(new Uint8Array(4096 * 3).fill(0xa5));
  f.close();
  const log = createLogger({ sink: () => {} });
  const fresh = Buffer.open(config(dir), { log });
  const s = fresh.stats();
  assert.deepEqual(s.rows, 0);
  assert.deepEqual(s.quarantined.length, 1);
  assert.match(s.quarantined[0], /buffer\.db\.corrupt-/);
  Deno.statSync(s.quarantined[0]);
  assert.deepEqual((await fresh.append(readings(1))).seqs, [1]);
  assert.ok(log.recent().some((l) => l.level === "error" && /CORRUPT/.test(l.msg)));
  fresh.close();
});

Deno.test("a file that is not a database is moved aside too", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/buffer.db`, "this is not sqlite ".repeat(500));
  const b = Buffer.open(config(dir), { log: silentLogger() });
  assert.deepEqual(b.stats().quarantined.length, 1);
  b.close();
});

Deno.test("prune() deletes forwarded readings past retention, never unforwarded ones", async () => {
  const dir = await Deno.makeTempDir();
  let now = T0 + 40 * 86_400_000;
  const b = Buffer.open(config(dir, { retention: 30 * 86_400_000 }), {
    log: silentLogger(),
    now: () => now,
  });
  const old = readings(100).map((r, i) => ({ ...r, ts: T0 + i }));
  const recent = readings(100, 100).map((r, i) => ({ ...r, ts: now - 1000 + i }));
  await b.append(old);
  await b.append(recent);
  await b.append(readings(50, 200).map((r) => ({ ...r, ts: T0 })));
  b.ack(1, 200);
  assert.deepEqual(b.prune(), 100);
  const s = b.stats();
  assert.deepEqual(s.rows, 150);
  assert.deepEqual(s.pending, 50, "old but unforwarded readings stay");
  now += 1;
  b.close();
});

Deno.test("query() and exportReadings() select by device and time range", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir), { log: silentLogger() });
  await b.append(readings(300));
  b.ack(1, 100); // seq 1..100 hold ts T0+0..T0+99
  const q = b.query({ device: "dev-1", from: T0 + 10, to: T0 + 20 });
  assert.deepEqual(q.map((r) => r.ts - T0), [10, 13, 16, 19]);
  b.close();
  const rows = [
    ...exportReadings(`${dir}/buffer.db`, { device: "dev-1", from: T0 + 97, to: T0 + 104 }),
  ];
  assert.deepEqual(rows.map((r) => [r.ts - T0, r.forwarded]), [[97, true], [100, false], [
    103,
    false,
  ]]);
});

Deno.test("append(forward: false) stores readings for query and export, never as pending, across restarts", async () => {
  const dir = await Deno.makeTempDir();
  let b = Buffer.open(config(dir, { commitInterval: 50 }), { log: silentLogger() });
  const [fwd, local] = await Promise.all([
    b.append(readings(10)),
    b.append(readings(5, 10), { forward: false }),
  ]);
  assert.deepEqual(fwd.seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(local.seqs, [11, 12, 13, 14, 15], "one sequence for both kinds");
  await b.append(readings(5, 15));
  let s = b.stats();
  assert.deepEqual([s.rows, s.pending, s.localOnly], [20, 15, 5]);
  const pending = b.readPending(0, 100);
  assert.deepEqual(
    pending.readings.map((r) => r.seq),
    [...Array(10).keys(), 15, 16, 17, 18, 19]
      .map((i) => i + 1),
  );
  assert.deepEqual(pending.scannedTo, 20);
  b.ack(1, 10);
  assert.deepEqual(b.query({ afterSeq: 8, limit: 5 }).map((r) => r.seq), [9, 10, 11, 12, 13]);
  assert.deepEqual(b.query({ device: "dev-1", from: T0 + 10 }).map((r) => r.value), [
    10,
    13,
    16,
    19,
  ]);
  b.close();

  b = Buffer.open(config(dir), { log: silentLogger() });
  s = b.stats();
  assert.deepEqual([s.rows, s.pending, s.localOnly, s.nextSeq], [20, 5, 5, 21]);
  const left = b.readPending(b.ackFloor, 100);
  assert.deepEqual(left.readings.map((r) => r.seq), [16, 17, 18, 19, 20]);
  b.ack(b.ackFloor + 1, left.scannedTo); // as the forwarder does: the whole span it read
  assert.deepEqual([b.pending, b.ackFloor], [0, 20], "the floor moves across local-only seqs");
  assert.deepEqual((await b.append(readings(1, 20), { forward: false })).seqs, [21]);
  b.close();
  b = Buffer.open(config(dir), { log: silentLogger() });
  assert.deepEqual(b.lastSeq, 21, "the next seq survives even when the newest row is local-only");
  assert.deepEqual(b.readPending(0, 100).readings, []);
  b.close();

  const rows = [...exportReadings(`${dir}/buffer.db`, { device: "dev-2" })];
  assert.deepEqual(rows.map((r) => [r.seq, r.forwarded, r.local ?? false]), [
    [3, true, false],
    [6, true, false],
    [9, true, false],
    [12, false, true],
    [15, false, true],
    [18, true, false],
    [21, false, true],
  ]);
});

Deno.test("row cap: local-only rows go with forwarded ones, oldest first, before any unforwarded", async () => {
  const dir = await Deno.makeTempDir();
  const b = Buffer.open(config(dir, { maxRows: 100, commitRows: 1000 }), { log: silentLogger() });
  await b.append(readings(10), { forward: false }); // 1-10 local
  await b.append(readings(10, 10)); // 11-20, forwarded below
  await b.append(readings(20, 20), { forward: false }); // 21-40 local
  await b.append(readings(60, 40)); // 41-100 pending
  b.ack(11, 20);
  // 25 more: the 25 oldest rows that need no forwarding are 1-10 (local), 11-20, 21-25 (local).
  await b.append(readings(25, 100));
  let s = b.stats();
  assert.deepEqual(
    [s.rows, s.evictedLocal, s.evictedForwarded, s.droppedUnforwarded, s.localOnly, s.pending],
    [100, 15, 10, 0, 15, 85],
  );
  assert.deepEqual(b.query({ limit: 1 })[0].seq, 26);
  // 20 more: 15 local rows left, then the 5 oldest unforwarded go (and are counted as lost).
  await b.append(readings(20, 125));
  s = b.stats();
  assert.deepEqual(
    [s.rows, s.evictedLocal, s.evictedForwarded, s.droppedUnforwarded, s.localOnly, s.pending],
    [100, 30, 10, 5, 0, 100],
  );
  assert.deepEqual(b.readPending(0, 1).readings[0].seq, 46);
  b.close();
});

Deno.test("prune() deletes local-only readings past retention too", async () => {
  const dir = await Deno.makeTempDir();
  const now = T0 + 40 * 86_400_000;
  const b = Buffer.open(config(dir, { retention: 30 * 86_400_000 }), {
    log: silentLogger(),
    now: () => now,
  });
  await b.append(readings(30), { forward: false });
  await b.append(readings(20, 30).map((r) => ({ ...r, ts: now - 1000 })), { forward: false });
  assert.deepEqual(b.prune(), 30);
  const s = b.stats();
  assert.deepEqual([s.rows, s.localOnly, s.pruned, s.pending], [20, 20, 30, 0]);
  b.close();
});
