/**
 * The block index that makes one device's readings quick to find: every `CHUNK_ROWS` sequence
 * numbers, one transaction groups the span's readings by series into `chunk_sids`, one row per
 * series and chunk holding the series' sequence numbers (as offsets from the chunk's start, in one
 * text list) and its time range. A chunk is grouped from what the commits noted while writing its
 * rows ({@linkcode ChunkRecorder}; a `GROUP BY` over a range of the rowid when that is not all of
 * it) and written as a few hundred inserts at the end of the index's B-tree, so ingest pays a
 * small, bounded step per chunk instead of an index update per row (an index on `readings(sid, ts)` would dirty one page per
 * series in every commit: flash wear and ingest both suffer). The readings past the last chunk are
 * scanned.
 *
 * Entries of deleted readings stay until their chunk is dropped (`dropChunksBelow`); a lookup of
 * one simply finds nothing.
 */
import type { DatabaseSync } from "node:sqlite";

/** Sequence numbers per chunk: the most a query scans without the index. */
export const CHUNK_ROWS = 50_000;

/**
 * The index's tables: migration step 2 of the buffer schema (schema.ts). Additive: a build
 * without them ignores the tables, and a file without them is indexed from its oldest reading on.
 * `chunk_sids` is a rowid table: its entries (a list of a few hundred bytes with a thousand
 * series) fit a 2 KB page of a table B-tree, where a WITHOUT ROWID row over ~490 bytes takes an
 * overflow page of its own, which made the index as large as the readings.
 */
export const SERIES_INDEX_SQL = `
CREATE TABLE IF NOT EXISTS chunks(
  lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, ts_min INTEGER, ts_max INTEGER) STRICT;
CREATE TABLE IF NOT EXISTS chunk_sids(
  chunk INTEGER NOT NULL, sid INTEGER NOT NULL, local INTEGER NOT NULL,
  ts_min INTEGER NOT NULL, ts_max INTEGER NOT NULL, seqs TEXT NOT NULL,
  PRIMARY KEY(chunk, sid, local)) STRICT;
`;

/**
 * A file indexed in the earlier, unreleased layout (one row per reading in `chunk_series`) has
 * that table and its chunks dropped and is indexed again. Call after the schema is prepared.
 */
export function ensureSeriesIndex(db: DatabaseSync): void {
  if (!hasTable(db, "chunk_series")) return;
  db.exec("DROP TABLE chunk_series; DROP TABLE IF EXISTS chunks;");
  db.exec(SERIES_INDEX_SQL);
}

/** Highest sequence number covered by a chunk (0 when none; the tables may be absent). */
export function indexedUpTo(db: DatabaseSync): number {
  if (!hasIndex(db)) return 0;
  const row = db.prepare("SELECT max(hi) AS hi FROM chunks").get() as { hi: number | null };
  return Number(row.hi ?? 0);
}

/** Whether the file has the index tables (in the current layout). */
export function hasIndex(db: DatabaseSync): boolean {
  return hasTable(db, "chunk_sids") && hasTable(db, "chunks");
}

function hasTable(db: DatabaseSync, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !==
    undefined;
}

/**
 * Indexes `(lo, hi]` as one chunk. Call inside a write transaction; `hasLocal` when the file has
 * the `local_readings` table.
 */
export function buildChunk(db: DatabaseSync, lo: number, hi: number, hasLocal: boolean): void {
  const group = (table: string, local: number) =>
    db.prepare(
      `INSERT INTO chunk_sids(chunk, sid, local, ts_min, ts_max, seqs) SELECT ?1, sid, ${local}, ` +
        `min(ts), max(ts), group_concat(seq - ?1) FROM ${table} WHERE seq > ?1 AND seq <= ?2 ` +
        "GROUP BY sid",
    ).run(BigInt(lo), BigInt(hi));
  group("readings", 0);
  if (hasLocal) group("local_readings", 1);
  db.prepare(
    "INSERT INTO chunks(lo, hi, ts_min, ts_max) " +
      "SELECT ?1, ?2, min(ts_min), max(ts_max) FROM chunk_sids WHERE chunk = ?1",
  ).run(BigInt(lo), BigInt(hi));
}

/** What a {@linkcode ChunkRecorder} keeps of one chunk's sequence numbers. */
interface Slot {
  /** Chunk number (`lo / CHUNK_ROWS`); -1: none. */
  chunk: number;
  /** Every sequence number of the chunk from its first up to `next` (exclusive) was recorded. */
  whole: boolean;
  next: number;
  /** Series id by offset - 1, negative for a local-only row. */
  sid: Int32Array;
  ts: Float64Array;
}

