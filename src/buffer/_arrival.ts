/**
 * When readings arrived, per commit rather than per row: the highest sequence number of each
 * commit and the time it committed, in memory only. The age of the oldest pending reading by
 * arrival comes from here, so backdated readings (a device's clock, a backfill) do not look
 * stuck. Readings pending when the file was opened count as arrived at the open.
 *
 * @module
 */

/** Commits remembered at most; beyond, neighbours merge into coarser time buckets. */
const MAX_ENTRIES = 4096;

/**
 * Arrival times of committed readings, by sequence number. Commits whose times fall in the same
 * bucket of `#res` ms share an entry with the bucket's first time; when there are too many
 * entries the buckets double, so every arrival reported is at most one bucket early (never late:
 * an age is never understated) and memory stays bounded however long the backlog.
 */
export class Arrivals {
  /** Highest sequence number of each remembered commit, ascending. */
  #hi: number[] = [];
  /** When each arrived (ms since epoch). */
  #at: number[] = [];
  /** Entries before this index are forgotten (all forwarded). */
  #head = 0;
  /** Bucket width, ms. */
  #res = 1;

  /** Notes that readings up to `hi` (above the last noted) arrived at `at`. */
  note(hi: number, at: number): void {
    const n = this.#hi.length;
    if (n > this.#head) {
      if (hi <= this.#hi[n - 1]) return;
      if (Math.floor(this.#at[n - 1] / this.#res) === Math.floor(at / this.#res)) {
        this.#hi[n - 1] = hi;
        return;
      }
    }
    this.#hi.push(hi);
    this.#at.push(at);
    if (this.size > MAX_ENTRIES) this.#coarsen();
  }

  /** Forgets commits wholly at or below `floor` (forwarded). */
  trim(floor: number): void {
    while (this.#head < this.#hi.length && this.#hi[this.#head] <= floor) this.#head++;
    if (this.#head === this.#hi.length) {
      this.#hi = [];
      this.#at = [];
      this.#head = 0;
      this.#res = 1;
    } else if (this.#head > 1024 && this.#head * 2 > this.#hi.length) {
      this.#hi = this.#hi.slice(this.#head);
      this.#at = this.#at.slice(this.#head);
      this.#head = 0;
    }
  }

  /** When reading `seq` arrived (at most one bucket early), or null when it is not remembered. */
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

  /** Doubles the buckets until at most three quarters of the entries are left. */
  #coarsen(): void {
    let his = this.#hi.slice(this.#head);
    let ats = this.#at.slice(this.#head);
    while (his.length > (MAX_ENTRIES * 3) / 4) {
      this.#res *= 2;
      const h: number[] = [];
      const a: number[] = [];
      for (let i = 0; i < his.length; i++) {
        const k = a.length - 1;
        if (k >= 0 && Math.floor(a[k] / this.#res) === Math.floor(ats[i] / this.#res)) {
          h[k] = his[i];
        } else {
          h.push(his[i]);
          a.push(ats[i]);
        }
      }
      his = h;
      ats = a;
    }
    this.#hi = his;
    this.#at = ats;
    this.#head = 0;
  }
}
