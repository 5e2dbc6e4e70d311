/**
 * The buffer's public types: options, results and statistics.
 *
 * @module
 */
import type { Logger } from "../log.ts";

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
  /** When the oldest pending reading was stored (its arrival; see `Buffer.oldestPendingArrivalTs`). */
  oldestPendingArrivalTs: number | null;
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

/** The buffer's counters kept in the file (`meta`), as named in {@linkcode BufferStats}. */
export const COUNTERS = [
  "droppedUnforwarded",
  "evictedForwarded",
  "evictedLocal",
  "rejectedFull",
  "pruned",
] as const;

/** One of {@linkcode COUNTERS}. */
export type Counter = typeof COUNTERS[number];
