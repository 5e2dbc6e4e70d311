/**
 * What the parts of the buffer share: the open file, the in-memory mirror of what it holds, and
 * the write transaction that keeps the two equal. The rule every part follows: state that mirrors
 * the file lives in {@linkcode Mirror} (or the series dictionary) and is changed only inside
 * {@linkcode Core.transaction}, which puts it back when the transaction fails.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import type { BufferConfig } from "../config/gateway.ts";
import type { BufferOptions, BufferStats, Counter, FaultStep, SeqRange } from "./types.ts";
import type { SeriesDict } from "./_series.ts";

/** The in-memory mirror of the file: changed inside a transaction, put back if it fails. */
export interface Mirror {
  nextSeq: number;
  /** Every reading up to this sequence number is forwarded. */
  floor: number;
  /** Acknowledged ranges above the floor, sorted and merged. */
  acked: SeqRange[];
  /** Whether `floor`/`acked` changed since they were last written. */
  ackDirty: boolean;
  /** Whether the `acked` table holds rows (as of the last commit). */
  ackedInFile: boolean;
  rows: number;
  pending: number;
  localRows: number;
  counters: Record<Counter, number>;
  /** Highest sequence number the series index covers; past it, queries scan. */
  indexedHi: number;
  atCap: BufferStats["atCap"];
  /** Readings dropped (or refused) since the cap started binding. */
  episodeDropped: number;
}

function copy(m: Mirror): Mirror {
  return {
    ...m,
    acked: m.acked.map(([lo, hi]) => [lo, hi] as SeqRange),
    counters: { ...m.counters },
  };
}

/** The open buffer file and its mirror, shared by the parts of the buffer. */
export class Core {
  readonly db: DatabaseSync;
  readonly path: string;
  config: BufferConfig;
  readonly log: Logger;
  readonly now: () => number;
  readonly fault: ((step: FaultStep) => void) | undefined;
  readonly mirror: Mirror = {
    nextSeq: 1,
    floor: 0,
    acked: [],
    ackDirty: false,
    ackedInFile: true,
    rows: 0,
    pending: 0,
    localRows: 0,
    counters: {
      droppedUnforwarded: 0,
      evictedForwarded: 0,
      evictedLocal: 0,
      rejectedFull: 0,
      pruned: 0,
    },
    indexedHi: 0,
    atCap: null,
    episodeDropped: 0,
  };
  /** Set once the file is loaded (see `_open.ts`). */
  series!: SeriesDict;
  setMeta!: StatementSync;
  epoch = "";
  /** The owner row this process wrote (removed again on close). */
  owner = "";
  /** The owner row could not be written at open (disk full): the first commit writes it. */
  ownerUnwritten = false;
  closed = false;
  /** Transactions committed this run. */
  commits = 0;
  /** When the last commit ended (monotonic ms). */
  lastCommitMono = -Infinity;
  lastCommitAt: number | null = null;
  lastCommitError: BufferStats["lastCommitError"] = null;
  commitFailures = 0;
  /** Told of every failed transaction, after the rollback (the disk-full handling). */
  onCommitFailure: (e: unknown, now: number) => void = () => {};

  /** Holds the opened file; nothing is read yet. */
  constructor(db: DatabaseSync, config: BufferConfig, opts: BufferOptions) {
    this.db = db;
    this.path = config.path;
    this.config = config;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.fault = opts.fault;
  }

  /**
   * Runs `fn` in a write transaction. In-memory state `fn` changes (the mirror and series ids)
   * stands only if the commit succeeds; any failure puts it back as it was, so memory always
   * equals the file.
   */
  transaction<T>(fn: () => T): T {
    const snap = copy(this.mirror);
    this.series.begin();
    try {
      this.db.exec("BEGIN IMMEDIATE");
      const out = fn();
      if (this.ownerUnwritten) this.setMeta.run("owner", this.owner);
      this.fault?.("commit");
      this.db.exec("COMMIT");
      this.ownerUnwritten = false;
      this.series.commit();
      this.commits++;
      this.lastCommitMono = performance.now();
      this.lastCommitAt = this.now();
      this.lastCommitError = null;
      return out;
    } catch (e) {
      try {
        // SQLite ends the transaction itself on some errors (SQLITE_FULL among them).
        if (this.db.isTransaction) this.db.exec("ROLLBACK");
      } catch { /* the connection is gone; nothing was committed */ }
      Object.assign(this.mirror, snap);
      this.series.rollback();
      const now = this.now();
      this.commitFailures++;
      this.lastCommitError = { at: now, error: (e as Error)?.message ?? String(e) };
      this.onCommitFailure(e, now);
      throw e;
    }
  }
}