/**
 * Series and time of each sequence number of the chunks being filled, noted by the commit that
 * writes the rows (two typed-array stores per reading, ~600 KB per chunk outside the JS heap), so
 * a chunk is indexed from memory instead of a `GROUP BY` that reads and sorts its 50,000 rows.
 * Two slots: the chunk being filled and the one waiting for its index step. A chunk not wholly
 * seen (written before a restart, or overtaken by a burst before its step ran) is indexed by
 * {@linkcode buildChunk}. Rows a failed transaction noted are overwritten when their sequence
 * numbers are given again, and a chunk is only indexed once committed, so no rollback is needed.
 */
export class ChunkRecorder {
  /** Chunks indexed from memory so far (the others by a scan). */
  fromMemory = 0;
  readonly #slots: Slot[] = [0, 1].map(() => ({
    chunk: -1,
    whole: false,
    next: 0,
    sid: new Int32Array(CHUNK_ROWS),
    ts: new Float64Array(CHUNK_ROWS),
  }));

  /** Notes the row with sequence number `seq` (called for every row a commit inserts). */
  record(seq: number, sid: number, ts: number, local: boolean): void {
    const i = seq - 1;
    const chunk = Math.floor(i / CHUNK_ROWS);
    const s = this.#slots[chunk & 1];
    const off = i - chunk * CHUNK_ROWS;
    if (s.chunk !== chunk) {
      s.chunk = chunk;
      s.whole = off === 0;
    } else if (seq > s.next) s.whole = false;
    s.next = seq + 1;
    s.sid[off] = local ? -sid : sid;
    s.ts[off] = ts;
  }

  /**
   * Indexes `(lo, lo + CHUNK_ROWS]` from what was recorded, or by {@linkcode buildChunk} when
   * that is not all of it. Call inside a write transaction, once the chunk's rows are committed.
   */
  build(db: DatabaseSync, lo: number, hasLocal: boolean): void {
    const hi = lo + CHUNK_ROWS;
    const chunk = lo / CHUNK_ROWS;
    const s = this.#slots[chunk & 1];
    if (!Number.isInteger(chunk) || s.chunk !== chunk || !s.whole || s.next <= hi) {
      return buildChunk(db, lo, hi, hasLocal);
    }
    buildFromSlot(db, lo, s);
    this.fromMemory++;
  }
}

/** Writes a chunk's index rows from a slot: one row per series (and table), in key order. */
function buildFromSlot(db: DatabaseSync, lo: number, s: Slot): void {
  // Group offsets by series: count, place, then one text list per series.
  const groupOf = new Map<number, number>();
  const keys: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < CHUNK_ROWS; i++) {
    const key = s.sid[i];
    let g = groupOf.get(key);
    if (g === undefined) {
      groupOf.set(key, g = keys.length);
      keys.push(key);
      counts.push(0);
    }
    counts[g]++;
  }
  const start = new Int32Array(keys.length + 1);
  for (let g = 0; g < keys.length; g++) start[g + 1] = start[g] + counts[g];
  const fill = start.slice(0, keys.length);
  const offs = new Int32Array(CHUNK_ROWS);
  const tsMin = new Float64Array(keys.length).fill(Infinity);
  const tsMax = new Float64Array(keys.length).fill(-Infinity);
  for (let i = 0; i < CHUNK_ROWS; i++) {
    const g = groupOf.get(s.sid[i])!;
    offs[fill[g]++] = i + 1;
    const ts = s.ts[i];
    if (ts < tsMin[g]) tsMin[g] = ts;
    if (ts > tsMax[g]) tsMax[g] = ts;
  }
  const order = keys.map((_, g) => g).sort((a, b) =>
    Math.abs(keys[a]) - Math.abs(keys[b]) || keys[b] - keys[a]
  );
  const insert = db.prepare(
    "INSERT INTO chunk_sids(chunk, sid, local, ts_min, ts_max, seqs) VALUES (?, ?, ?, ?, ?, ?)",
  );
  let min = Infinity;
  let max = -Infinity;
  for (const g of order) {
    const key = keys[g];
    insert.run(
      lo,
      Math.abs(key),
      key < 0 ? 1 : 0,
      tsMin[g],
      tsMax[g],
      offs.subarray(start[g], start[g + 1]).join(","),
    );
    min = Math.min(min, tsMin[g]);
    max = Math.max(max, tsMax[g]);
  }
  db.prepare("INSERT INTO chunks(lo, hi, ts_min, ts_max) VALUES (?, ?, ?, ?)")
    .run(lo, lo + CHUNK_ROWS, min, max);
}

