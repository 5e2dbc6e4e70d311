/**
 * The `Buffer` facade: the durable store of readings as its users see it. The parts behind it
 * each hold one concern — opening (`_open.ts`), the shared file and transaction (`_core.ts`),
 * group commit (`_commit.ts`), series (`_series.ts`), caps (`_capacity.ts`), the disk
 * (`_disk.ts`), acknowledgements (`_acks.ts`), reads and pruning (`_query.ts`).
 *
 * @module
 */
import type { BufferConfig } from "../config/gateway.ts";
import type { Reading, StoredReading } from "../reading.ts";
import { BufferError } from "./errors.ts";
import type {
  AppendOptions,
  AppendResult,
  BufferOptions,
  BufferStats,
  QueryOptions,
} from "./types.ts";
import { Core } from "./_core.ts";
import { Disk } from "./_disk.ts";
import { Acks } from "./_acks.ts";
import { Capacity } from "./_capacity.ts";
import { GroupCommit } from "./_commit.ts";
import { type AsideRange, Queries } from "./_query.ts";
import { loadFile, type Opened, openFile } from "./_open.ts";
import { Arrivals } from "./_arrival.ts";

export { BufferError, BufferFullError, DiskFullError, isDiskFull } from "./errors.ts";
export type {
  AppendOptions,
  AppendResult,
  BufferOptions,
  BufferStats,
  FaultStep,
  QueryOptions,
  SeqRange,
} from "./types.ts";
export { seriesKey } from "./_series.ts";
export { WIDE_COMMIT_ROWS } from "./_commit.ts";

/**
 * The durable store of readings: SQLite in WAL mode, grouped inserts, sequence numbers that
 * survive restarts, acknowledged ranges, caps with exact drop counting and a retention window.
 * A reading is accepted once the promise of {@linkcode Buffer.append} resolves.
 */
export class Buffer {
  readonly #core: Core;
  readonly #disk: Disk;
  readonly #acks: Acks;
  readonly #capacity: Capacity;
  readonly #commit: GroupCommit;
  readonly #queries: Queries;
  readonly #quarantined: string[];
  readonly #arrivals = new Arrivals();
  #listeners = new Set<() => void>();

  private constructor(config: BufferConfig, opts: BufferOptions, opened: Opened) {
    const core = new Core(opened.db, config, opts);
    this.#core = core;
    this.#quarantined = opened.quarantined;
    this.#disk = new Disk(core, opts, () => this.#acks.persist());
    core.onCommitFailure = (e, now) => this.#disk.commitFailed(e, now);
    loadFile(core, this.#disk);
    this.#acks = new Acks(core, () => this.#commit.busy);
    core.mirror.pending = this.#acks.countPending();
    this.#capacity = new Capacity(core, this.#disk, this.#acks);
    this.#queries = new Queries(core, this.#acks);
    this.#commit = new GroupCommit({
      core,
      disk: this.#disk,
      acks: this.#acks,
      capacity: this.#capacity,
      chunks: this.#queries.chunks,
      committed: () => {
        this.#arrivals.note(core.mirror.nextSeq - 1, core.now());
        for (const l of this.#listeners) l();
        this.#queries.scheduleIndex();
      },
    });
    this.#disk.afterOpen(opened.startedFull);
    // What was pending before this process has no arrival time: count it from now.
    if (core.mirror.pending > 0) this.#arrivals.note(core.mirror.nextSeq - 1, core.now());
  }

  /**
   * Opens (or creates) the buffer file. A file SQLite reports as corrupt is renamed to
   * `<file>.corrupt-<time>` with a loud error, and a fresh buffer is started in its place.
   */
  static open(config: BufferConfig, opts: BufferOptions): Buffer {
    return openFile(config, opts, (opened) => new Buffer(config, opts, opened));
  }

  /** The random id of this buffer file; with a sequence number it identifies a reading. */
  get epoch(): string {
    return this.#core.epoch;
  }

  /** The file path. */
  get path(): string {
    return this.#core.path;
  }

