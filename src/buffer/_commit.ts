/**
 * Group commit: appends queue up and are written together in one transaction, when `commitRows`
 * readings wait or `commitInterval` after the first arrived — or, for a trickle of readings
 * appended with `coalesce`, once per commit window (flash wear). Each append's promise settles
 * only after the transaction holding it committed or failed.
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { Reading } from "../reading.ts";
import { BufferError, DiskFullError, isDiskFull } from "./errors.ts";
import { type AppendOptions, type AppendResult, COUNTERS } from "./types.ts";
import type { Core } from "./_core.ts";
import type { Disk } from "./_disk.ts";
import type { Acks } from "./_acks.ts";
import type { Capacity } from "./_capacity.ts";
import type { ChunkRecorder } from "./series_index.ts";

/**
 * Readings enough to make a commit worth its pages: with fewer waiting, a commit waits for the
 * commit window (at most one such small commit per `commitWindow`).
 */
export const WIDE_COMMIT_ROWS = 32;
const ROWS_PER_STATEMENT = 250;

interface Waiter {
  readings: Reading[];
  local: boolean;
  coalesce: boolean;
  resolve: (r: AppendResult) => void;
  reject: (e: Error) => void;
}

/** What a group commit writes with and tells. */
export interface GroupCommitParts {
  core: Core;
  disk: Disk;
  acks: Acks;
  capacity: Capacity;
  /** Notes each row for the series index. */
  chunks: ChunkRecorder;
  /** Called after each commit that stored readings. */
  committed: () => void;
}

/** The append queue of one buffer and the transaction that writes it. */
export class GroupCommit {
  readonly #core: Core;
  readonly #disk: Disk;
  readonly #acks: Acks;
  readonly #capacity: Capacity;
  readonly #chunks: ChunkRecorder;
  readonly #committed: () => void;
  #insertStmts = new Map<number, StatementSync>();
  #insertLocalStmts = new Map<number, StatementSync>();
  #queue: Waiter[] = [];
  #queued = 0;
  /** Queued appends that may not wait for the commit window. */
  #queuedPrompt = 0;
  /** When the oldest queued reading arrived (monotonic ms). */
  #queuedSince = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  /** When readings were last stored (this run). */
  lastAppendTs: number | null = null;

  /** A queue writing through `parts`. */
  constructor(parts: GroupCommitParts) {
    this.#core = parts.core;
    this.#disk = parts.disk;
    this.#acks = parts.acks;
    this.#capacity = parts.capacity;
    this.#chunks = parts.chunks;
    this.#committed = parts.committed;
  }

  /** Whether appends wait for a commit. */
  get busy(): boolean {
    return this.#queue.length > 0;
  }

  /** Queues readings for the next commit (see `Buffer.append`). */
  append(readings: Reading[], opts?: AppendOptions): Promise<AppendResult> {
    const local = opts?.forward === false;
    return new Promise((resolve, reject) => {
      if (this.#queue.length === 0) this.#queuedSince = performance.now();
      const coalesce = opts?.coalesce === true;
      this.#queue.push({ readings, local, coalesce, resolve, reject });
      this.#queued += readings.length;
      if (!coalesce) this.#queuedPrompt++;
      if (this.#queued >= this.#core.config.commitRows) this.flush();
      else this.#schedule();
    });
  }

  /**
   * When the queued readings are committed: `commitInterval` after the first arrived; but while
   * fewer than {@linkcode WIDE_COMMIT_ROWS} wait, all of them appended with `coalesce`, no sooner
   * than `commitWindow` after the last commit, so a trickle of single readings costs one commit
   * per window, not one each. A reading never waits longer than
   * `max(commitInterval, commitWindow)`.
   */
  #due(): number {
    const cfg = this.#core.config;
    const soon = this.#queuedSince + cfg.commitInterval;
    if (this.#queued >= WIDE_COMMIT_ROWS || this.#queuedPrompt > 0) return soon;
    const widest = this.#queuedSince + cfg.commitWindow;
    return Math.max(soon, Math.min(this.#core.lastCommitMono + cfg.commitWindow, widest));
  }

  #schedule(): void {
    const due = this.#due();
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
      if (this.#core.mirror.ackDirty) this.#acks.persist();
      return;
    }
    const waiters = this.#queue;
    const total = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    this.#queuedPrompt = 0;
    if (this.#disk.refusing()) {
      const err = this.#diskFullError(total);
      for (const w of waiters) w.reject(err);
      return;
    }
    let written: { seqs: number[][]; rejected: number[] };
    try {
      written = this.#core.transaction(() => this.#write(waiters, total));
    } catch (e) {
      const err = isDiskFull(e) ? this.#diskFullError(total) : new BufferError(
        `Cannot write to buffer "${this.#core.path}": ${(e as Error).message}`,
        { cause: e },
      );
      if (!(err instanceof DiskFullError)) {
        this.#core.log.error("buffer write failed; readings not accepted", { error: err.message });
      }
      for (const w of waiters) w.reject(err);
      return;
    }
    const { seqs, rejected } = written;
    if (seqs.some((s) => s.length > 0)) this.lastAppendTs = this.#core.now();
    this.#disk.recovered();
    for (let w = 0; w < waiters.length; w++) {
      waiters[w].resolve({ seqs: seqs[w], rejected: rejected[w] });
    }
    this.#committed();
  }

  /** The body of a commit of readings: room, series, rows, counters and acknowledgements. */
  #write(waiters: Waiter[], total: number): { seqs: number[][]; rejected: number[] } {
    const core = this.#core;
    const m = core.mirror;
    const series = core.series;
    const seqs: number[][] = [];
    const room = this.#capacity.makeRoom(total);
    const rejected = waiters.map(() => 0);
    let allowed = room;
    let seq = m.nextSeq;
    const rowsOut: (number | string | null)[] = [];
    const localOut: (number | string | null)[] = [];
    const chunks = this.#chunks;
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
        const sid = series.idOf(r);
        const v = r.value;
        out.push(seq, r.ts, sid, typeof v === "boolean" ? (v ? 1 : 0) : v);
        chunks.record(seq, sid, r.ts, local);
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
    if (rejectedTotal) m.counters.rejectedFull += rejectedTotal;
    core.fault?.("meta");
    m.nextSeq = seq;
    core.setMeta.run("next_seq", seq);
    for (const c of COUNTERS) core.setMeta.run(c, m.counters[c]);
    if (m.ackDirty) this.#acks.write();
    m.rows += inserted;
    m.localRows += insertedLocal;
    m.pending += inserted - insertedLocal;
    return { seqs, rejected };
  }

  #insertRows(values: (number | string | null)[], n: number, local: boolean): void {
    const cache = local ? this.#insertLocalStmts : this.#insertStmts;
    let stmt = cache.get(n);
    if (!stmt) {
      stmt = this.#core.db.prepare(
        `INSERT INTO ${local ? "local_readings" : "readings"}(seq, ts, sid, value) VALUES ` +
          Array(n).fill("(?,?,?,?)").join(","),
      );
      cache.set(n, stmt);
    }
    this.#core.fault?.("insert");
    stmt.run(...values);
  }

  #diskFullError(readings: number): DiskFullError {
    return new DiskFullError(
      `Cannot store ${readings} reading(s): the disk holding buffer "${this.#core.path}" is full (${
        this.#disk.full?.error ?? "database or disk is full"
      }); nothing was stored, send again later`,
    );
  }
}
