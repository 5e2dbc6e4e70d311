import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Buffer } from "./buffer.ts";
import { countReadings, exportReadings } from "./export.ts";
import { buildChunk, CHUNK_ROWS, ChunkRecorder, SERIES_INDEX_SQL } from "./series_index.ts";
import { mulberry32 } from "../rng.ts";
import { Ctx, INVALID } from "../config/schema.ts";
import { bufferSchema } from "../config/gateway.ts";
import { silentLogger } from "../log.ts";
import type { Reading } from "../reading.ts";
import { waitFor } from "../../test/helpers/ports.ts";

const T0 = Date.UTC(2026, 10, 1);

function readings(n: number, start: number): Reading[] {
  return Array.from({ length: n }, (_, k) => {
    const i = start + k;
    return { device: `dev-${i % 50}`, metric: i % 2 ? "a" : "b", value: i, ts: T0 + i * 10 };
  });
}

/** A buffer at `path` committing up to 10,000 rows at once. */
function openBuffer(path: string): Buffer {
  const c = bufferSchema.check({ path, commitRows: 10_000 }, new Ctx(), []);
  if (c === INVALID) throw new Error("bad config");
  return Buffer.open(c, { log: silentLogger() });
}

/**
 * {@linkcode openBuffer} with `total` {@linkcode readings} and one local-only reading of dev-7
 * (past the last chunk: found by the scan of the tail), once two chunks are indexed.
 */
async function seededBuffer(path: string, total: number): Promise<Buffer> {
  const b = openBuffer(path);
  for (let i = 0; i < total; i += 10_000) {
    await b.append(readings(Math.min(10_000, total - i), i));
  }
  await b.append([{ device: "dev-7", metric: "raw", value: 1, ts: T0 + 5 }], { forward: false });
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    await waitFor(
      "two chunks indexed",
      () => Number((db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number }).n) === 2,
    );
  } finally {
    db.close();
  }
  return b;
}