/** Drops chunks entirely below `seq` (all their readings are gone). */
export function dropChunksBelow(db: DatabaseSync, seq: number): number {
  const gone = db.prepare("SELECT lo FROM chunks WHERE hi < ?").all(seq) as { lo: number }[];
  const delEntries = db.prepare("DELETE FROM chunk_sids WHERE chunk = ?");
  const delChunk = db.prepare("DELETE FROM chunks WHERE lo = ?");
  for (const { lo } of gone) {
    delEntries.run(lo);
    delChunk.run(lo);
  }
  return gone.length;
}

/** A stored row as the queries read it. */
export interface Row {
  seq: number;
  ts: number;
  sid: number;
  value: number | string;
  local: boolean;
}

/** What {@linkcode selectRows} selects. */
export interface RowFilter {
  /** Series ids to select; undefined: all. */
  sids?: number[];
  from?: number;
  to?: number;
  afterSeq?: number;
  /** Whether the file has `local_readings`. */
  hasLocal: boolean;
  pageSize?: number;
}

/**
 * Rows matching `f`, in sequence order. With series ids given and the index present, the chunks
 * name the rows (only chunks whose time range overlaps are read); the readings past the last
 * chunk are scanned.
 */
export function* selectRows(db: DatabaseSync, f: RowFilter): Generator<Row> {
  const pageSize = f.pageSize ?? 5000;
  let after = f.afterSeq ?? 0;
  let tailFrom = after;
  if (f.sids !== undefined && hasIndex(db)) {
    const chunks = db.prepare(
      "SELECT lo, hi, ts_min, ts_max FROM chunks WHERE hi > ? ORDER BY lo",
    ).all(after) as { lo: number; hi: number; ts_min: number | null; ts_max: number | null }[];
    const entries = db.prepare(
      "SELECT local, ts_min, ts_max, seqs FROM chunk_sids WHERE chunk = ? AND sid = ?",
    );
    const one = db.prepare("SELECT seq, ts, sid, value FROM readings WHERE seq = ?");
    const oneLocal = f.hasLocal
      ? db.prepare("SELECT seq, ts, sid, value FROM local_readings WHERE seq = ?")
      : undefined;
    // Chunks are contiguous from the oldest indexed one: what lies before it is scanned too.
    const firstLo = chunks.length ? Number(chunks[0].lo) : Infinity;
    if (after < firstLo && chunks.length) {
      yield* scan(db, { ...f, afterSeq: after }, pageSize, firstLo);
      after = firstLo;
    }
    for (const c of chunks) {
      const lo = Number(c.lo);
      const hi = Number(c.hi);
      tailFrom = Math.max(tailFrom, hi);
      if (c.ts_min === null) continue;
      if (f.to !== undefined && Number(c.ts_min) >= f.to) continue;
      if (f.from !== undefined && Number(c.ts_max) < f.from) continue;
      // Local rows are marked by a negative sequence number until they are read.
      const seqs: number[] = [];
      for (const sid of f.sids) {
        for (const e of entries.all(lo, sid)) {
          if (f.to !== undefined && Number(e.ts_min) >= f.to) continue;
          if (f.from !== undefined && Number(e.ts_max) < f.from) continue;
          const sign = e.local === 1 ? -1 : 1;
          for (const off of String(e.seqs).split(",")) {
            const seq = lo + Number(off);
            if (seq > after) seqs.push(sign * seq);
          }
        }
      }
      seqs.sort((a, b) => Math.abs(a) - Math.abs(b));
      for (const signed of seqs) {
        const local = signed < 0;
        const seq = Math.abs(signed);
        const row = (local ? oneLocal?.get(seq) : one.get(seq)) as Omit<Row, "local"> | undefined;
        if (!row) continue;
        const ts = Number(row.ts);
        if ((f.from !== undefined && ts < f.from) || (f.to !== undefined && ts >= f.to)) continue;
        yield { seq, ts, sid: Number(row.sid), value: row.value, local };
      }
      after = Math.max(after, hi);
    }
    tailFrom = Math.max(tailFrom, after);
  }
  yield* scan(db, { ...f, afterSeq: tailFrom }, pageSize, Infinity);
}

/**
 * The `WHERE` text for rows with `seq > ?` (the caller binds that first), `seq < before` and
 * `f`'s series and time range, with the parameters that follow the first one.
 */
