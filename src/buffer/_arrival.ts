/**
 * When readings arrived, per commit rather than per row: the highest sequence number of each
 * commit and the time it committed, in memory only. The age of the oldest pending reading by
 * arrival comes from here, so backdated readings (a device's clock, a backfill) do not look
 * stuck. Readings pending when the file was opened count as arrived at the open.
 *
 * @module
 */

/** Commits remembered at most; beyond, neighbours merge (keeping the earlier time). */
const MAX_ENTRIES = 4096;

/** Arrival times of committed readings, by sequence number. */
export class Arrivals {
  /** Highest sequence number of each remembered commit, ascending. */
  #hi: number[] = [];
  /** When each arrived (ms since epoch). */
  #at: number[] = [];
  /** Entries before this index are forgotten (all forwarded). */
  #head = 0;

  /** Notes that readings up to `hi` (above the last noted) arrived at `at`. */
  note(hi: number, at: number): void {
    const n = this.#hi.length;
    if (n > this.#head && hi <= this.#hi[n - 1]) return;
    // Commits within one millisecond share an entry.
    if (n > this.#head && this.#at[n - 1] === at) {
      this.#hi[n - 1] = hi;
      return;
    }
    this.#hi.push(hi);
    this.#at.push(at);
    if (n + 1 - this.#head > MAX_ENTRIES) this.#coarsen();
  }

  /** Forgets commits wholly at or below `floor` (forwarded). */
  trim(floor: number): void {
    while (this.#head < this.#hi.length && this.#hi[this.#head] <= floor) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#hi.length) {
      this.#hi = this.#hi.slice(this.#head);
      this.#at = this.#at.slice(this.#head);
      this.#head = 0;
    }
  }

  /** When reading `seq` arrived, or null when it is not remembered. */
  arrivalOf(seq: number): number | null {
    let lo = this.#head;
    let hi = this.#hi.length - 1;
    if (lo > hi || seq > this.#hi[hi]) return null;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#hi[mid] >= seq) hi = mid;
      else lo = mid + 1;
    }
    return this.#at[lo];
  }

  /** Commits remembered. */
  get size(): number {
    return this.#hi.length - this.#head;
  }

  /** Halves the entries: each pair merges into one with the later end and the earlier time. */
  #coarsen(): void {
    const his: number[] = [];
    const ats: number[] = [];
    for (let i = this.#head; i < this.#hi.length; i += 2) {
      const j = Math.min(i + 1, this.#hi.length - 1);
      his.push(this.#hi[j]);
      ats.push(this.#at[i]);
    }
    this.#hi = his;
    this.#at = ats;
    this.#head = 0;
  }
}
