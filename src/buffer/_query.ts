/**
 * Reading the buffer back: pending readings for the forwarder (skipping acknowledged ranges),
 * queries by device, metric and time (through the series index, built a chunk at a time off the
 * commit's path), ranges set aside, and pruning at the end of the retention window.
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { StoredReading } from "../reading.ts";
import {
  CHUNK_ROWS,
  ChunkRecorder,
  countRows,
  dropChunksBelow,
  selectRows,
} from "./series_index.ts";
import type { QueryOptions } from "./types.ts";
import type { Core } from "./_core.ts";
import type { Acks } from "./_acks.ts";
import type { RawRow } from "./_series.ts";

/** A range the uplink refused for good. */
export interface AsideRange {
  lo: number;
  hi: number;
  reason: string;
  at: number;
}

/** The reads, the series index and pruning of one buffer. */
export class Queries {
  readonly #core: Core;
  readonly #acks: Acks;
  readonly #readRange: StatementSync;
  #indexTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the commits wrote into the chunks not indexed yet. */
  readonly chunks: ChunkRecorder = new ChunkRecorder();

  /** Reads through `core`; `acks` takes the ranges set aside. */
  constructor(core: Core, acks: Acks) {
    this.#core = core;
    this.#acks = acks;
    this.#readRange = core.db.prepare(
      "SELECT seq, ts, sid, value FROM readings WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
    );
  }

  /** See `Buffer.readPending`. */
  readPending(
    after: number,
    limit: number,
    upto: number,
  ): { readings: StoredReading[]; scannedTo: number } {
    const m = this.#core.mirror;
    const series = this.#core.series;
    const out: StoredReading[] = [];
    let cursor = Math.max(after, m.floor);
    const acked = m.acked;
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
      for (const row of rows) out.push(series.toReading(row));
      cursor = rows.length === want ? Number(rows[rows.length - 1].seq) : stop;
    }
    return { readings: out, scannedTo: Math.min(cursor, m.nextSeq - 1) };
  }

  /** Oldest pending reading's source timestamp, or null when nothing is pending. */
  oldestPendingTs(): number | null {
    const m = this.#core.mirror;
    if (m.pending <= 0) return null;
    const first = this.readPending(m.floor, 1, Number.MAX_SAFE_INTEGER).readings[0];
    return first ? first.ts : null;
  }

  /** See `Buffer.query`. */
  query(q: QueryOptions): StoredReading[] {
    const core = this.#core;
    const limit = q.limit ?? 10_000;
    const sids = core.series.matching(q.device, q.metric);
    if (sids.length === 0) return [];
    const out: StoredReading[] = [];
    const rows = selectRows(core.db, {
      sids: q.device !== undefined || q.metric !== undefined ? sids : undefined,
      from: q.from,
      to: q.to,
      afterSeq: q.afterSeq,
      hasLocal: core.mirror.localRows > 0,
      pageSize: Math.min(limit, 5000),
    });
    for (const r of rows) {
      out.push(core.series.toReading(r));
      if (out.length >= limit) break;
    }
    return out;
  }

  /** See `Buffer.count`. */
  count(q: QueryOptions): number {
    const core = this.#core;
    const sids = core.series.matching(q.device, q.metric);
    if (sids.length === 0) return 0;
    return countRows(core.db, {
      sids: q.device !== undefined || q.metric !== undefined ? sids : undefined,
      from: q.from,
      to: q.to,
      afterSeq: q.afterSeq,
      hasLocal: core.mirror.localRows > 0,
    });
  }

  /** See `Buffer.setAside`. */
  setAside(lo: number, hi: number, reason: string): void {
    const core = this.#core;
    const insert = core.db.prepare(
      "INSERT INTO aside(lo, hi, reason, at) VALUES (?, ?, ?, ?) ON CONFLICT(lo) DO UPDATE SET hi = excluded.hi, reason = excluded.reason",
    );
    core.transaction(() => insert.run(lo, hi, reason.slice(0, 500), core.now()));
    this.#acks.ack(lo, hi);
  }

  /** Ranges the uplink refused for good, newest first. */
  setAsideRanges(limit: number): AsideRange[] {
    return this.#core.db.prepare("SELECT lo, hi, reason, at FROM aside ORDER BY lo DESC LIMIT ?")
      .all(limit) as unknown as AsideRange[];
  }

  /** See `Buffer.prune`. */
  prune(): number {
    const core = this.#core;
    const m = core.mirror;
    const cutoff = core.now() - core.config.retention;
    let total = 0;
    const del = core.db.prepare(
      "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE seq <= ? AND ts < ? ORDER BY seq LIMIT 5000)",
    );
    const delLocal = core.db.prepare(
      "DELETE FROM local_readings WHERE seq IN (SELECT seq FROM local_readings WHERE ts < ? ORDER BY seq LIMIT 5000)",
    );
    // One transaction per batch: rows, counters and the file change together or not at all.
    const batch = (local: boolean) =>
      core.transaction(() => {
        core.fault?.("prune");
        const n = Number((local ? delLocal.run(cutoff) : del.run(m.floor, cutoff)).changes);
        if (n) {
          if (local) m.localRows -= n;
          m.rows -= n;
          m.counters.pruned += n;
          core.setMeta.run("pruned", m.counters.pruned);
        }
        return n;
      });
    for (;;) {
      const n = batch(false);
      total += n;
      if (n < 5000) break;
    }
    while (m.localRows > 0) {
      const n = batch(true);
      total += n;
      if (n < 5000) break;
    }
    if (total > 0) this.#dropIndexedBelowOldest();
    return total;
  }

  /** Indexes the next chunk once a whole one is committed, off the commit's path. */
  scheduleIndex(): void {
    const core = this.#core;
    if (core.closed || this.#indexTimer !== undefined) return;
    if (core.mirror.nextSeq - 1 - core.mirror.indexedHi < CHUNK_ROWS) return;
    this.#indexTimer = setTimeout(() => {
      this.#indexTimer = undefined;
      if (core.closed) return;
      const lo = core.mirror.indexedHi;
      try {
        core.transaction(() => {
          this.chunks.build(core.db, lo, true);
          core.mirror.indexedHi = lo + CHUNK_ROWS;
        });
      } catch (e) {
        core.log.error("cannot index buffered readings by series; queries scan them meanwhile", {
          error: (e as Error).message,
        });
        return;
      }
      this.scheduleIndex();
    }, 0);
  }

  /** Stops the index timer. */
  close(): void {
    clearTimeout(this.#indexTimer);
  }

  /** Drops the index chunks of readings all gone. */
  #dropIndexedBelowOldest(): void {
    const core = this.#core;
    const oldest = Number(
      (core.db.prepare(
        "SELECT min(m) AS m FROM (SELECT min(seq) AS m FROM readings UNION ALL SELECT min(seq) FROM local_readings)",
      ).get() as { m: number | null }).m ?? core.mirror.nextSeq,
    );
    try {
      core.transaction(() => dropChunksBelow(core.db, oldest));
    } catch { /* stale chunks only cost space; next prune tries again */ }
  }
}