function rowCondition(f: RowFilter, before: number): { cond: string; params: number[] } {
  const where = ["seq > ?"];
  const params: number[] = [];
  if (before !== Infinity) {
    where.push("seq < ?");
    params.push(before);
  }
  if (f.sids !== undefined) where.push(`sid IN (${f.sids.join(",")})`);
  if (f.from !== undefined) {
    where.push("ts >= ?");
    params.push(f.from);
  }
  if (f.to !== undefined) {
    where.push("ts < ?");
    params.push(f.to);
  }
  return { cond: where.join(" AND "), params };
}

/** Scans rows with `afterSeq < seq < before` matching `f`, in sequence order. */
function* scan(db: DatabaseSync, f: RowFilter, pageSize: number, before: number): Generator<Row> {
  const { cond, params } = rowCondition(f, before);
  const stmt = db.prepare(
    `SELECT seq, ts, sid, value, 0 AS local FROM readings WHERE ${cond}` +
      (f.hasLocal
        ? ` UNION ALL SELECT seq, ts, sid, value, 1 AS local FROM local_readings WHERE ${cond}`
        : "") +
      " ORDER BY seq LIMIT ?",
  );
  let after = f.afterSeq ?? 0;
  for (;;) {
    const rows = f.hasLocal
      ? stmt.all(after, ...params, after, ...params, pageSize)
      : stmt.all(after, ...params, pageSize);
    for (const r of rows) {
      yield {
        seq: Number(r.seq),
        ts: Number(r.ts),
        sid: Number(r.sid),
        value: r.value as number | string,
        local: r.local === 1,
      };
    }
    if (rows.length < pageSize) break;
    after = Number(rows[rows.length - 1].seq);
  }
}

/**
 * How many rows {@linkcode selectRows} would yield for `f`, without reading them: with series ids
 * and the index, a chunk entry inside the time range counts its list of sequence numbers, one that
 * straddles a bound looks its rows up; the rest is one `count(*)`. Entries of rows deleted since
 * (pruned, evicted) are counted while their chunk stays, so the figure is a total for progress,
 * not a promise.
 */
export function countRows(db: DatabaseSync, f: RowFilter): number {
  const after = f.afterSeq ?? 0;
  if (f.sids === undefined || !hasIndex(db)) return scanCount(db, f, after, Infinity);
  const chunks = db.prepare("SELECT lo, hi FROM chunks WHERE hi > ? ORDER BY lo").all(after) as {
    lo: number;
    hi: number;
  }[];
  if (!chunks.length) return scanCount(db, f, after, Infinity);
  const entries = db.prepare(
    "SELECT local, ts_min, ts_max, seqs FROM chunk_sids WHERE chunk = ? AND sid = ?",
  );
  const ts = db.prepare("SELECT ts FROM readings WHERE seq = ?");
  const tsLocal = f.hasLocal
    ? db.prepare("SELECT ts FROM local_readings WHERE seq = ?")
    : undefined;
  const from = f.from ?? -Infinity;
  const to = f.to ?? Infinity;
  const firstLo = Number(chunks[0].lo);
  let n = after < firstLo ? scanCount(db, f, after, firstLo) : 0;
  let tail = after;
  for (const c of chunks) {
    const lo = Number(c.lo);
    tail = Math.max(tail, Number(c.hi));
    for (const sid of f.sids) {
      for (const e of entries.all(lo, sid)) {
        const min = Number(e.ts_min);
        const max = Number(e.ts_max);
        if (min >= to || max < from) continue;
        const offs = String(e.seqs).split(",");
        if (min >= from && max < to && lo >= after) {
          n += offs.length;
          continue;
        }
        const look = e.local === 1 ? tsLocal : ts;
        for (const off of offs) {
          const seq = lo + Number(off);
          if (seq <= after) continue;
          const row = look?.get(seq) as { ts: number } | undefined;
          if (row && Number(row.ts) >= from && Number(row.ts) < to) n++;
        }
      }
    }
  }
  return n + scanCount(db, f, tail, Infinity);
}

/** `count(*)` of the rows with `after < seq < before` matching `f`. */
function scanCount(db: DatabaseSync, f: RowFilter, after: number, before: number): number {
  const { cond, params: rest } = rowCondition(f, before);
  const params = [after, ...rest];
  let n = Number(
    (db.prepare(`SELECT count(*) AS n FROM readings WHERE ${cond}`).get(...params) as {
      n: number;
    }).n,
  );
  if (f.hasLocal) {
    n += Number(
      (db.prepare(`SELECT count(*) AS n FROM local_readings WHERE ${cond}`).get(
        ...params,
      ) as { n: number }).n,
    );
  }
  return n;
}
