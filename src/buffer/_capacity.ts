/**
 * Caps and eviction: before each commit of readings, room is made under `maxRows`, `maxBytes`
 * and the free-disk floor — forwarded and local-only rows go first, then (drop-oldest) the oldest
 * unforwarded ones, each counted exactly — or the new readings are limited (reject-new).
 * Everything here runs inside the commit's transaction.
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { BufferStats } from "./types.ts";
import type { Core } from "./_core.ts";
import type { Disk } from "./_disk.ts";
import type { Acks } from "./_acks.ts";

/** The caps of one buffer. */
export class Capacity {
  readonly #core: Core;
  readonly #disk: Disk;
  readonly #acks: Acks;
  readonly #pageCount: StatementSync;
  readonly #freelistCount: StatementSync;
  readonly #deleteRange: StatementSync;
  readonly #nthForwarded: StatementSync;
  readonly #nthPending: StatementSync;
  readonly #oldestLocal: StatementSync;
  readonly #seqsInRange: StatementSync;
  readonly #deleteLocalUpTo: StatementSync;
  readonly #pageSize: number;
  #bytesCheckedAt = 0;
  /** Bytes in use by the file (pages not on the free list). */
  usedBytes = 0;

  /** Prepares the statements and measures the file. */
  constructor(core: Core, disk: Disk, acks: Acks) {
    this.#core = core;
    this.#disk = disk;
    this.#acks = acks;
    const db = core.db;
    this.#pageCount = db.prepare("PRAGMA page_count");
    this.#freelistCount = db.prepare("PRAGMA freelist_count");
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
    this.refreshBytes(true);
  }

  /** Measures the bytes in use, at most every 250 ms unless `force`. */
  refreshBytes(force = false): void {
    const now = this.#core.now();
    if (!force && now - this.#bytesCheckedAt < 250) return;
    this.#bytesCheckedAt = now;
    const pc = Number((this.#pageCount.get() as { page_count: number }).page_count);
    const fl = Number((this.#freelistCount.get() as { freelist_count: number }).freelist_count);
    this.usedBytes = (pc - fl) * this.#pageSize;
  }

  /**
   * Returns how many of `incoming` readings may be inserted, deleting rows first when a cap binds
   * (drop-oldest) or limiting the count (reject-new).
   */
  makeRoom(incoming: number): number {
    const m = this.#core.mirror;
    this.#disk.check();
    // Two pragmas per commit: cheap, and a size estimate that lags lets a burst overshoot the cap.
    this.refreshBytes(true);
    const cfg = this.#core.config;
    const diskLow = this.#disk.low;
    const bytesPerRow = m.rows > 0 ? Math.max(16, this.usedBytes / m.rows) : 64;
    let excess = 0;
    let cap: BufferStats["atCap"] = null;
    const overRows = m.rows + incoming - cfg.maxRows;
    if (overRows > 0) {
      excess = overRows;
      cap = "rows";
    }
    const byteLimit = diskLow ? Math.min(cfg.maxBytes, this.usedBytes) : cfg.maxBytes;
    const overBytes = this.usedBytes + incoming * bytesPerRow - byteLimit;
    if (overBytes > 0) {
      const n = Math.ceil(overBytes / bytesPerRow);
      if (n > excess) {
        excess = n;
        cap = diskLow ? "disk" : "bytes";
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
    const core = this.#core;
    const m = core.mirror;
    if (m.atCap === null) {
      const mode = core.config.overflow;
      core.log.warn(
        mode === "reject-new"
          ? `buffer at its ${cap} cap: refusing new readings until the uplink drains it`
          : `buffer at its ${cap} cap: deleting forwarded, then oldest unforwarded readings`,
        { rows: m.rows, bytes: this.usedBytes, cap },
      );
    }
    m.atCap = cap;
    m.episodeDropped += lost;
  }

  #endEpisode(): void {
    const core = this.#core;
    const m = core.mirror;
    if (m.atCap === null) return;
    core.log.warn("buffer below its caps again", {
      cap: m.atCap,
      [core.config.overflow === "reject-new" ? "refused" : "droppedUnforwarded"]: m.episodeDropped,
    });
    m.atCap = null;
    m.episodeDropped = 0;
  }

  /**
   * Deletes about `n` rows that need no more forwarding, forwarded and local-only alike, oldest
   * (by sequence number) first; returns how many went.
   */
  #evictDone(n: number): number {
    const m = this.#core.mirror;
    this.#core.fault?.("evict");
    if (m.localRows === 0) return this.#evictForwarded(n);
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
      m.rows -= gone;
      m.localRows -= gone;
      m.counters.evictedLocal += gone;
      freed += gone;
    }
    return freed;
  }

  /** Sequence numbers of the `n` oldest forwarded rows, oldest first. */
  #oldestForwarded(n: number): number[] {
    const m = this.#core.mirror;
    const out: number[] = [];
    const take = (lo: number, hi: number) => {
      const rows = this.#seqsInRange.all(lo, hi, n - out.length) as { seq: number }[];
      for (const r of rows) out.push(Number(r.seq));
    };
    if (m.floor > 0) take(0, m.floor);
    for (const [lo, hi] of m.acked) {
      if (out.length >= n) break;
      take(lo - 1, hi);
    }
    return out;
  }

  /** Deletes up to `n` forwarded rows, oldest first; returns how many went. */
  #evictForwarded(n: number): number {
    const m = this.#core.mirror;
    let freed = 0;
    if (m.floor > 0) {
      const boundary = this.#nthForwarded.get(m.floor, n - 1) as { seq: number } | undefined;
      const hi = boundary ? Number(boundary.seq) : m.floor;
      freed += Number(this.#deleteRange.run(0, hi).changes);
    }
    for (const [lo, hi] of m.acked) {
      if (freed >= n) break;
      freed += Number(this.#deleteRange.run(lo - 1, hi).changes);
    }
    m.rows -= freed;
    m.counters.evictedForwarded += freed;
    return freed;
  }

  /** Deletes the `n` oldest unforwarded rows, counting each exactly; moves the floor past them. */
  #dropOldestPending(n: number): number {
    const m = this.#core.mirror;
    this.#core.fault?.("drop");
    const boundary = this.#nthPending.get(m.floor, n - 1) as { seq: number } | undefined;
    const hi = boundary ? Number(boundary.seq) : m.nextSeq - 1;
    const del = this.#deleteRange;
    let dropped = 0;
    let from = m.floor;
    for (const [lo, ahi] of m.acked) {
      if (lo > hi) break;
      dropped += Number(del.run(from, Math.min(lo - 1, hi)).changes);
      from = Math.max(from, ahi);
    }
    if (from < hi) dropped += Number(del.run(from, hi).changes);
    // Acked rows inside the dropped range were deleted by #evictForwarded already.
    m.rows -= dropped;
    m.pending -= dropped;
    m.counters.droppedUnforwarded += dropped;
    this.#acks.setFloor(hi);
    return dropped;
  }
}