  /** Applies a reloaded config; caps and timings change, the file stays open. */
  reconfigure(config: BufferConfig): void {
    const core = this.#core;
    if (config.path !== core.path) {
      core.log.warn("buffer.path changed; the new path takes effect after a restart", {
        current: core.path,
        configured: config.path,
      });
    }
    core.config = { ...config, path: core.path };
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
    if (this.#core.closed) return Promise.reject(new BufferError("buffer is closed"));
    if (readings.length === 0) return Promise.resolve({ seqs: [], rejected: 0 });
    return this.#commit.append(readings, opts);
  }

  /** Commits everything queued now, in one transaction. */
  flush(): void {
    this.#commit.flush();
  }

  /** Distinct series (device, metric, unit, value kind) the file holds. */
  get seriesCount(): number {
    return this.#core.series.size;
  }

  /** Most series the file takes (`maxSeries`): each costs heap for as long as the file lives. */
  get maxSeries(): number {
    return this.#core.config.maxSeries;
  }

  /** Whether readings like `r` are stored in a series the file already holds. */
  hasSeries(r: Reading): boolean {
    return this.#core.series.has(r);
  }

  /**
   * Marks every reading with a sequence number in `[lo, hi]` as forwarded. Only call after the
   * uplink confirmed delivery. Acknowledging a range twice is harmless.
   */
  ack(lo: number, hi: number): void {
    this.#acks.ack(lo, hi);
  }

  /** Readings not yet acknowledged; kept in memory, no query. */
  get pending(): number {
    return this.#core.mirror.pending;
  }

  /** Highest sequence number given so far (0 when none). */
  get lastSeq(): number {
    return this.#core.mirror.nextSeq - 1;
  }

  /** All readings up to this sequence number are forwarded. */
  get ackFloor(): number {
    return this.#core.mirror.floor;
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
    return this.#queries.readPending(after, limit, upto);
  }

  /**
   * Stored readings (forwarded, pending or local-only) matching the filter, in sequence order, at
   * most `limit` (default 10,000). Page with `afterSeq` set to the last sequence number returned.
   */
  query(q: QueryOptions = {}): StoredReading[] {
    return this.#queries.query(q);
  }

  /**
   * How many readings `query` would return for the filter without a limit, counted from the
   * series index where it can (a total for progress: rows deleted since may still be counted).
   */
  count(q: Omit<QueryOptions, "limit"> = {}): number {
    return this.#queries.count(q);
  }

  /** The series the file holds (device, metric, unit), for pickers; at most `buffer.maxSeries`. */
  series(): { device: string; metric: string; unit: string }[] {
    return this.#core.series.list();
  }

  /**
   * Records that the uplink refused `[lo, hi]` for good (e.g. HTTP 400): the readings stay in the
   * buffer for export, are listed in status, and no longer block the queue.
   */
  setAside(lo: number, hi: number, reason: string): void {
    this.#queries.setAside(lo, hi, reason);
  }

  /** Ranges the uplink refused for good, newest first. */
  setAsideRanges(limit = 20): AsideRange[] {
    return this.#queries.setAsideRanges(limit);
  }

  /** Whether `seq` has been acknowledged by the uplink. */
  isForwarded(seq: number): boolean {
    return this.#acks.isForwarded(seq);
  }

  /** Deletes forwarded and local-only readings older than the retention window; returns how many. */
  prune(): number {
    return this.#queries.prune();
  }

  /** Oldest pending reading's source timestamp, or null when nothing is pending. */
  oldestPendingTs(): number | null {
    return this.#queries.oldestPendingTs();
  }

  /**
   * When the oldest pending reading arrived (was stored), or null when nothing is pending. For a
   * reading pending since before this process opened the file, the open counts as its arrival.
   */
  oldestPendingArrivalTs(): number | null {
    const m = this.#core.mirror;
    this.#arrivals.trim(m.floor);
    if (m.pending <= 0) return null;
    const first = this.#queries.readPending(m.floor, 1, Number.MAX_SAFE_INTEGER).readings[0];
    return first ? this.#arrivals.arrivalOf(first.seq) : null;
  }

  /** Current counters and gauges. */
  stats(): BufferStats {
    const core = this.#core;
    const m = core.mirror;
    const disk = this.#disk;
    this.#capacity.refreshBytes();
    disk.check();
    return {
      file: core.path,
      epoch: core.epoch,
      rows: m.rows,
      pending: m.pending,
      bytes: this.#capacity.usedBytes,
      nextSeq: m.nextSeq,
      ackFloor: m.floor,
      oldestPendingTs: this.oldestPendingTs(),
      oldestPendingArrivalTs: this.oldestPendingArrivalTs(),
      lastAppendTs: this.#commit.lastAppendTs,
      ...m.counters,
      localOnly: m.localRows,
      atCap: m.atCap,
      quarantined: [...this.#quarantined],
      diskFull: disk.full ? { ...disk.full } : null,
      freeDisk: disk.freeBytes,
      reserve: disk.reserve,
      lastCommitAt: core.lastCommitAt,
      lastCommitError: core.lastCommitError ? { ...core.lastCommitError } : null,
      commitFailures: core.commitFailures,
      commits: core.commits,
    };
  }

  /** Commits what is queued, persists acknowledgements and closes the file. */
  close(): void {
    const core = this.#core;
    if (core.closed) return;
    this.flush();
    if (core.mirror.ackDirty) this.#acks.persist();
    core.closed = true;
    this.#acks.close();
    this.#disk.close();
    this.#queries.close();
    try {
      core.db.prepare("DELETE FROM meta WHERE key = 'owner' AND value = ?").run(core.owner);
    } catch { /* the next open sees this process gone and takes over */ }
    core.db.close();
  }
}
