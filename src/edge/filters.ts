import type { Stage } from "../pipeline.ts";
import type { Reading } from "../reading.ts";
import type { FilterConfig } from "./config.ts";
import { Matcher } from "./_match.ts";

/** Why a filter dropped a reading. */
export type DropReason = "range" | "deadband" | "throttle" | "spike";

/** Readings dropped by the filters, by reason. */
export type FilterStats = Record<DropReason, number>;

interface SeriesState {
  /** Last value kept, for the deadband. */
  kept?: number;
  /** Time of the last value kept, for the throttle. */
  keptTs?: number;
  /** Recent values (kept or not), for the spike median. */
  recent: number[];
}

/**
 * The `filters:` stage: range, spike, deadband and throttle, in that order, per device/metric
 * (globs). Only numeric values are filtered (throttle applies to all values). Readings of the
 * gateway's own source (`edge`: window results) pass untouched.
 */
export class FilterStage implements Stage {
  readonly #matcher: Matcher<FilterConfig>;
  readonly #state = new Map<string, SeriesState[]>();
  readonly #stats: FilterStats = { range: 0, deadband: 0, throttle: 0, spike: 0 };

  constructor(filters: readonly FilterConfig[]) {
    this.#matcher = new Matcher(filters);
  }

  /** Drops readings that fail a filter; keeps the rest in order. */
  process(readings: Reading[], source: string): Reading[] {
    if (source === EDGE_SOURCE) return readings;
    const out: Reading[] = [];
    for (const r of readings) {
      const filters = this.#matcher.match(r.device, r.metric);
      if (filters.length === 0) {
        out.push(r);
        continue;
      }
      const key = r.device + "\0" + r.metric;
      let states = this.#state.get(key);
      if (!states) this.#state.set(key, states = filters.map(() => ({ recent: [] })));
      let reason: DropReason | undefined;
      for (let i = 0; i < filters.length && !reason; i++) {
        reason = check(filters[i], states[i], r);
      }
      if (reason) {
        this.#stats[reason]++;
        continue;
      }
      for (const st of states) {
        if (typeof r.value === "number") st.kept = r.value;
        st.keptTs = r.ts;
      }
      out.push(r);
    }
    return out;
  }

  /** Drop counters since start. */
  stats(): FilterStats {
    return { ...this.#stats };
  }
}

/** The `source` under which the edge emits its own readings (window results). */
export const EDGE_SOURCE = "edge";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Applies one filter to one reading; returns why it is dropped, or nothing to keep it. */
function check(f: FilterConfig, st: SeriesState, r: Reading): DropReason | undefined {
  const v = r.value;
  if (typeof v === "number") {
    if (
      f.range && ((f.range.min !== undefined && v < f.range.min) ||
        (f.range.max !== undefined && v > f.range.max))
    ) return "range";
    if (f.spike) {
      const full = st.recent.length >= f.spike.window - 1;
      const spike = full && Math.abs(v - median(st.recent)) > f.spike.maxDeviation;
      // A lasting step is not a spike: the window fills with the new level and accepts it.
      st.recent.push(v);
      if (st.recent.length > f.spike.window - 1) st.recent.shift();
      if (spike) return "spike";
    }
    if (f.deadband && st.kept !== undefined) {
      const band = f.deadband.absolute ?? Math.abs(st.kept) * (f.deadband.percent ?? 0) / 100;
      if (Math.abs(v - st.kept) < band) return "deadband";
    }
  }
  if (f.throttle && st.keptTs !== undefined && r.ts - st.keptTs < f.throttle) return "throttle";
  return undefined;
}
