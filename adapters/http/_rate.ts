/** Outcome of {@linkcode RateLimiter.take}. */
export type TakeResult =
  | { ok: true }
  | { ok: false; device: string; retryAfterMs: number }
  | { ok: false; device: string; overBurst: true };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets per device, counted in readings: a device may send `burst` at once and
 * `perSecond` sustained. A request takes from every bucket it touches, or from none.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxDevices: number;
  #sweptAt = -Infinity;

  /** Creates a limiter; `maxDevices` bounds memory by forgetting idle devices first. */
  constructor(perSecond: number, burst: number, maxDevices = 100_000) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#maxDevices = maxDevices;
  }

  #level(device: string, now: number): number {
    const b = this.#buckets.get(device);
    if (!b) return this.#burst;
    return Math.min(this.#burst, b.tokens + Math.max(0, now - b.at) * this.#perMs);
  }

  /** Takes `n` readings' worth per device, all or nothing. */
  take(counts: ReadonlyMap<string, number>, now: number): TakeResult {
    for (const [device, n] of counts) {
      if (n > this.#burst) return { ok: false, device, overBurst: true };
      const level = this.#level(device, now);
      if (level < n) {
        return { ok: false, device, retryAfterMs: Math.ceil((n - level) / this.#perMs) };
      }
    }
    for (const [device, n] of counts) {
      this.#buckets.set(device, { tokens: this.#level(device, now) - n, at: now });
    }
    // At most once a second: when every device is busy a sweep frees nothing and costs O(n).
    if (this.#buckets.size > this.#maxDevices && now - this.#sweptAt >= 1000) this.#sweep(now);
    return { ok: true };
  }

  /** Forgets devices whose bucket refilled: they are indistinguishable from new ones. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const device of [...this.#buckets.keys()]) {
      if (this.#level(device, now) >= this.#burst) this.#buckets.delete(device);
    }
  }
}
