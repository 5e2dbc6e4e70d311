/**
 * Hard limits on what a release channel can make a device do: a byte cap on metadata checked
 * while it streams in, and a minimum average rate plus a total deadline on downloads, so that an
 * endless or dripping server costs a bounded amount of memory and time.
 *
 * @module
 */

/** Read more than `max` bytes (the body was cancelled at that point). */
export class TooLarge extends Error {
  override name = "TooLarge";
}

/**
 * Reads a response body, cancelling it as soon as it passes `max` bytes. Memory use is bounded
 * by `max` plus one chunk, whatever the server sends or claims in Content-Length.
 */
export async function readCapped(res: Response, max: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw new TooLarge(`announces ${declared} bytes`);
  }
  const parts: Uint8Array[] = [];
  let n = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > max) {
        await reader.cancel();
        throw new TooLarge(`sent more than ${max} bytes`);
      }
      parts.push(value);
    }
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Options of {@linkcode downloadGuard}. */
export interface DownloadGuardOptions {
  /** Bytes per second the download must average over each window. */
  minRate: number;
  /** The window the rate is averaged over, ms. */
  windowMs: number;
  /** The whole download must end within this, ms. */
  deadlineMs: number;
}

/** A running download's limits: report bytes with `got`; `signal` aborts when one is broken. */
export interface DownloadGuard {
  signal: AbortSignal;
  got(bytes: number): void;
  /** Stops the timers (call when the download ends, either way). */
  stop(): void;
}

/**
 * Watches a download: aborts its signal when fewer than `minRate × window` bytes arrived in the
 * last window (checked every quarter window, from the end of the first one), or when the total
 * deadline passes. A slow start, a drip and a fast start followed by a drip all end in bounded
 * time.
 */
export function downloadGuard(o: DownloadGuardOptions): DownloadGuard {
  const ac = new AbortController();
  const started = Date.now();
  let total = 0;
  // (time, total bytes) samples, oldest first, covering at least the last window.
  const samples: [number, number][] = [[started, 0]];
  const tickMs = Math.max(50, Math.min(1000, o.windowMs / 4));
  const tick = setInterval(() => {
    const now = Date.now();
    samples.push([now, total]);
    while (samples.length > 2 && samples[1][0] <= now - o.windowMs) samples.shift();
    const [t0, b0] = samples[0];
    if (now - t0 < o.windowMs) return;
    const rate = (total - b0) / ((now - t0) / 1000);
    if (rate < o.minRate) {
      ac.abort(
        new Error(
          `average ${Math.floor(rate)} B/s over the last ${
            o.windowMs % 1000 ? `${o.windowMs}ms` : `${o.windowMs / 1000}s`
          } is below update.minDownloadRate ${o.minRate} B/s`,
        ),
      );
    }
  }, tickMs);
  const deadline = setTimeout(
    () => ac.abort(new Error(`not done within update.downloadTimeout ${o.deadlineMs}ms`)),
    o.deadlineMs,
  );
  const stop = () => {
    clearInterval(tick);
    clearTimeout(deadline);
  };
  ac.signal.addEventListener("abort", stop, { once: true });
  return {
    signal: ac.signal,
    got: (bytes) => {
      total += bytes;
    },
    stop,
  };
}
