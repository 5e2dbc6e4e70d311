import { DatabaseSync, type StatementSync } from "node:sqlite";
import { statfsSync } from "node:fs";
import type { Logger } from "../log.ts";
import type { Reading, ReadingValue, StoredReading } from "../reading.ts";
import type { BufferConfig } from "../config/gateway.ts";
import { type BufferOwner, currentOwner, heldByOther, parseOwner } from "./owner.ts";
import {
  buildChunk,
  CHUNK_ROWS,
  dropChunksBelow,
  ensureSeriesIndex,
  indexedUpTo,
  selectRows,
} from "./series_index.ts";
import { prepareSchema } from "./schema.ts";

/** The buffer file could not be opened or used. */
export class BufferError extends Error {
  override name = "BufferError";
}

/** The readings were not accepted because the buffer is full and `overflow: reject-new`. */
export class BufferFullError extends BufferError {
  override name = "BufferFullError";
}

/**
 * The readings were not accepted because the disk holding the buffer is full (a commit failed
 * with SQLITE_FULL, or did so less than a second ago). Nothing was stored; the sender should try
 * again later.
 */
export class DiskFullError extends BufferError {
  override name = "DiskFullError";
}

/** Whether `e` is SQLite's "database or disk is full" (or the system's ENOSPC). */
export function isDiskFull(e: unknown): boolean {
  const err = e as { errcode?: number; code?: string; message?: string };
  return (err?.errcode !== undefined && (err.errcode & 0xff) === 13) || err?.code === "ENOSPC" ||
    /database or disk is full|no space left on device/i.test(String(err?.message ?? e));
}

/** Result of one `append`. */
export interface AppendResult {
  /** Sequence numbers given to the accepted readings, in order. */
  seqs: number[];
  /** Readings refused because the buffer was full (`overflow: reject-new`). */
  rejected: number;
}

/** Counters and gauges of the buffer, as shown in status and metrics. */
export interface BufferStats {
  file: string;
  epoch: string;
  rows: number;
  pending: number;
  bytes: number;
  nextSeq: number;
  ackFloor: number;
  oldestPendingTs: number | null;
  lastAppendTs: number | null;
  /** Unforwarded readings deleted to make room (data loss), since the file was created. */
  droppedUnforwarded: number;
  /** Forwarded readings deleted early to make room (no data loss). */
  evictedForwarded: number;
  /** Local-only readings (never forwarded, e.g. raw samples of `raw: local`) deleted early. */
  evictedLocal: number;
  /** New readings refused in reject-new mode. */
  rejectedFull: number;
  /** Forwarded and local-only readings deleted at the end of the retention window. */
  pruned: number;
  /** Local-only readings stored (included in `rows`, never in `pending`). */
  localOnly: number;
  /** Which cap is currently binding, if any. */
  atCap: "rows" | "bytes" | "disk" | null;
  /** Files moved aside because they were corrupt, this run. */
  quarantined: string[];
  /** Set while commits fail for want of disk space: new readings are refused meanwhile. */
  diskFull: { since: number; error: string } | null;
  /** Free bytes on the buffer's filesystem at the last commit (null when unknown). */
  freeDisk: number | null;
  /** The spare file kept beside the buffer so a full disk never stops eviction and checkpoints. */
  reserve: "ready" | "released" | "off";
  /** When a commit last succeeded (this run). */
  lastCommitAt: number | null;
  /** The last commit's error, until a commit succeeds again. */
  lastCommitError: { at: number; error: string } | null;
  /** Commits that failed this run (their readings were refused, memory left unchanged). */
  commitFailures: number;
  /** Transactions committed this run (each one WAL write: the figure that wears the flash). */
  commits: number;
}

/** Options of {@linkcode Buffer.append}. */
export interface AppendOptions {
  /**
   * `false` stores the readings for export and queries but never forwards them: they are not
   * pending, the forwarder never reads them, and at a cap they go like forwarded ones. Default
   * `true`.
   */
  forward?: boolean;
  /**
   * `true` lets the commit wait for the commit window while few readings are queued (see
   * `buffer.commitWindow`): for readings from devices that each wait for their own answer, not
   * for an adapter whose schedule waits on the commit (a poller). Default `false`.
   */
  coalesce?: boolean;
}

/** A range of sequence numbers, inclusive. */
export type SeqRange = [lo: number, hi: number];

/** Options of {@linkcode Buffer.open}. */
export interface BufferOptions {
  log: Logger;
  /** Clock, for tests. */
  now?: () => number;
  /** Free-space probe, for tests; returns free bytes of the filesystem holding `path`. */
  freeDisk?: (path: string) => number;
  /**
   * Test hook: called at each step inside a write transaction (`series`, `insert`, `evict`,
   * `drop`, `meta`, `acks`, `prune`, `commit`); throwing from it fails the transaction there.
   */
  fault?: (step: FaultStep) => void;
}

/** Steps of a write transaction where {@linkcode BufferOptions.fault} is called. */
export type FaultStep =
  | "series"
  | "insert"
  | "evict"
  | "drop"
  | "meta"
  | "acks"
  | "prune"
  | "commit";

/** In-memory state a failed transaction puts back. */
interface Snapshot {
  nextSeq: number;
  floor: number;
  acked: SeqRange[];
  ackDirty: boolean;
  ackedInFile: boolean;
  rows: number;
  pending: number;
  localRows: number;
  counters: Record<Counter, number>;
  seriesLength: number;
  indexedHi: number;
  atCap: BufferStats["atCap"];
  episodeDropped: number;
}

/** What a query of stored readings selects. */
export interface QueryOptions {
  device?: string;
  metric?: string;
  /** Inclusive lower bound of the source timestamp, ms. */
  from?: number;
  /** Exclusive upper bound of the source timestamp, ms. */
  to?: number;
  /** Resume after this sequence number (paging). */
  afterSeq?: number;
  limit?: number;
}

interface Series {
  device: string;
  metric: string;
  unit: string;
  kind: number;
}

interface RawRow {
  seq: number;
  ts: number;
  sid: number;
  value: number | string;
}

interface Waiter {
  readings: Reading[];
  local: boolean;
  coalesce: boolean;
  resolve: (r: AppendResult) => void;
  reject: (e: Error) => void;
}

const KIND_NUMBER = 0;
const KIND_BOOL = 1;
const KIND_STRING = 2;
const ROWS_PER_STATEMENT = 250;
/**
 * Page size of new buffer files. A commit of a few readings writes about two pages to the WAL
 * (the last leaf of `readings` and `meta`), so the page size is the wear per small commit: 2 KB
 * halves it against SQLite's 4 KB default at no cost to ingest (1 KB costs ingest ~40 %).
 */
