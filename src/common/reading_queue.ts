import type { Emit } from "../adapter.ts";
import type { Logger } from "../log.ts";
import type { Reading } from "../reading.ts";
import { backoffDelay, sleep } from "./timing.ts";

/** Options of {@linkcode ReadingQueue}. */
export interface ReadingQueueOptions {
  /** Most readings per `emit` call. */
  maxBatch?: number;
  /** Readings waiting above which {@linkcode ReadingQueue.room} asks the source to wait. */
  highWater: number;
  /** First and largest pause before a refused `emit` is tried again (ms); default 500 and 2000. */
  retry?: { min: number; max: number };
  log: Logger;
  count(counter: string, by?: number): void;
  /** Stops the queue: readings not stored by then are given up (their promises reject). */
  signal: AbortSignal;
}

/** Readings were given up unstored because the queue stopped. */
export class QueueStoppedError extends Error {
  override name = "QueueStoppedError";
}

interface Waiter {
  /** Resolved once this many readings (counted since the start) are stored. */
  upTo: number;
  resolve(): void;
  reject(e: Error): void;
}

/**
 * Groups readings from many small messages into few `emit` calls, one in flight at a time, so a
 * message source is not paced by one buffer commit per message. Order is kept. A batch the
 * pipeline refuses (disk full, failed commit) stays at the head and is tried again with backoff
 * until it is stored or the queue stops, and so do the readings a buffer at its cap refuses
 * (`overflow: reject-new`, see `EmitResult.retryFrom`): nothing is dropped, and the promise `push` returned
 * settles only when the readings are durable, so the source can acknowledge them then.
 */
export class ReadingQueue {
  #pending: Reading[] = [];
  #draining: Promise<void> | undefined;
  #pushed = 0;
  #stored = 0;
  #waiters: Waiter[] = [];
  #roomWaiters: (() => void)[] = [];
  readonly #emit: Emit;
  readonly #o: ReadingQueueOptions;

  /** Creates a queue in front of `emit`. */
  constructor(emit: Emit, options: ReadingQueueOptions) {
    this.#emit = emit;
    this.#o = options;
    options.signal.addEventListener("abort", () => {
      if (!this.#draining) this.#giveUp();
    }, { once: true });
  }

  /** Readings waiting to be emitted. */
  get size(): number {
    return this.#pending.length;
  }

  /**
   * Queues readings. The promise resolves once they (and every reading queued before them) are
   * committed to the buffer, and rejects with {@linkcode QueueStoppedError} if the queue stops
   * first.
   */
  push(readings: readonly Reading[]): Promise<void> {
    if (readings.length === 0) return Promise.resolve();
    if (this.#o.signal.aborted) {
      return Promise.reject(new QueueStoppedError("the adapter is stopping; readings not stored"));
    }
    for (const r of readings) this.#pending.push(r);
    this.#pushed += readings.length;
    const stored = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ upTo: this.#pushed, resolve, reject });
    });
    this.#draining ??= this.#drain();
    return stored;
  }

  /**
   * A promise while the queue holds `highWater` readings or more, settled once it holds fewer
   * (or stops): the source should await it before taking more. Undefined when there is room.
   */
  room(): Promise<void> | undefined {
    if (this.#pending.length < this.#o.highWater || this.#o.signal.aborted) return undefined;
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Resolves once every queued reading went through `emit`, or was given up on stop. */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    const max = this.#o.maxBatch ?? 1000;
    const retry = this.#o.retry ?? { min: 500, max: 2000 };
    let failures = 0;
    try {
      while (this.#pending.length) {
        const batch = this.#pending.slice(0, max);
        let stored = batch.length;
        try {
          const r = await this.#emit(batch);
          if (r.retryFrom !== undefined) {
            // The buffer is at its cap (reject-new): what it refused stays at the head,
            // unacknowledged, and is tried again once forwarding has made room.
            stored = r.retryFrom;
            this.#o.count("buffer_full", batch.length - stored);
          } else if (r.rejected) this.#o.count("rejected", r.rejected);
        } catch (e) {
          // Not stored: nothing is acknowledged, and the batch is tried again in place, so the
          // source's broker keeps the messages (and stops sending more once its window is full).
          this.#o.count("emit_failures");
          if ((e as Error)?.name === "DiskFullError") this.#o.count("disk_full", batch.length);
          if (failures === 0) {
            this.#o.log.warn("buffer refuses readings; holding them unacknowledged and retrying", {
              readings: this.#pending.length,
              error: e as Error,
            });
          }
          if (this.#o.signal.aborted) break;
          await sleep(backoffDelay(failures++, retry, { jitter: "none" }), this.#o.signal);
          if (this.#o.signal.aborted) break;
          continue;
        }
        this.#pending.splice(0, stored);
        this.#stored += stored;
        while (this.#waiters.length && this.#waiters[0].upTo <= this.#stored) {
          this.#waiters.shift()!.resolve();
        }
        if (this.#pending.length < this.#o.highWater) this.#wakeRoom();
        if (stored < batch.length) {
          if (failures === 0) {
            this.#o.log.warn("buffer is full (reject-new); holding readings unacknowledged", {
              readings: this.#pending.length,
            });
          }
          if (this.#o.signal.aborted) break;
          await sleep(
            Math.min(retry.max, retry.min * 2 ** Math.min(failures++, 20)),
            this.#o.signal,
          );
          if (this.#o.signal.aborted) break;
          continue;
        }
        if (failures > 0) {
          this.#o.log.info("buffer takes readings again", { afterAttempts: failures + 1 });
          failures = 0;
        }
      }
    } finally {
      this.#draining = undefined;
      if (this.#o.signal.aborted) this.#giveUp();
    }
  }

  /** Stops for good: unstored readings are dropped unacknowledged, waiting sources released. */
  #giveUp(): void {
    const err = new QueueStoppedError(
      `the adapter stopped with ${this.#pending.length} reading(s) not stored; they were not acknowledged`,
    );
    this.#pending = [];
    for (const w of this.#waiters.splice(0)) w.reject(err);
    this.#wakeRoom();
  }

  #wakeRoom(): void {
    for (const wake of this.#roomWaiters.splice(0)) wake();
  }
}
