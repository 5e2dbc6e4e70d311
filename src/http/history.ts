import type { GatewayStatus } from "../gateway.ts";
import type { LastValue } from "../pipeline.ts";

/** Options of {@linkcode TrendHistory}. */
export interface TrendOptions {
  /** Points kept per series (oldest dropped first). */
  points?: number;
  /** Series tracked at most; further ones are counted, not kept. */
  maxSeries?: number;
  /** How far back the ingest and forward rates look, ms. */
  rateWindowMs?: number;
}

/** A point of a trend line: source timestamp (ms) and value (booleans as 0 and 1). */
export type TrendPoint = [ts: number, value: number];

/** Readings per second in and out, over the rate window; `null` until two samples exist. */
export interface Rates {
  acceptedPerSecond: number | null;
  forwardedPerSecond: number | null;
  windowSeconds: number;
}

/** How the backlog is doing, for "time to drain". */
export interface Drain {
  state: "empty" | "current" | "draining" | "growing" | "offline" | "no-uplink";
  /** Estimated seconds until the backlog is gone (state `draining`), else `null`. */
  seconds: number | null;
}

/** A backlog whose oldest reading is younger than this counts as keeping up. */
const CURRENT_MS = 10_000;

/** A fixed-size ring of points for one series; each point remembers the sample that took it. */
class Series {
  readonly #data: Float64Array;
  #head = 0;
  #count = 0;
  lastTs = -Infinity;

  constructor(points: number) {
    this.#data = new Float64Array(points * 3);
  }

  push(ts: number, value: number, tick: number): void {
    const cap = this.#data.length / 3;
    this.#data.set([ts, value, tick], this.#head * 3);
    this.#head = (this.#head + 1) % cap;
    if (this.#count < cap) this.#count++;
    this.lastTs = ts;
  }

  after(tick: number): TrendPoint[] {
    const cap = this.#data.length / 3;
    const out: TrendPoint[] = [];
    for (let i = 0; i < this.#count; i++) {
      const j = ((this.#head - this.#count + i + cap) % cap) * 3;
      if (this.#data[j + 2] > tick) out.push([this.#data[j], this.#data[j + 1]]);
    }
    return out;
  }
}

function numeric(v: LastValue["value"]): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  return undefined;
}

/**
 * Short trend lines of every device metric and the ingest and forward rates, for the gateway
 * page. It samples the pipeline's last values on a timer (nothing on the readings' path), keeps
 * a bounded ring per series, and only numbers and booleans (strings have no trend).
 */
export class TrendHistory {
  readonly #points: number;
  readonly #maxSeries: number;
  readonly #rateWindowMs: number;
  readonly #series = new Map<string, Map<string, Series>>();
  #seriesCount = 0;
  #tick = 0;
  #untracked = new Set<string>();
  #counters: { at: number; accepted: number; forwarded: number | null }[] = [];

  constructor(options: TrendOptions = {}) {
    this.#points = options.points ?? 150;
    this.#maxSeries = options.maxSeries ?? 500;
    this.#rateWindowMs = options.rateWindowMs ?? 30_000;
  }

  /** Takes one sample: new last values become points; the counters feed the rates. */
  sample(
    devices: Record<string, Record<string, LastValue>>,
    counters: { accepted: number; forwarded: number | null },
    now = Date.now(),
  ): void {
    const tick = ++this.#tick;
    for (const device in devices) {
      const metrics = devices[device];
      let byMetric = this.#series.get(device);
      for (const metric in metrics) {
        const last = metrics[metric];
        const value = numeric(last.value);
        if (value === undefined || !Number.isFinite(value)) continue;
        let s = byMetric?.get(metric);
        if (!s) {
          if (this.#seriesCount >= this.#maxSeries) {
            if (this.#untracked.size < 100_000) this.#untracked.add(`${device}\u0000${metric}`);
            continue;
          }
          if (!byMetric) this.#series.set(device, byMetric = new Map());
          byMetric.set(metric, s = new Series(this.#points));
          this.#seriesCount++;
        }
        if (last.ts > s.lastTs) s.push(last.ts, value, tick);
      }
    }
    const c = this.#counters;
    const prev = c.at(-1);
    // Counters that went down (the forwarder restarts with a config reload) start a new window.
    if (
      prev && (counters.accepted < prev.accepted ||
        (counters.forwarded ?? 0) < (prev.forwarded ?? 0) ||
        (counters.forwarded === null) !== (prev.forwarded === null))
    ) c.length = 0;
    c.push({ at: now, ...counters });
    while (c.length > 2 && now - c[1].at >= this.#rateWindowMs) c.shift();
  }

  /** The number of the latest sample; pass it to {@linkcode trends} to get only newer points. */
  get cursor(): number {
    return this.#tick;
  }

  /** Points taken by samples after `cursor` (all kept points by default), by device and metric. */
  trends(cursor = 0): Record<string, Record<string, TrendPoint[]>> {
    const out: Record<string, Record<string, TrendPoint[]>> = {};
    for (const [device, metrics] of this.#series) {
      for (const [metric, s] of metrics) {
        const pts = s.after(cursor);
        if (pts.length) (out[device] ??= {})[metric] = pts;
      }
    }
    return out;
  }

  /** Points kept per series. */
  get points(): number {
    return this.#points;
  }

  /** Series seen but not kept because `maxSeries` was reached. */
  get untracked(): number {
    return this.#untracked.size;
  }

  /**
   * Readings per second accepted and forwarded over the rate window, or over the last `windowMs`
   * when given (the drain estimate looks at a few seconds so it follows a reconnect at once).
   */
  rates(windowMs?: number): Rates {
    const c = this.#counters;
    const last = c.at(-1);
    let first = c[0];
    if (last && windowMs !== undefined) {
      // The oldest sample inside the window, but never the last one itself.
      for (let i = c.length - 2; i >= 0 && last.at - c[i].at <= windowMs; i--) first = c[i];
      if (first === c[0] && c.length > 1 && last.at - c[0].at > windowMs) first = c.at(-2)!;
    }
    if (!first || !last || last.at <= first.at) {
      return { acceptedPerSecond: null, forwardedPerSecond: null, windowSeconds: 0 };
    }
    const secs = (last.at - first.at) / 1000;
    return {
      acceptedPerSecond: (last.accepted - first.accepted) / secs,
      forwardedPerSecond: last.forwarded === null || first.forwarded === null
        ? null
        : (last.forwarded - first.forwarded) / secs,
      windowSeconds: secs,
    };
  }
}

/** The drain estimate's rate window: short, so a reconnect or a stall shows within seconds. */
export const DRAIN_WINDOW_MS = 6000;

/**
 * Estimates how long the backlog takes to drain: the pending count over the net rate (forwarded
 * minus accepted per second) while that is positive.
 */
export function estimateDrain(status: GatewayStatus, rates: Rates): Drain {
  const b = status.buffer;
  if (b.pending === 0) return { state: "empty", seconds: 0 };
  if (!status.uplink) return { state: "no-uplink", seconds: null };
  if (!status.uplink.connected) return { state: "offline", seconds: null };
  if (b.oldestPendingAgeMs !== null && b.oldestPendingAgeMs < CURRENT_MS) {
    return { state: "current", seconds: 0 };
  }
  const net = (rates.forwardedPerSecond ?? 0) - (rates.acceptedPerSecond ?? 0);
  if (rates.forwardedPerSecond === null || net <= 0) return { state: "growing", seconds: null };
  return { state: "draining", seconds: Math.round(b.pending / net) };
}