const PAGE_SIZE = 2048;
/**
 * Readings enough to make a commit worth its pages: with fewer waiting, a commit waits for the
 * commit window (at most one such small commit per `commitWindow`).
 */
export const WIDE_COMMIT_ROWS = 32;
const COUNTERS = [
  "droppedUnforwarded",
  "evictedForwarded",
  "evictedLocal",
  "rejectedFull",
  "pruned",
] as const;
type Counter = typeof COUNTERS[number];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS series(
  id INTEGER PRIMARY KEY, device TEXT NOT NULL, metric TEXT NOT NULL,
  unit TEXT NOT NULL, kind INTEGER NOT NULL, UNIQUE(device, metric, unit, kind)) STRICT;
CREATE TABLE IF NOT EXISTS readings(
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid INTEGER NOT NULL, value ANY) STRICT;
-- Readings stored but never forwarded, numbered from the same sequence as readings. A table of
-- their own keeps them out of the forwarder's reads and the acknowledged ranges entirely.
CREATE TABLE IF NOT EXISTS local_readings(
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid INTEGER NOT NULL, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS acked(lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS aside(
  lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL) STRICT;
`;

function isCorruption(e: unknown): boolean {
  const msg = String((e as Error)?.message ?? e);
  return /malformed|not a database|corrupt|SQLITE_CORRUPT|SQLITE_NOTADB|file is not a database/i
    .test(msg);
}

function kindOf(v: ReadingValue): number {
  return typeof v === "number" ? KIND_NUMBER : typeof v === "boolean" ? KIND_BOOL : KIND_STRING;
}

/** The key of a reading's series: device, metric, unit and value kind. */
export function seriesKey(r: Reading): string {
  return `${r.device}\u0000${r.metric}\u0000${r.unit ?? ""}\u0000${kindOf(r.value)}`;
}

function inUse(o: BufferOwner): string {
  let what = "";
  try {
    what = Deno.readTextFileSync(`/proc/${o.pid}/cmdline`).split("\0").filter(Boolean).join(" ");
  } catch { /* gone or hidden */ }
  return `in use by process ${o.pid}${
    what ? ` (${what.slice(0, 200)})` : ""
  }, which is still running; two gateways must not write one buffer. Stop that one first (systemctl stop outpost), or give this one its own buffer.path`;
}

function reservePath(path: string): string {
  return `${path}.reserve`;
}

/** Deletes the reserve file beside `path`; true when there was one. */
function releaseReserve(path: string): boolean {
  try {
    Deno.removeSync(reservePath(path));
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the buffer's filesystem has less than 1 MB free. On a full disk SQLite may report
 * "disk I/O error" rather than SQLITE_FULL (its shared-memory file could not grow).
 */
function nearlyFull(path: string, opts: BufferOptions): boolean {
  try {
    return (opts.freeDisk ?? defaultFreeDisk)(path) < 1024 * 1024;
  } catch {
    return false;
  }
}

function defaultFreeDisk(path: string): number {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const st = statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/**
 * The durable store of readings: SQLite in WAL mode, grouped inserts, sequence numbers that
 * survive restarts, acknowledged ranges, caps with exact drop counting and a retention window.
 * A reading is accepted once the promise of {@linkcode Buffer.append} resolves.
 */
export class Buffer {
  readonly #db: DatabaseSync;
  readonly #path: string;
  #config: BufferConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #freeDisk: (path: string) => number;
  readonly #fault: ((step: FaultStep) => void) | undefined;
  readonly #quarantined: string[];

  #epoch = "";
  #nextSeq = 1;
  #floor = 0;
  #acked: SeqRange[] = [];
  #ackDirty = false;
  /** Whether the `acked` table holds rows (as of the last commit). */
  #ackedInFile = true;
  #rows = 0;
  #pending = 0;
  #localRows = 0;
  #counters: Record<Counter, number> = {
    droppedUnforwarded: 0,
    evictedForwarded: 0,
    evictedLocal: 0,
    rejectedFull: 0,
    pruned: 0,
  };
  #series: Series[] = [];
  #seriesIds = new Map<string, number>();
  #queue: Waiter[] = [];
  #queued = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The owner row this process wrote (removed again on close). */
  #owner = "";
  #lastAppendTs: number | null = null;
  #atCap: BufferStats["atCap"] = null;
  #episodeDropped = 0;
  #diskLow = false;
  #freeBytes: number | null = null;
  /** Series keys added by the open transaction (forgotten again if it fails). */
  #txnSeries: string[] = [];
  #diskFull: BufferStats["diskFull"] = null;
  /** While the disk is full, commits are tried again from this time on; until then refused. */
  #retryAt = 0;
  #reserve: BufferStats["reserve"] = "off";
  #maintainTimer: ReturnType<typeof setTimeout> | undefined;
  #lastCommitAt: number | null = null;
  #lastCommitError: BufferStats["lastCommitError"] = null;
  #commitFailures = 0;
  #commits = 0;
  /** When the oldest queued reading arrived and when the last commit ended (monotonic ms). */
  #queuedSince = 0;
  #lastCommitMono = -Infinity;
  #timerAt = Infinity;
  /** Highest sequence number the series index covers; past it, queries scan. */
  #indexedHi = 0;
  #indexTimer: ReturnType<typeof setTimeout> | undefined;
  /** Queued appends that may not wait for the commit window. */
  #queuedPrompt = 0;
  #ownerUnwritten = false;
  #bytesCheckedAt = 0;
  #usedBytes = 0;
  #pageSize = 4096;
  #listeners = new Set<() => void>();

  #insertStmts = new Map<number, StatementSync>();
  #insertLocalStmts = new Map<number, StatementSync>();
  #insertSeries!: StatementSync;
  #setMeta!: StatementSync;
  #readRange!: StatementSync;
  #countRange!: StatementSync;
  #pageCount!: StatementSync;
  #freelistCount!: StatementSync;
  #deleteRange!: StatementSync;
  #nthForwarded!: StatementSync;
  #nthPending!: StatementSync;
  #oldestLocal!: StatementSync;
  #seqsInRange!: StatementSync;
  #deleteLocalUpTo!: StatementSync;

  private constructor(
    db: DatabaseSync,
    path: string,
    config: BufferConfig,
    opts: BufferOptions,
    quarantined: string[],
  ) {
    this.#db = db;
    this.#path = path;
    this.#config = config;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#freeDisk = opts.freeDisk ?? defaultFreeDisk;
    this.#fault = opts.fault;
    this.#quarantined = quarantined;
  }

  /**
   * Opens (or creates) the buffer file. A file SQLite reports as corrupt is renamed to
   * `<file>.corrupt-<time>` with a loud error, and a fresh buffer is started in its place.
   */
  static open(config: BufferConfig, opts: BufferOptions): Buffer {
    const path = config.path;
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    const quarantined: string[] = [];
    let startedFull: string | undefined;
    for (let attempt = 0;; attempt++) {
      let db: DatabaseSync | undefined;
      try {
        db = new DatabaseSync(path);
        const buf = new Buffer(db, path, config, opts, quarantined);
        buf.#init();
        buf.#afterOpen(startedFull);
        return buf;
      } catch (e) {
        try {
          db?.close();
        } catch { /* already unusable */ }
        // Opening writes (owner row, WAL): on a full disk the reserve makes the room for it.
        if (
          startedFull === undefined && (isDiskFull(e) || nearlyFull(path, opts)) &&
          releaseReserve(path)
        ) {
          startedFull = (e as Error).message;
          opts.log.error("disk full at start: released the buffer's reserve file to open it", {
            file: path,
            error: startedFull,
          });
          attempt--;
          continue;
        }
        if (!isCorruption(e) || attempt > 0) {
          throw new BufferError(`Cannot open buffer "${path}": ${(e as Error).message}`, {
            cause: e,
          });
        }
        const aside = Buffer.#quarantine(path, opts.now?.() ?? Date.now());
        quarantined.push(aside);
        opts.log.error(
          "BUFFER FILE IS CORRUPT: moved aside, starting a fresh buffer; readings not yet forwarded from it are NOT in the new buffer",
          { file: path, movedTo: aside, reason: (e as Error).message },
        );
      }
    }
  }

  /** Takes the file for this process, or throws naming the running process that holds it. */
  #claim(): void {
    const db = this.#db;
    const self = currentOwner();
    db.exec("BEGIN IMMEDIATE");
    try {
      const row = db.prepare("SELECT value FROM meta WHERE key = 'owner'").get();
      const held = parseOwner(row?.value);
      if (held && heldByOther(held, self)) throw new BufferError(inUse(held));
      this.#owner = JSON.stringify(self);
      db.prepare(
        "INSERT INTO meta(key, value) VALUES ('owner', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      ).run(this.#owner);
      db.exec("COMMIT");
    } catch (e) {
      // SQLite ends a transaction itself on some errors (SQLITE_FULL): a ROLLBACK then would
      // throw "no transaction is active" and hide the real error.
      if (db.isTransaction) db.exec("ROLLBACK");
      if (!isDiskFull(e)) throw e;
      // No other live holder (checked above) and no room to say so: the row is written with the
      // first commit that succeeds. Until then nothing is written, so nothing can clash.
      this.#ownerUnwritten = true;
      this.#diskFull = { since: this.#now(), error: (e as Error).message };
      this.#retryAt = this.#now() + 1000;
    }
  }

  static #quarantine(path: string, now: number): string {
    const stamp = new Date(now).toISOString().replace(/[:.]/g, "-");
    const aside = `${path}.corrupt-${stamp}`;
    Deno.renameSync(path, aside);
    for (const suffix of ["-wal", "-shm"]) {
      try {
        Deno.renameSync(path + suffix, aside + suffix);
      } catch { /* absent */ }
    }
    return aside;
  }

  #init(): void {
    const db = this.#db;
    db.exec("PRAGMA busy_timeout = 5000");
    // A new file only (an existing one keeps its page size): see PAGE_SIZE.
    db.exec(`PRAGMA page_size = ${PAGE_SIZE}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    if (this.#config.integrityCheck) {
      const row = db.prepare("PRAGMA quick_check(1)").get() as Record<string, unknown>;
      const verdict = String(Object.values(row ?? {})[0]);
      if (verdict !== "ok") throw new BufferError(`database disk image is malformed: ${verdict}`);
    }
    prepareSchema(db, SCHEMA, { path: this.#path, log: this.#log });
    ensureSeriesIndex(db);
    this.#claim();
    const meta = new Map<string, unknown>();
    for (const r of db.prepare("SELECT key, value FROM meta").all()) {
      meta.set(String(r.key), r.value);
    }
    this.#setMeta = db.prepare(
      "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    );
    if (!meta.has("epoch")) {
      const bytes = crypto.getRandomValues(new Uint8Array(6));
      this.#epoch = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      this.#setMeta.run("epoch", this.#epoch);
      this.#setMeta.run("created", this.#now());
    } else this.#epoch = String(meta.get("epoch"));
    const maxSeq = Number(
      (db.prepare(
        "SELECT max(m) AS m FROM (SELECT max(seq) AS m FROM readings UNION ALL SELECT max(seq) FROM local_readings)",
      ).get() as { m: number | null }).m ?? 0,
    );
    this.#nextSeq = Math.max(Number(meta.get("next_seq") ?? 1), maxSeq + 1);
    this.#floor = Number(meta.get("ack_floor") ?? 0);
    for (const c of COUNTERS) this.#counters[c] = Number(meta.get(c) ?? 0);
    this.#acked = (db.prepare("SELECT lo, hi FROM acked ORDER BY lo").all() as {
      lo: number;
      hi: number;
    }[]).map((r) => [r.lo, r.hi] as SeqRange).filter(([, hi]) => hi > this.#floor);
    for (const r of db.prepare("SELECT id, device, metric, unit, kind FROM series").all()) {
      const s = {
        device: String(r.device),
        metric: String(r.metric),
        unit: String(r.unit),
        kind: Number(r.kind),
      };
      this.#series[Number(r.id)] = s;
      this.#seriesIds.set(
        `${s.device}\u0000${s.metric}\u0000${s.unit}\u0000${s.kind}`,
        Number(r.id),
      );
    }
    this.#localRows = Number(
      (db.prepare("SELECT count(*) AS n FROM local_readings").get() as { n: number }).n,
    );
    this.#rows = this.#localRows + Number(
      (db.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n,
    );
    this.#countRange = db.prepare("SELECT count(*) AS n FROM readings WHERE seq > ? AND seq <= ?");
    this.#pending = this.#countPending();
    this.#indexedHi = indexedUpTo(db);
    this.#pageCount = db.prepare("PRAGMA page_count");
    this.#freelistCount = db.prepare("PRAGMA freelist_count");
    this.#insertSeries = db.prepare(
      "INSERT INTO series(id, device, metric, unit, kind) VALUES (?, ?, ?, ?, ?)",
    );
    this.#readRange = db.prepare(
      "SELECT seq, ts, sid, value FROM readings WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
    );
    this.#deleteRange = db.prepare("DELETE FROM readings WHERE seq > ? AND seq <= ?");
    this.#nthForwarded = db.prepare(
      "SELECT seq FROM readings WHERE seq <= ? ORDER BY seq LIMIT 1 OFFSET ?",
    );
    this.#nthPending = db.prepare(
      "SELECT seq FROM readings WHERE seq > ? ORDER BY seq LIMIT 1 OFFSET ?",
    );
    this.#oldestLocal = db.prepare("SELECT seq FROM local_readings ORDER BY seq LIMIT ?");
    this.#seqsInRange = db.prepare(
      "SELECT seq FROM readings WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
    );
    this.#deleteLocalUpTo = db.prepare("DELETE FROM local_readings WHERE seq <= ?");
    this.#pageSize = Number(
      (db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size,
    );
    this.#refreshBytes(true);
  }

  #countPending(): number {
    const count = this.#countRange;
    let n = Number((count.get(this.#floor, Number.MAX_SAFE_INTEGER) as { n: number }).n);
    for (const [lo, hi] of this.#acked) n -= Number((count.get(lo - 1, hi) as { n: number }).n);
    return n;
  }

  /** The random id of this buffer file; with a sequence number it identifies a reading. */
  get epoch(): string {
    return this.#epoch;
  }

  /** The file path. */
  get path(): string {
    return this.#path;
  }

  /** Applies a reloaded config; caps and timings change, the file stays open. */
  reconfigure(config: BufferConfig): void {
    if (config.path !== this.#path) {
      this.#log.warn("buffer.path changed; the new path takes effect after a restart", {
        current: this.#path,
        configured: config.path,
      });
    }
    this.#config = { ...config, path: this.#path };
  }

  /** Subscribes to "new readings committed"; returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Queues readings for the next grouped commit. Resolves with their sequence numbers once the
   * transaction holding them has committed; rejects if the buffer cannot write. With
   * `forward: false` they are stored but never forwarded (see {@linkcode AppendOptions}).
   */
  append(readings: Reading[], opts?: AppendOptions): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new BufferError("buffer is closed"));
    if (readings.length === 0) return Promise.resolve({ seqs: [], rejected: 0 });
    const local = opts?.forward === false;
    return new Promise((resolve, reject) => {
      if (this.#queue.length === 0) this.#queuedSince = performance.now();
      const coalesce = opts?.coalesce === true;
      this.#queue.push({ readings, local, coalesce, resolve, reject });
      this.#queued += readings.length;
      if (!coalesce) this.#queuedPrompt++;
      if (this.#queued >= this.#config.commitRows) this.flush();
      else this.#scheduleCommit();
    });
  }

  /**
   * When the queued readings are committed: `commitInterval` after the first arrived; but while
   * fewer than {@linkcode WIDE_COMMIT_ROWS} wait, all of them appended with `coalesce`, no sooner
   * than `commitWindow` after the last commit, so a trickle of single readings costs one commit per window, not one each. A reading
   * never waits longer than `max(commitInterval, commitWindow)`.
   */
  #commitDue(): number {
    const cfg = this.#config;
    const soon = this.#queuedSince + cfg.commitInterval;
    if (this.#queued >= WIDE_COMMIT_ROWS || this.#queuedPrompt > 0) return soon;
    const widest = this.#queuedSince + cfg.commitWindow;
    return Math.max(soon, Math.min(this.#lastCommitMono + cfg.commitWindow, widest));
  }

  #scheduleCommit(): void {
    const due = this.#commitDue();
    if (due >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = due;
    this.#timer = setTimeout(() => this.flush(), Math.max(0, due - performance.now()));
  }

  /** Commits everything queued now, in one transaction. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
    if (this.#queue.length === 0) {
      if (this.#ackDirty) this.#persistAcks();
      return;
    }
    const waiters = this.#queue;
    const total = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    this.#queuedPrompt = 0;
    if (this.#diskFull && this.#now() < this.#retryAt) {
      const err = this.#diskFullError(total);
      for (const w of waiters) w.reject(err);
      return;
    }
    const seqs: number[][] = [];
    let rejected: number[] = [];
    try {
      this.#transaction(() => {
        const room = this.#makeRoom(total);
        rejected = waiters.map(() => 0);
        let allowed = room;
        let seq = this.#nextSeq;
        const rowsOut: (number | string | null)[] = [];
        const localOut: (number | string | null)[] = [];
        let inserted = 0;
        let insertedLocal = 0;
        for (let w = 0; w < waiters.length; w++) {
          const list = waiters[w].readings;
          const local = waiters[w].local;
          const out = local ? localOut : rowsOut;
          const mine: number[] = [];
          for (let i = 0; i < list.length; i++) {
            if (allowed <= 0) {
              rejected[w] += list.length - i;
              break;
            }
            allowed--;
            const r = list[i];
            const sid = this.#seriesId(r);
            const v = r.value;
            out.push(seq, r.ts, sid, typeof v === "boolean" ? (v ? 1 : 0) : v);
            mine.push(seq++);
            inserted++;
            if (out.length === ROWS_PER_STATEMENT * 4) {
              this.#insertRows(out, ROWS_PER_STATEMENT, local);
              out.length = 0;
            }
          }
          if (local) insertedLocal += mine.length;
          seqs.push(mine);
        }
        if (rowsOut.length) this.#insertRows(rowsOut, rowsOut.length / 4, false);
        if (localOut.length) this.#insertRows(localOut, localOut.length / 4, true);
        const rejectedTotal = rejected.reduce((a, b) => a + b, 0);
        if (rejectedTotal) this.#counters.rejectedFull += rejectedTotal;
        this.#fault?.("meta");
        this.#nextSeq = seq;
        this.#setMeta.run("next_seq", seq);
        for (const c of COUNTERS) this.#setMeta.run(c, this.#counters[c]);
        if (this.#ackDirty) this.#writeAcks();
        this.#rows += inserted;
        this.#localRows += insertedLocal;
        this.#pending += inserted - insertedLocal;
      });
    } catch (e) {
      const err = isDiskFull(e) ? this.#diskFullError(total) : new BufferError(
        `Cannot write to buffer "${this.#path}": ${(e as Error).message}`,
        { cause: e },
      );
      if (!(err instanceof DiskFullError)) {
        this.#log.error("buffer write failed; readings not accepted", { error: err.message });
      }
      for (const w of waiters) w.reject(err);
      return;
    }
    if (seqs.some((s) => s.length > 0)) this.#lastAppendTs = this.#now();
    if (this.#diskFull) {
      this.#log.info("buffer takes readings again after the disk was full", {
        fullForMs: this.#now() - this.#diskFull.since,
      });
      this.#diskFull = null;
    }
    for (let w = 0; w < waiters.length; w++) {
      waiters[w].resolve({ seqs: seqs[w], rejected: rejected[w] });
    }
    for (const l of this.#listeners) l();
    this.#scheduleIndex();
  }

  /** Indexes the next chunk once a whole one is committed, off the commit's path. */
  #scheduleIndex(): void {
    if (this.#closed || this.#indexTimer !== undefined) return;
    if (this.lastSeq - this.#indexedHi < CHUNK_ROWS) return;
    this.#indexTimer = setTimeout(() => {
      this.#indexTimer = undefined;
      if (this.#closed) return;
      const lo = this.#indexedHi;
      try {
        this.#transaction(() => {
          buildChunk(this.#db, lo, lo + CHUNK_ROWS, true);
          this.#indexedHi = lo + CHUNK_ROWS;
        });
      } catch (e) {
        this.#log.error("cannot index buffered readings by series; queries scan them meanwhile", {
          error: (e as Error).message,
        });
        return;
      }
      this.#scheduleIndex();
    }, 0);
  }

  #diskFullError(readings: number): DiskFullError {
    return new DiskFullError(
      `Cannot store ${readings} reading(s): the disk holding buffer "${this.#path}" is full (${
        this.#diskFull?.error ?? "database or disk is full"
      }); nothing was stored, send again later`,
    );
  }

  /**
   * Runs `fn` in a write transaction. In-memory state `fn` changes (counters, floor, acknowledged
   * ranges, series ids, next sequence number) stands only if the commit succeeds; any failure puts
   * it back as it was, so memory always equals the file.
   */
  #transaction<T>(fn: () => T): T {
    const snap = this.#snapshot();
    this.#txnSeries = [];
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      const out = fn();
      if (this.#ownerUnwritten) this.#setMeta.run("owner", this.#owner);
      this.#fault?.("commit");
      this.#db.exec("COMMIT");
      this.#ownerUnwritten = false;
      this.#txnSeries = [];
      this.#commits++;
      this.#lastCommitMono = performance.now();
      this.#lastCommitAt = this.#now();
      this.#lastCommitError = null;
      return out;
    } catch (e) {
      try {
        // SQLite ends the transaction itself on some errors (SQLITE_FULL among them).
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      } catch { /* the connection is gone; nothing was committed */ }
      this.#restore(snap);
      this.#commitFailed(e);
      throw e;
    }
  }

  #snapshot(): Snapshot {
    return {
      nextSeq: this.#nextSeq,
      floor: this.#floor,
      acked: this.#acked.map(([lo, hi]) => [lo, hi] as SeqRange),
      ackDirty: this.#ackDirty,
      ackedInFile: this.#ackedInFile,
      rows: this.#rows,
      pending: this.#pending,
      localRows: this.#localRows,
      counters: { ...this.#counters },
      seriesLength: this.#series.length,
      indexedHi: this.#indexedHi,
      atCap: this.#atCap,
      episodeDropped: this.#episodeDropped,
    };
  }

  #restore(s: Snapshot): void {
    this.#nextSeq = s.nextSeq;
    this.#floor = s.floor;
    this.#acked = s.acked;
    this.#ackDirty = s.ackDirty;
    this.#ackedInFile = s.ackedInFile;
    this.#rows = s.rows;
    this.#pending = s.pending;
    this.#localRows = s.localRows;
    this.#counters = s.counters;
    for (const key of this.#txnSeries) this.#seriesIds.delete(key);
    this.#txnSeries = [];
    this.#series.length = s.seriesLength;
    this.#indexedHi = s.indexedHi;
    this.#atCap = s.atCap;
    this.#episodeDropped = s.episodeDropped;
  }

  #commitFailed(e: unknown): void {
    const now = this.#now();
    const error = (e as Error)?.message ?? String(e);
    this.#commitFailures++;
    this.#lastCommitError = { at: now, error };
    if (!isDiskFull(e)) return;
    this.#retryAt = now + 1000;
    if (!this.#diskFull) {
      this.#diskFull = { since: now, error };
      this.#log.error(
        "DISK FULL: buffer commits fail; refusing new readings (senders are told to resend), forwarding and evicting go on",
        { file: this.#path, error, reserve: this.#reserve },
      );
    }
    if (this.#reserve === "ready" && releaseReserve(this.#path)) {
      this.#reserve = "released";
      this.#log.warn("released the buffer's reserve file so eviction and checkpoints can run", {
        file: reservePath(this.#path),
        bytes: this.#config.reserve,
      });
    }
    this.#scheduleMaintain();
  }

  /** Called once the file is open: the start-up state of the disk and the reserve file. */
  #afterOpen(startedFull: string | undefined): void {
    if (startedFull !== undefined && !this.#diskFull) {
      this.#diskFull = { since: this.#now(), error: startedFull };
      this.#retryAt = this.#now() + 1000;
    }
    this.#reserve = this.#config.reserve > 0 ? "released" : "off";
    // Started on a full disk: the reserve makes the room the first commits need.
    if (this.#diskFull) releaseReserve(this.#path);
    else this.#ensureReserve();
    if (this.#reserve === "released" || this.#diskFull) this.#scheduleMaintain();
    this.#checkDisk();
  }

  /**
   * Creates the reserve file when it is missing and the disk has room for it with at least
   * max(minFreeDisk, reserve) left over; true when the reserve is in place (or turned off).
   */
  #ensureReserve(): boolean {
    const size = this.#config.reserve;
    if (size <= 0) {
      this.#reserve = "off";
      return true;
    }
    const file = reservePath(this.#path);
    try {
      if (Deno.statSync(file).size >= size) {
        this.#reserve = "ready";
        return true;
      }
    } catch { /* missing */ }
    let free: number;
    try {
      free = this.#freeDisk(this.#path);
    } catch {
      return false;
    }
    if (free < size + Math.max(this.#config.minFreeDisk, size)) return false;
    const tmp = `${file}.tmp`;
    try {
      // Real bytes: a sparse file would reserve nothing.
      const f = Deno.openSync(tmp, { create: true, write: true, truncate: true });
      try {
        const chunk = new Uint8Array(Math.min(size, 1 << 20));
        for (let done = 0; done < size;) {
          done += f.writeSync(chunk.subarray(0, Math.min(chunk.length, size - done)));
        }
      } finally {
        f.close();
      }
      Deno.renameSync(tmp, file);
      this.#reserve = "ready";
      return true;
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch { /* never created */ }
      return false;
    }
  }

  #scheduleMaintain(): void {
    if (this.#closed || this.#maintainTimer !== undefined) return;
    this.#maintainTimer = setTimeout(() => this.#maintain(), 1000);
  }

  /**
   * Once a second while the disk is full or the reserve is released: persists acknowledgements,
   * shrinks the WAL, and recreates the reserve when space came back.
   */
  #maintain(): void {
    this.#maintainTimer = undefined;
    if (this.#closed) return;
    if (this.#ackDirty) this.#persistAcks();
    if (this.#diskFull) {
      try {
        this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch { /* a reader holds it, or no room yet: next time */ }
    }
    if (this.#reserve === "released" && this.#ensureReserve()) {
      this.#log.info("disk space is back: buffer reserve file recreated", {
        file: reservePath(this.#path),
      });
    }
    if (this.#diskFull && this.#reserve !== "released") {
      // Room again (the reserve is back, or there is none to wait for): a one-row commit tells.
      try {
        this.#transaction(() => this.#setMeta.run("next_seq", this.#nextSeq));
        this.#log.info("buffer takes readings again after the disk was full", {
          fullForMs: this.#now() - this.#diskFull.since,
        });
        this.#diskFull = null;
      } catch { /* still full; #commitFailed keeps this going */ }
    }
    if (this.#reserve === "released" || this.#diskFull) this.#scheduleMaintain();
  }

  #insertRows(values: (number | string | null)[], n: number, local: boolean): void {
    const cache = local ? this.#insertLocalStmts : this.#insertStmts;
    let stmt = cache.get(n);
    if (!stmt) {
      stmt = this.#db.prepare(
        `INSERT INTO ${local ? "local_readings" : "readings"}(seq, ts, sid, value) VALUES ` +
          Array(n).fill("(?,?,?,?)").join(","),
      );
      cache.set(n, stmt);
    }
    this.#fault?.("insert");
    stmt.run(...values);
  }

  /** Distinct series (device, metric, unit, value kind) the file holds. */
  get seriesCount(): number {
    return this.#seriesIds.size;
  }

  /** Most series the file takes (`maxSeries`): each costs heap for as long as the file lives. */
  get maxSeries(): number {
    return this.#config.maxSeries;
  }

  /** Whether readings like `r` are stored in a series the file already holds. */
  hasSeries(r: Reading): boolean {
    return this.#seriesIds.has(seriesKey(r));
  }

  #seriesId(r: Reading): number {
    const key = seriesKey(r);
    let id = this.#seriesIds.get(key);
    if (id === undefined) {
      const kind = kindOf(r.value);
      const unit = r.unit ?? "";
      id = this.#series.length || 1;
      this.#fault?.("series");
      this.#insertSeries.run(id, r.device, r.metric, unit, kind);
      this.#series[id] = { device: r.device, metric: r.metric, unit, kind };
      this.#seriesIds.set(key, id);
      this.#txnSeries.push(key);
    }
    return id;
  }

  #refreshBytes(force = false): void {
    const now = this.#now();
    if (!force && now - this.#bytesCheckedAt < 250) return;
    this.#bytesCheckedAt = now;
    const pc = Number((this.#pageCount.get() as { page_count: number }).page_count);
    const fl = Number((this.#freelistCount.get() as { freelist_count: number }).freelist_count);
    this.#usedBytes = (pc - fl) * this.#pageSize;
  }

  /** Free space, at every commit (one statfs, ~2 µs): a floor checked now and then is overrun. */
  #checkDisk(): void {
    // Space came back since the reserve went: take it back before deciding the disk is low.
    if (this.#reserve === "released" && this.#ensureReserve()) {
      this.#log.info("disk space is back: buffer reserve file recreated", {
        file: reservePath(this.#path),
      });
    }
    try {
      this.#freeBytes = this.#freeDisk(this.#path);
    } catch {
      this.#freeBytes = null;
    }
    this.#diskLow = (this.#freeBytes !== null && this.#freeBytes < this.#config.minFreeDisk) ||
      this.#reserve === "released";
  }

  /**
   * Returns how many of `incoming` readings may be inserted, deleting rows first when a cap binds
   * (drop-oldest) or limiting the count (reject-new).
   */
  #makeRoom(incoming: number): number {
    this.#checkDisk();
    // Two pragmas per commit: cheap, and a size estimate that lags lets a burst overshoot the cap.
    this.#refreshBytes(true);
    const cfg = this.#config;
    const bytesPerRow = this.#rows > 0 ? Math.max(16, this.#usedBytes / this.#rows) : 64;
    let excess = 0;
    let cap: BufferStats["atCap"] = null;
    const overRows = this.#rows + incoming - cfg.maxRows;
    if (overRows > 0) {
      excess = overRows;
      cap = "rows";
    }
    const byteLimit = this.#diskLow ? Math.min(cfg.maxBytes, this.#usedBytes) : cfg.maxBytes;
    const overBytes = this.#usedBytes + incoming * bytesPerRow - byteLimit;
    if (overBytes > 0) {
      const n = Math.ceil(overBytes / bytesPerRow);
      if (n > excess) {
        excess = n;
        cap = this.#diskLow ? "disk" : "bytes";
      }
    }
    if (excess <= 0) {
      this.#endEpisode();
      return incoming;
    }
    if (cfg.overflow === "reject-new") {
      // Space freed by forwarded and local-only rows is reusable without losing anything pending.
      const freed = this.#evictDone(excess);
      const room = Math.max(0, incoming - (excess - freed));
      this.#startEpisode(cap, incoming - room);
      return room;
    }
    const freed = this.#evictDone(excess);
    const dropped = excess > freed ? this.#dropOldestPending(excess - freed) : 0;
    this.#startEpisode(cap, dropped);
    return incoming;
  }

  #startEpisode(cap: BufferStats["atCap"], lost: number): void {
    if (this.#atCap === null) {
      const mode = this.#config.overflow;
      this.#log.warn(
        mode === "reject-new"
          ? `buffer at its ${cap} cap: refusing new readings until the uplink drains it`
          : `buffer at its ${cap} cap: deleting forwarded, then oldest unforwarded readings`,
        { rows: this.#rows, bytes: this.#usedBytes, cap },
      );
    }
    this.#atCap = cap;
    this.#episodeDropped += lost;
  }

  #endEpisode(): void {
    if (this.#atCap === null) return;
    this.#log.warn("buffer below its caps again", {
      cap: this.#atCap,
      [this.#config.overflow === "reject-new" ? "refused" : "droppedUnforwarded"]:
        this.#episodeDropped,
    });
    this.#atCap = null;
    this.#episodeDropped = 0;
  }

  /**
   * Deletes about `n` rows that need no more forwarding, forwarded and local-only alike, oldest
   * (by sequence number) first; returns how many went.
   */
  #evictDone(n: number): number {
    this.#fault?.("evict");
    if (this.#localRows === 0) return this.#evictForwarded(n);
    const local = (this.#oldestLocal.all(n) as { seq: number }[]).map((r) => Number(r.seq));
    const forwarded = this.#oldestForwarded(n);
    // Merge the two oldest-first lists to split the n oldest between them.
    let l = 0;
    let f = 0;
    while (l + f < n && (l < local.length || f < forwarded.length)) {
      if (f >= forwarded.length || (l < local.length && local[l] < forwarded[f])) l++;
      else f++;
    }
    let freed = f > 0 ? this.#evictForwarded(f) : 0;
    if (l > 0) {
      const gone = Number(this.#deleteLocalUpTo.run(local[l - 1]).changes);
      this.#rows -= gone;
      this.#localRows -= gone;
      this.#counters.evictedLocal += gone;
      freed += gone;
    }
    return freed;
  }

  /** Sequence numbers of the `n` oldest forwarded rows, oldest first. */
  #oldestForwarded(n: number): number[] {
    const out: number[] = [];
    const take = (lo: number, hi: number) => {
      const rows = this.#seqsInRange.all(lo, hi, n - out.length) as { seq: number }[];
      for (const r of rows) out.push(Number(r.seq));
    };
    if (this.#floor > 0) take(0, this.#floor);
    for (const [lo, hi] of this.#acked) {
      if (out.length >= n) break;
      take(lo - 1, hi);
    }
    return out;
  }

  /** Deletes up to `n` forwarded rows, oldest first; returns how many went. */
  #evictForwarded(n: number): number {
    let freed = 0;
    if (this.#floor > 0) {
      const boundary = this.#nthForwarded.get(this.#floor, n - 1) as { seq: number } | undefined;
      const hi = boundary ? Number(boundary.seq) : this.#floor;
      freed += Number(this.#deleteRange.run(0, hi).changes);
    }
    for (const [lo, hi] of this.#acked) {
      if (freed >= n) break;
      freed += Number(this.#deleteRange.run(lo - 1, hi).changes);
    }
    this.#rows -= freed;
    this.#counters.evictedForwarded += freed;
    return freed;
  }

  /** Deletes the `n` oldest unforwarded rows, counting each exactly; moves the floor past them. */
  #dropOldestPending(n: number): number {
    this.#fault?.("drop");
    const boundary = this.#nthPending.get(this.#floor, n - 1) as { seq: number } | undefined;
    const hi = boundary ? Number(boundary.seq) : this.#nextSeq - 1;
    const del = this.#deleteRange;
    let dropped = 0;
    let from = this.#floor;
    for (const [lo, ahi] of this.#acked) {
      if (lo > hi) break;
      dropped += Number(del.run(from, Math.min(lo - 1, hi)).changes);
      from = Math.max(from, ahi);
    }
    if (from < hi) dropped += Number(del.run(from, hi).changes);
    // Acked rows inside the dropped range were deleted by #evictForwarded already.
    this.#rows -= dropped;
    this.#pending -= dropped;
    this.#counters.droppedUnforwarded += dropped;
    this.#setFloor(hi);
    return dropped;
  }

  #setFloor(floor: number): void {
    this.#floor = Math.max(this.#floor, floor);
    while (this.#acked.length && this.#acked[0][0] <= this.#floor + 1) {
      this.#floor = Math.max(this.#floor, this.#acked[0][1]);
      this.#acked.shift();
    }
    this.#ackDirty = true;
  }

  /**
   * Marks every reading with a sequence number in `[lo, hi]` as forwarded. Only call after the
   * uplink confirmed delivery. Acknowledging a range twice is harmless.
   */
  ack(lo: number, hi: number): void {
    if (hi < lo || hi <= this.#floor) return;
    this.#pending -= this.#countUnacked(lo, hi);
    if (lo <= this.#floor + 1) this.#setFloor(hi);
    else {
      // Insert keeping ranges sorted and merged.
      const list = this.#acked;
      let i = 0;
      while (i < list.length && list[i][0] < lo) i++;
      list.splice(i, 0, [lo, hi]);
      const merged: SeqRange[] = [];
      for (const r of list) {
        const last = merged[merged.length - 1];
        if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
        else merged.push([r[0], r[1]]);
      }
      this.#acked = merged;
      this.#ackDirty = true;
    }
    if (this.#ackTimer === undefined && !this.#closed) this.#armAckTimer();
  }

  /**
   * Acknowledgements are written with the next commit of readings, or on their own one commit
   * window later when no readings are waiting: a lost acknowledgement only re-sends readings.
   */
  #armAckTimer(): void {
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#closed || !this.#ackDirty) return;
      if (this.#queue.length > 0) this.#armAckTimer();
      else this.#persistAcks();
    }, Math.max(100, this.#config.commitWindow));
  }

  #writeAcks(): void {
    this.#fault?.("acks");
    this.#setMeta.run("ack_floor", this.#floor);
    // Clearing an empty table still rewrites its root page: one page per commit, for nothing.
    if (this.#ackedInFile || this.#acked.length) this.#db.exec("DELETE FROM acked");
    if (this.#acked.length) {
      const ins = this.#db.prepare("INSERT INTO acked(lo, hi) VALUES (?, ?)");
      for (const [lo, hi] of this.#acked) ins.run(lo, hi);
    }
    this.#ackedInFile = this.#acked.length > 0;
    this.#ackDirty = false;
  }

  #persistAcks(): void {
    try {
      this.#transaction(() => this.#writeAcks());
    } catch (e) {
      this.#log.error("cannot persist acknowledgements; they will be resent", {
        error: (e as Error).message,
      });
    }
  }

  /** Readings not yet acknowledged; kept in memory, no query. */
  get pending(): number {
    return this.#pending;
  }

  /** Highest sequence number given so far (0 when none). */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  /** All readings up to this sequence number are forwarded. */
  get ackFloor(): number {
    return this.#floor;
  }

  /**
   * Reads up to `limit` pending readings with `after < seq ≤ upto`, in sequence order, skipping
   * ranges already acknowledged. Returns them and `scannedTo`, the last sequence number examined,
   * so a caller can continue from there and acknowledge the whole span it covered.
   */
  readPending(
    after: number,
    limit: number,
    upto = Number.MAX_SAFE_INTEGER,
  ): { readings: StoredReading[]; scannedTo: number } {
    const out: StoredReading[] = [];
    let cursor = Math.max(after, this.#floor);
    const acked = this.#acked;
    let i = 0;
    while (out.length < limit && cursor < upto) {
      while (i < acked.length && acked[i][1] <= cursor) i++;
      if (i < acked.length && acked[i][0] <= cursor + 1) {
        cursor = acked[i][1];
        i++;
        continue;
      }
      const stop = i < acked.length ? Math.min(upto, acked[i][0] - 1) : upto;
      const want = limit - out.length;
      const rows = this.#readRange.all(cursor, stop, want) as unknown as RawRow[];
      for (const row of rows) out.push(this.#toReading(row));
      cursor = rows.length === want ? Number(rows[rows.length - 1].seq) : stop;
    }
    return { readings: out, scannedTo: Math.min(cursor, this.lastSeq) };
  }

  /** Rows in `[lo, hi]` that are neither below the floor nor inside an acknowledged range. */
  #countUnacked(lo: number, hi: number): number {
    const count = this.#countRange;
    let from = Math.max(lo - 1, this.#floor);
    let n = 0;
    for (const [alo, ahi] of this.#acked) {
      if (ahi <= from) continue;
      if (alo > hi) break;
      if (alo - 1 > from) n += Number((count.get(from, alo - 1) as { n: number }).n);
      from = Math.max(from, ahi);
    }
    if (hi > from) n += Number((count.get(from, hi) as { n: number }).n);
    return n;
  }

  #toReading(row: RawRow): StoredReading {
    const s = this.#series[Number(row.sid)];
    let value: ReadingValue = row.value as ReadingValue;
    if (s.kind === KIND_BOOL) value = row.value === 1;
    else if (s.kind === KIND_NUMBER) value = Number(row.value);
    const r: StoredReading = {
      seq: Number(row.seq),
      device: s.device,
      metric: s.metric,
      value,
      ts: Number(row.ts),
    };
    if (s.unit) r.unit = s.unit;
    return r;
  }

  /**
   * Stored readings (forwarded, pending or local-only) matching the filter, in sequence order, at
   * most `limit` (default 10,000). Page with `afterSeq` set to the last sequence number returned.
   */
  query(q: QueryOptions = {}): StoredReading[] {
    const limit = q.limit ?? 10_000;
    const sids: number[] = [];
    this.#series.forEach((s, id) => {
      if (
        s && (q.device === undefined || s.device === q.device) &&
        (q.metric === undefined || s.metric === q.metric)
      ) sids.push(id);
    });
    if (sids.length === 0) return [];
    const out: StoredReading[] = [];
    const rows = selectRows(this.#db, {
      sids: q.device !== undefined || q.metric !== undefined ? sids : undefined,
      from: q.from,
      to: q.to,
      afterSeq: q.afterSeq,
      hasLocal: this.#localRows > 0,
      pageSize: Math.min(limit, 5000),
    });
    for (const r of rows) {
      out.push(this.#toReading(r));
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Records that the uplink refused `[lo, hi]` for good (e.g. HTTP 400): the readings stay in the
   * buffer for export, are listed in status, and no longer block the queue.
   */
  setAside(lo: number, hi: number, reason: string): void {
    const insert = this.#db.prepare(
      "INSERT INTO aside(lo, hi, reason, at) VALUES (?, ?, ?, ?) ON CONFLICT(lo) DO UPDATE SET hi = excluded.hi, reason = excluded.reason",
    );
    this.#transaction(() => insert.run(lo, hi, reason.slice(0, 500), this.#now()));
    this.ack(lo, hi);
  }

  /** Ranges the uplink refused for good, newest first. */
  setAsideRanges(limit = 20): { lo: number; hi: number; reason: string; at: number }[] {
    return this.#db.prepare("SELECT lo, hi, reason, at FROM aside ORDER BY lo DESC LIMIT ?")
      .all(limit) as unknown as { lo: number; hi: number; reason: string; at: number }[];
  }

  /** Whether `seq` has been acknowledged by the uplink. */
  isForwarded(seq: number): boolean {
    if (seq <= this.#floor) return true;
    return this.#acked.some(([lo, hi]) => seq >= lo && seq <= hi);
  }

  /** Deletes forwarded and local-only readings older than the retention window; returns how many. */
  prune(): number {
    const cutoff = this.#now() - this.#config.retention;
    let total = 0;
    const del = this.#db.prepare(
      "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE seq <= ? AND ts < ? ORDER BY seq LIMIT 5000)",
    );
    const delLocal = this.#db.prepare(
      "DELETE FROM local_readings WHERE seq IN (SELECT seq FROM local_readings WHERE ts < ? ORDER BY seq LIMIT 5000)",
    );
    // One transaction per batch: rows, counters and the file change together or not at all.
    const batch = (local: boolean) =>
      this.#transaction(() => {
        this.#fault?.("prune");
        const n = Number((local ? delLocal.run(cutoff) : del.run(this.#floor, cutoff)).changes);
        if (n) {
          if (local) this.#localRows -= n;
          this.#rows -= n;
          this.#counters.pruned += n;
          this.#setMeta.run("pruned", this.#counters.pruned);
        }
        return n;
      });
    for (;;) {
      const n = batch(false);
      total += n;
      if (n < 5000) break;
    }
    while (this.#localRows > 0) {
      const n = batch(true);
      total += n;
      if (n < 5000) break;
    }
    if (total > 0) this.#dropIndexedBelowOldest();
    return total;
  }

  /** Drops the index chunks of readings all gone. */
  #dropIndexedBelowOldest(): void {
    const oldest = Number(
      (this.#db.prepare(
        "SELECT min(m) AS m FROM (SELECT min(seq) AS m FROM readings UNION ALL SELECT min(seq) FROM local_readings)",
      ).get() as { m: number | null }).m ?? this.#nextSeq,
    );
    try {
      this.#transaction(() => dropChunksBelow(this.#db, oldest));
    } catch { /* stale chunks only cost space; next prune tries again */ }
  }

  /** Oldest pending reading's source timestamp, or null when nothing is pending. */
  oldestPendingTs(): number | null {
    if (this.#pending <= 0) return null;
    const first = this.readPending(this.#floor, 1).readings[0];
    return first ? first.ts : null;
  }

  /** Current counters and gauges. */
  stats(): BufferStats {
    this.#refreshBytes();
    this.#checkDisk();
    return {
      file: this.#path,
      epoch: this.#epoch,
      rows: this.#rows,
      pending: this.#pending,
      bytes: this.#usedBytes,
      nextSeq: this.#nextSeq,
      ackFloor: this.#floor,
      oldestPendingTs: this.oldestPendingTs(),
      lastAppendTs: this.#lastAppendTs,
      ...this.#counters,
      localOnly: this.#localRows,
      atCap: this.#atCap,
      quarantined: [...this.#quarantined],
      diskFull: this.#diskFull ? { ...this.#diskFull } : null,
      freeDisk: this.#freeBytes,
      reserve: this.#reserve,
      lastCommitAt: this.#lastCommitAt,
      lastCommitError: this.#lastCommitError ? { ...this.#lastCommitError } : null,
      commitFailures: this.#commitFailures,
      commits: this.#commits,
    };
  }

  /** Commits what is queued, persists acknowledgements and closes the file. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    if (this.#ackDirty) this.#persistAcks();
    this.#closed = true;
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#maintainTimer);
    clearTimeout(this.#indexTimer);
    try {
      this.#db.prepare("DELETE FROM meta WHERE key = 'owner' AND value = ?").run(this.#owner);
    } catch { /* the next open sees this process gone and takes over */ }
    this.#db.close();
  }
}
