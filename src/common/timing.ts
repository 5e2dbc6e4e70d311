/**
 * Waiting, deadlines and retry delays, shared by the core, the uplinks and the adapters (which
 * reach them through `src/adapter.ts`). Timers go with an `AbortSignal` rather than being
 * cleared by hand.
 *
 * @example
 * ```ts
 * for (let attempt = 0; !signal.aborted; attempt++) {
 *   if (await tryConnect()) break;
 *   await sleep(backoffDelay(attempt, { min: 1000, max: 60_000 }), signal);
 * }
 * ```
 */

/** Resolves after `ms` or when `signal` aborts, whichever comes first; never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Waits for `promise` at most `ms`: true when it resolved in time, false when the deadline
 * passed first (the promise keeps running). Rejects when `promise` rejects in time. The timer
 * is cleared either way.
 */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode deadline}. */
export interface DeadlineOptions {
  /** The error to reject with when the time passes first. */
  timeout: () => Error;
  /** Rejects early, with `aborted()`, when this aborts; the timer goes with it. */
  signal?: AbortSignal;
  /** The error for an abort; default: the signal's reason. */
  aborted?: () => Error;
}

/**
 * Settles as `promise` does, or rejects with `timeout()` after `ms`, or with `aborted()` once
 * `signal` aborts, whichever comes first. The promise itself keeps running; the timer and the
 * listener are removed either way.
 */
export function deadline<T>(promise: Promise<T>, ms: number, options: DeadlineOptions): Promise<T> {
  const { signal } = options;
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      done();
      reject(options.aborted ? options.aborted() : signal?.reason);
    };
    const timer = setTimeout(() => {
      done();
      reject(options.timeout());
    }, ms);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then((v) => {
      done();
      resolve(v);
    }, (e) => {
      done();
      reject(e);
    });
  });
}

/** Bounds of a backoff: the first delay and the largest. */
export interface BackoffBounds {
  min: number;
  max: number;
}

/** Options of {@linkcode backoffDelay}. */
export interface BackoffOptions {
  /**
   * How the delay is drawn below the exponential ceiling: `full` anywhere in [min, ceiling]
   * (default; spreads a fleet that retries after the same outage), `equal` in
   * [ceiling / 2, ceiling], `none` the ceiling itself.
   */
  jitter?: "full" | "equal" | "none";
  /** Source of randomness in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

/**
 * Delay before retry `attempt` (0 = the first) of a failing streak, in whole milliseconds: the
 * ceiling doubles from `min` per attempt and is capped at `max`; the jitter picks below it.
 *
 * @example
 * ```ts
 * backoffDelay(0, { min: 1000, max: 8000 }, { jitter: "none" }); // 1000
 * backoffDelay(5, { min: 1000, max: 8000 }, { jitter: "none" }); // 8000
 * ```
 */
export function backoffDelay(
  attempt: number,
  bounds: BackoffBounds,
  options: BackoffOptions = {},
): number {
  const ceiling = Math.min(bounds.max, bounds.min * 2 ** Math.min(Math.max(attempt, 0), 30));
  const random = options.random ?? Math.random;
  switch (options.jitter ?? "full") {
    case "none":
      return ceiling;
    case "equal":
      return Math.round(ceiling / 2 + random() * ceiling / 2);
    case "full": {
      const floor = Math.min(bounds.min, ceiling);
      return Math.round(floor + random() * (ceiling - floor));
    }
  }
}
