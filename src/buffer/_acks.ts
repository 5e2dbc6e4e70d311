/**
 * Acknowledged ranges: the floor (every reading up to it is forwarded) and the sorted, merged
 * ranges acknowledged above it. They change in memory at once and reach the file with the next
 * commit of readings, or on their own one commit window later: a lost acknowledgement only
 * re-sends readings.
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import type { SeqRange } from "./types.ts";
import type { Core } from "./_core.ts";

/** The acknowledgement bookkeeping of one buffer. */
export class Acks {
  readonly #core: Core;
  readonly #countRange: StatementSync;
  readonly #busy: () => boolean;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `busy` tells whether readings wait for a commit (that commit then carries the acks). */
  constructor(core: Core, busy: () => boolean) {
    this.#core = core;
    this.#busy = busy;
    this.#countRange = core.db.prepare(
      "SELECT count(*) AS n FROM readings WHERE seq > ? AND seq <= ?",
    );
  }

  /** Counts the pending readings in the file (at open). */
  countPending(): number {
    const m = this.#core.mirror;
    const count = this.#countRange;
    let n = Number((count.get(m.floor, Number.MAX_SAFE_INTEGER) as { n: number }).n);
    for (const [lo, hi] of m.acked) n -= Number((count.get(lo - 1, hi) as { n: number }).n);
    return n;
  }

  /** Raises the floor to `floor` and over the acknowledged ranges it now reaches. */
  setFloor(floor: number): void {
    const m = this.#core.mirror;
    m.floor = Math.max(m.floor, floor);
    while (m.acked.length && m.acked[0][0] <= m.floor + 1) {
      m.floor = Math.max(m.floor, m.acked[0][1]);
      m.acked.shift();
    }
    m.ackDirty = true;
  }

  /** Marks `[lo, hi]` as forwarded (see `Buffer.ack`). */
  ack(lo: number, hi: number): void {
    const m = this.#core.mirror;
    if (hi < lo || hi <= m.floor) return;
    m.pending -= this.#countUnacked(lo, hi);
    if (lo <= m.floor + 1) this.setFloor(hi);
    else {
      // Insert keeping ranges sorted and merged.
      const list = m.acked;
      let i = 0;
      while (i < list.length && list[i][0] < lo) i++;
      list.splice(i, 0, [lo, hi]);
      const merged: SeqRange[] = [];
      for (const r of list) {
        const last = merged[merged.length - 1];
        if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
        else merged.push([r[0], r[1]]);
      }
      m.acked = merged;
      m.ackDirty = true;
    }
    if (this.#timer === undefined && !this.#core.closed) this.#arm();
  }

  /** Whether `seq` has been acknowledged. */
  isForwarded(seq: number): boolean {
    const m = this.#core.mirror;
    if (seq <= m.floor) return true;
    return m.acked.some(([lo, hi]) => seq >= lo && seq <= hi);
  }

  /** Writes the floor and ranges, inside the caller's transaction. */
  write(): void {
    const core = this.#core;
    const m = core.mirror;
    core.fault?.("acks");
    core.setMeta.run("ack_floor", m.floor);
    // Clearing an empty table still rewrites its root page: one page per commit, for nothing.
    if (m.ackedInFile || m.acked.length) core.db.exec("DELETE FROM acked");
    if (m.acked.length) {
      const ins = core.db.prepare("INSERT INTO acked(lo, hi) VALUES (?, ?)");
      for (const [lo, hi] of m.acked) ins.run(lo, hi);
    }
    m.ackedInFile = m.acked.length > 0;
    m.ackDirty = false;
  }

  /** Writes the floor and ranges in a transaction of their own; a failure is logged. */
  persist(): void {
    try {
      this.#core.transaction(() => this.write());
    } catch (e) {
      this.#core.log.error("cannot persist acknowledgements; they will be resent", {
        error: (e as Error).message,
      });
    }
  }

  /** Stops the timer. */
  close(): void {
    clearTimeout(this.#timer);
  }

  /**
   * Acknowledgements are written with the next commit of readings, or on their own one commit
   * window later when no readings are waiting.
   */
  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#core.closed || !this.#core.mirror.ackDirty) return;
      if (this.#busy()) this.#arm();
      else this.persist();
    }, Math.max(100, this.#core.config.commitWindow));
  }

  /** Rows in `[lo, hi]` that are neither below the floor nor inside an acknowledged range. */
  #countUnacked(lo: number, hi: number): number {
    const m = this.#core.mirror;
    const count = this.#countRange;
    let from = Math.max(lo - 1, m.floor);
    let n = 0;
    for (const [alo, ahi] of m.acked) {
      if (ahi <= from) continue;
      if (alo > hi) break;
      if (alo - 1 > from) n += Number((count.get(from, alo - 1) as { n: number }).n);
      from = Math.max(from, ahi);
    }
    if (hi > from) n += Number((count.get(from, hi) as { n: number }).n);
    return n;
  }
}
