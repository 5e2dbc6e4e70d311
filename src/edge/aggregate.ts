import type { Stage } from "../pipeline.ts";
import type { Reading } from "../reading.ts";
import type { AggregateConfig } from "./config.ts";
import { EDGE_SOURCE } from "./filters.ts";
import { Matcher } from "./_match.ts";

interface Window {
  spec: AggregateConfig;
  device: string;
  metric: string;
  unit?: string;
  start: number;
  min: number;
  max: number;
  sum: number;
  count: number;
  last: number;
  lastTs: number;
}

/** Options of {@linkcode AggregateStage}. */
export interface AggregateOptions {
  /** Where closed windows go (the pipeline's emit, as source `edge`). */
  emit: (readings: Reading[]) => void;
  /** Clock; windows close at `start + window + grace` by it. */
  now?: () => number;
}

/** Counters of the aggregation stage. */
export interface AggregateStats {
  /** Windows closed and emitted. */
  windows: number;
  /** Samples that arrived for a window already closed (not counted in any window). */
  late: number;
}

/**
 * The `aggregate:` stage: tumbling windows aligned to the clock (a 1 min window runs from :00 to
 * :00 of the next minute, by source timestamp). Each closed window becomes one reading per
 * function, named `<metric><separator><fn>`, stamped with the window's start and emitted through
 * the pipeline as source `edge`. Windows are closed by {@linkcode AggregateStage.tick}, which the
 * edge runs on a timer, so a silent device still gets its last window closed. The raw samples
 * are forwarded, stored locally only (the pipeline's `local` list) or dropped, per `raw:`.
 */
export class AggregateStage implements Stage {
  readonly #matcher: Matcher<AggregateConfig>;
  readonly #emit: (readings: Reading[]) => void;
  readonly #now: () => number;
  readonly #open = new Map<string, Window>();
  /** End of the last closed window per series, to spot late samples. */
  readonly #closedUntil = new Map<string, number>();
  readonly #stats: AggregateStats = { windows: 0, late: 0 };

  constructor(specs: readonly AggregateConfig[], opts: AggregateOptions) {
    this.#matcher = new Matcher(specs);
    this.#emit = opts.emit;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Adds numeric samples to their windows; returns the raw samples to forward and moves those of
   * `raw: local` windows to `local`. When several windows take a sample, the strictest `raw:`
   * wins: drop, then local, then forward.
   */
  process(readings: Reading[], source: string, local: Reading[]): Reading[] {
    if (source === EDGE_SOURCE) return readings;
    let out: Reading[] | undefined;
    let closed: Reading[] | undefined;
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i];
      const specs = this.#matcher.match(r.device, r.metric);
      let raw: AggregateConfig["raw"] = "forward";
      if (specs.length && typeof r.value === "number") {
        for (let j = 0; j < specs.length; j++) {
          const spec = specs[j];
          if (spec.raw === "drop" || (spec.raw === "local" && raw === "forward")) raw = spec.raw;
          closed = this.#add(spec, j, r, r.value, closed);
        }
      }
      if (raw === "forward") {
        if (out) out.push(r);
        continue;
      }
      if (raw === "local") local.push(r);
      out ??= readings.slice(0, i);
    }
    if (closed) this.#emit(closed);
    return out ?? readings;
  }

  #add(
    spec: AggregateConfig,
    j: number,
    r: Reading,
    v: number,
    closed: Reading[] | undefined,
  ): Reading[] | undefined {
    const key = `${r.device}\0${r.metric}\0${j}`;
    const start = Math.floor(r.ts / spec.window) * spec.window;
    if (start < (this.#closedUntil.get(key) ?? -Infinity)) {
      this.#stats.late++;
      return closed;
    }
    let w = this.#open.get(key);
    if (w && w.start !== start) {
      if (start < w.start) {
        this.#stats.late++;
        return closed;
      }
      // A sample of a later window closes the open one without waiting for the timer.
      (closed ??= []).push(...this.#close(key, w));
      w = undefined;
    }
    if (!w) {
      w = {
        spec,
        device: r.device,
        metric: r.metric,
        unit: r.unit,
        start,
        min: v,
        max: v,
        sum: 0,
        count: 0,
        last: v,
        lastTs: r.ts,
      };
      this.#open.set(key, w);
    }
    if (v < w.min) w.min = v;
    if (v > w.max) w.max = v;
    w.sum += v;
    w.count++;
    if (r.ts >= w.lastTs) {
      w.last = v;
      w.lastTs = r.ts;
    }
    return closed;
  }

  #close(key: string, w: Window): Reading[] {
    this.#open.delete(key);
    this.#closedUntil.set(key, w.start + w.spec.window);
    this.#stats.windows++;
    const out: Reading[] = [];
    for (const fn of w.spec.functions) {
      const value = fn === "min"
        ? w.min
        : fn === "max"
        ? w.max
        : fn === "mean"
        ? w.sum / w.count
        : fn === "last"
        ? w.last
        : w.count;
      out.push({
        device: w.device,
        metric: `${w.metric}${w.spec.separator}${fn}`,
        value,
        ...(w.unit !== undefined && fn !== "count" ? { unit: w.unit } : {}),
        ts: w.start,
      });
    }
    return out;
  }

  /** Closes and emits every window whose end plus grace has passed by the clock. */
  tick(): void {
    const now = this.#now();
    const out: Reading[] = [];
    for (const [key, w] of this.#open) {
      if (w.start + w.spec.window + w.spec.grace <= now) out.push(...this.#close(key, w));
    }
    if (out.length) this.#emit(out);
  }

  /** Counters since start. */
  stats(): AggregateStats {
    return { ...this.#stats };
  }
}
