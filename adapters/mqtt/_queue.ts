import type { Emit } from "../../src/adapter.ts";
import type { Logger } from "../../src/log.ts";
import type { Reading } from "../../src/reading.ts";

/** Options of {@linkcode ReadingQueue}. */
export interface ReadingQueueOptions {
  /** Most readings per `emit` call. */
  maxBatch?: number;
  /** Readings waiting above which `push` asks the source to wait. */
  highWater: number;
  log: Logger;
  count(counter: string, by?: number): void;
}

/**
 * Groups readings from many small messages into few `emit` calls, one in flight at a time, so a
 * message source is not paced by one buffer commit per message. Order is kept.
 */
export class ReadingQueue {
  #pending: Reading[] = [];
  #draining: Promise<void> | undefined;
  readonly #emit: Emit;
  readonly #o: ReadingQueueOptions;

  /** Creates a queue in front of `emit`. */
  constructor(emit: Emit, options: ReadingQueueOptions) {
    this.#emit = emit;
    this.#o = options;
  }

  /** Readings waiting to be emitted. */
  get size(): number {
    return this.#pending.length;
  }

  /**
   * Queues readings. Returns a promise when the queue is above its high-water mark: the source
   * should await it before taking more.
   */
  push(readings: readonly Reading[]): Promise<void> | undefined {
    if (readings.length === 0) return undefined;
    for (const r of readings) this.#pending.push(r);
    this.#draining ??= this.#drain();
    return this.#pending.length >= this.#o.highWater ? this.#draining : undefined;
  }

  /** Resolves once every queued reading went through `emit`. */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    const max = this.#o.maxBatch ?? 1000;
    try {
      while (this.#pending.length) {
        const batch = this.#pending.splice(0, max);
        try {
          const r = await this.#emit(batch);
          if (r.rejected) this.#o.count("rejected", r.rejected);
        } catch (e) {
          // The pipeline owns durability; a failing emit is its problem to report, ours to count.
          this.#o.count("emit_failures");
          this.#o.log.error("emit failed; readings dropped", {
            readings: batch.length,
            error: e as Error,
          });
        }
      }
    } finally {
      this.#draining = undefined;
    }
  }
}