Deno.test("query() and exportReadings() of one device use the series index and match a full scan", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  const total = Math.round(CHUNK_ROWS * 2.5);
  const b = await seededBuffer(path, total);
  try {
    // Expected by brute force over what was appended.
    const want = readings(total, 0).map((r, i) => ({ ...r, seq: i + 1 }))
      .filter((r) => r.device === "dev-7");
    const got = [];
    for (let after = 0;;) {
      const page = b.query({ device: "dev-7", afterSeq: after, limit: 777 });
      if (page.length === 0) break;
      got.push(...page);
      after = page[page.length - 1].seq;
    }
    assert.equal(got.length, want.length + 1);
    assert.deepEqual(
      got.filter((r) => r.metric !== "raw").map((r) => [r.seq, r.value, r.ts]),
      want.map((r) => [r.seq, r.value, r.ts]),
    );
    assert.ok(got.some((r) => r.metric === "raw"), "local-only reading found");
    // A time range and a metric: only rows inside it, in sequence order.
    const from = T0 + 60_000 * 10;
    const to = T0 + 110_000 * 10;
    const ranged = b.query({ device: "dev-7", metric: "a", from, to, limit: 100_000 });
    assert.deepEqual(
      ranged.map((r) => r.seq),
      want.filter((r) => r.metric === "a" && r.ts >= from && r.ts < to).map((r) => r.seq),
    );
    const exported = [...exportReadings(path, { device: "dev-7" })];
    assert.deepEqual(exported.map((r) => r.seq), got.map((r) => r.seq));
    assert.equal(exported.find((r) => r.metric === "raw")?.local, true);
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file indexed in the one-row-per-reading layout is indexed again by series lists on open", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  let b = openBuffer(path);
  try {
    const total = CHUNK_ROWS + 10_000;
    for (let i = 0; i < total; i += 10_000) await b.append(readings(10_000, i));
    b.close();
    // The earlier layout: one (chunk, sid, seq) row per reading.
    const old = new DatabaseSync(path);
    old.exec(`DROP TABLE IF EXISTS chunk_sids; DELETE FROM chunks;
CREATE TABLE IF NOT EXISTS chunk_series(
  chunk INTEGER NOT NULL, sid INTEGER NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY(chunk, sid, seq)) STRICT, WITHOUT ROWID;
INSERT INTO chunk_series SELECT 0, sid, seq FROM readings WHERE seq <= ${CHUNK_ROWS};
INSERT INTO chunks VALUES (0, ${CHUNK_ROWS}, ${T0}, ${T0 + CHUNK_ROWS * 10});`);
    old.close();
    b = openBuffer(path);
    // Indexing follows commits: the next one indexes the whole chunks behind it.
    await b.append([{ device: "dev-0", metric: "a", value: 0, ts: T0 }]);
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const has = (t: string) =>
        db.prepare("SELECT 1 FROM sqlite_master WHERE name = ?").get(t) !== undefined;
      assert.equal(has("chunk_series"), false, "old layout dropped");
      await waitFor(
        "chunk indexed again",
        () =>
          Number((db.prepare("SELECT count(*) AS n FROM chunk_sids").get() as { n: number }).n) >
            0,
      );
      // One row per series and chunk (50 series: a device always has the same metric here).
      assert.equal(
        Number((db.prepare("SELECT count(*) AS n FROM chunk_sids").get() as { n: number }).n),
        50,
      );
    } finally {
      db.close();
    }
    const want = readings(total, 0).map((r, i) => ({ ...r, seq: i + 1 }))
      .filter((r) => r.device === "dev-3");
    assert.equal(want.length, total / 50);
    const got = b.query({ device: "dev-3", limit: 100_000 });
    assert.deepEqual(got.map((r) => r.seq), want.map((r) => r.seq));
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the index stays small next to the readings with many series (no overflow page per entry)", async () => {
  // 500 series, so a chunk holds 100 sequence numbers per series: entries of ~600 bytes, past
  // the size at which a WITHOUT ROWID row on a 2 KB page spills into an overflow page of its own.
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  const b = openBuffer(path);
  try {
    const total = CHUNK_ROWS * 2 + 1;
    for (let i = 0; i < total; i += 10_000) {
      const n = Math.min(10_000, total - i);
      await b.append(Array.from({ length: n }, (_, k) => {
        const j = i + k;
        return {
          device: `dev-${j % 500}`,
          metric: "a",
          value: j,
          ts: T0 + j,
        };
      }));
    }
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      await waitFor(
        "two chunks indexed",
        () =>
          Number((db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number }).n) === 2,
      );
      const size = (names: string) =>
        Number(
          (db.prepare(`SELECT sum(pgsize) AS b FROM dbstat WHERE name IN (${names})`).get() as {
            b: number;
          }).b,
        );
      const index = size("'chunk_sids', 'sqlite_autoindex_chunk_sids_1'");
      const rows = size("'readings'");
      assert.ok(
        index <= rows * 0.4,
        `index ${index} B is ${(index / rows * 100).toFixed(0)} % of the readings' ${rows} B`,
      );
    } finally {
      db.close();
    }
    const got = b.query({ device: "dev-7", limit: 100_000 });
    assert.equal(got.length, Math.ceil(total / 500) - (total % 500 <= 7 ? 1 : 0));
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("count() and countReadings() give the number of rows query() and exportReadings() yield", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  const total = Math.round(CHUNK_ROWS * 2.3);
  const b = await seededBuffer(path, total);
  try {
    b.flush();
    const filters = [
      {},
      { device: "dev-7" },
      { device: "dev-7", metric: "a" },
      { device: "dev-8", from: T0 + 123_457, to: T0 + 1_000_003 },
      { metric: "b", from: T0 + 400_000 },
      { device: "dev-7", from: T0 + CHUNK_ROWS * 10 - 5 },
      { device: "nobody" },
    ];
    for (const f of filters) {
      const rows = [...exportReadings(path, f)].length;
      assert.equal(b.count(f), rows, JSON.stringify(f));
      assert.equal(countReadings(path, f), rows, JSON.stringify(f));
    }
    assert.equal(
      b.count({ device: "dev-7", afterSeq: 60_001 }),
      b.query({ device: "dev-7", afterSeq: 60_001, limit: 1e6 }).length,
    );
  } finally {
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

function indexRows(db: DatabaseSync, lo: number): unknown[] {
  return [
    ...db.prepare(
      "SELECT sid, local, ts_min, ts_max, seqs FROM chunk_sids WHERE chunk = ? ORDER BY sid, local",
    ).all(lo),
    db.prepare("SELECT lo, hi, ts_min, ts_max FROM chunks WHERE lo = ?").get(lo),
  ];
}

Deno.test("a chunk indexed from the rows its commits recorded equals one built by a scan", () => {
  const db = new DatabaseSync(":memory:");
  db.exec(SERIES_INDEX_SQL);
  for (const t of ["readings", "local_readings"]) {
    db.exec(
      `CREATE TABLE ${t}(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid INTEGER NOT NULL, value ANY) STRICT`,
    );
  }
  const rec = new ChunkRecorder();
  const late = new ChunkRecorder();
  const rnd = mulberry32(7);
  const total = 2 * CHUNK_ROWS;
  for (let seq = 1; seq <= total; seq++) {
    const sid = 1 + Math.floor(rnd() * 37);
    const local = seq % 7 === 0;
    const ts = T0 + Math.floor(rnd() * 1e9);
    db.prepare(`INSERT INTO ${local ? "local_readings" : "readings"} VALUES (?, ?, ?, ?)`)
      .run(seq, ts, sid, seq);
    rec.record(seq, sid, ts, local);
    // A recorder that started after the chunk's first rows (a restart) must not use its notes.
    if (seq > 100) late.record(seq, sid, ts, local);
  }
  for (const lo of [0, CHUNK_ROWS]) {
    db.exec("BEGIN");
    buildChunk(db, lo, lo + CHUNK_ROWS, true);
    const scanned = indexRows(db, lo);
    db.exec("ROLLBACK");
    db.exec("BEGIN");
    rec.build(db, lo, true);
    assert.deepEqual(indexRows(db, lo), scanned);
    db.exec("ROLLBACK");
  }
  assert.equal(rec.fromMemory, 2);
  db.exec("BEGIN");
  buildChunk(db, 0, CHUNK_ROWS, true);
  const scanned = indexRows(db, 0);
  db.exec("ROLLBACK");
  late.build(db, 0, true);
  assert.deepEqual(indexRows(db, 0), scanned);
  assert.equal(late.fromMemory, 0, "a chunk not wholly recorded is scanned");
});
