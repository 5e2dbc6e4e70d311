/**
 * Edge logic: `filters:`, `aggregate:` and `rules:` of the gateway YAML, run inside the pipeline
 * so they keep working while the uplink is down.
 *
 * @example
 * ```ts ignore
 * const edge = Edge.start({ config, bufferPath, emit, write, uplink, log });
 * pipeline.setStages(edge.stages);
 * ```
 */
import type { WriteRequest } from "../adapter.ts";
import type { Logger } from "../log.ts";
import type { Stage } from "../pipeline.ts";
import type { Reading } from "../reading.ts";
import type { Uplink } from "../uplink/uplink.ts";
import { ActionRunner, type ActionStats } from "./actions.ts";
import { AggregateStage, type AggregateStats } from "./aggregate.ts";
import { AlarmLane } from "./alarm_lane.ts";
import { type AlarmEvent, AlarmStore } from "./alarm_store.ts";
import type { AggregateConfig, FilterConfig, RuleConfig } from "./config.ts";
import { EDGE_SOURCE, FilterStage, type FilterStats } from "./filters.ts";
import { RuleEngine } from "./rules.ts";

export { type AlarmEvent, AlarmStore, AlarmStoreError } from "./alarm_store.ts";
export { ActionError } from "./actions.ts";
export { aggregateSchema, checkRuleRefs, filterSchema, ruleSchema } from "./config.ts";
export type { AggregateConfig, FilterConfig, RuleConfig } from "./config.ts";
export { EDGE_SOURCE } from "./filters.ts";

/** The edge keys of the gateway config. */
export interface EdgeConfig {
  filters: FilterConfig[];
  aggregate: AggregateConfig[];
  rules: RuleConfig[];
}

/** Options of {@linkcode Edge.start}. */
export interface EdgeOptions {
  config: EdgeConfig;
  /** The buffer's file; alarm state goes next to it as `<path>.alarms.db`. */
  bufferPath: string;
  /** Feeds window results back into the pipeline (as source `edge`). */
  emit: (source: string, readings: Reading[]) => Promise<unknown>;
  /** Performs an adapter write (rule `write:` actions). */
  write: (adapter: string, request: WriteRequest) => Promise<void>;
  uplink: Uplink | undefined;
  log: Logger;
  /** Called on every alarm transition after it is recorded (tests, benchmarks). */
  onTransition?: (rule: RuleConfig, event: AlarmEvent) => void;
  now?: () => number;
}

/** Edge counters, as shown in status. */
export interface EdgeStatus {
  filtered: FilterStats | null;
  aggregate: AggregateStats | null;
  /** Active alarms by `rule` (or `rule[instance]` for rules with globs): when raised. */
  activeAlarms: Record<string, number>;
  /** Alarm events waiting for the uplink. */
  alarmsQueued: number;
  actions: ActionStats;
  /** Priority lane counters, when rules are configured. */
  lane: { sent: number; failed: number; inflight: number } | null;
}

/**
 * The running edge logic: its pipeline stages, timers (tied to one AbortSignal), alarm state and
 * priority lane. With nothing configured it has no stages and opens no file, so the pipeline's
 * hot path is untouched.
 */
export class Edge {
  /** Stages to install in the pipeline, in order: filters, rules, aggregation. */
  readonly stages: Stage[] = [];
  readonly #controller = new AbortController();
  readonly #filters: FilterStage | undefined;
  readonly #aggregate: AggregateStage | undefined;
  readonly #rules: RuleEngine | undefined;
  readonly #store: AlarmStore | undefined;
  readonly #lane: AlarmLane | undefined;
  readonly #actions: ActionRunner;

  private constructor(o: EdgeOptions) {
    const signal = this.#controller.signal;
    const { config: c, log } = o;
    this.#actions = new ActionRunner({ write: o.write, log: log.child("actions"), signal });
    if (c.filters.length) this.stages.push(this.#filters = new FilterStage(c.filters));
    if (c.rules.length) {
      const store = this.#store = AlarmStore.open(`${o.bufferPath}.alarms.db`);
      const lane = this.#lane = new AlarmLane({ store, uplink: o.uplink, log, signal });
      const rules = this.#rules = new RuleEngine(c.rules, {
        store,
        now: o.now,
        notify: (rule, event) => {
          log[event.state === "raised" ? "warn" : "info"](`alarm ${event.state}`, {
            rule: event.rule,
            ...(event.instance !== undefined ? { instance: event.instance } : {}),
            severity: event.severity,
            message: event.message,
          });
          o.onTransition?.(rule, event);
          this.#actions.run(rule, event);
        },
        recorded: () => lane.wake(),
      });
      this.stages.push(rules);
      every(rules.tickInterval, () => rules.tick(), signal, log);
      every(5000, () => store.checkpoint(), signal, log);
      lane.wake();
    }
    if (c.aggregate.length) {
      const emit = (readings: Reading[]) => {
        o.emit(EDGE_SOURCE, readings).catch((e) =>
          log.error("window results not stored", { error: (e as Error).message })
        );
      };
      const agg = this.#aggregate = new AggregateStage(c.aggregate, { emit, now: o.now });
      this.stages.push(agg);
      const shortest = Math.min(...c.aggregate.map((a) => a.window));
      every(Math.min(1000, Math.max(50, shortest / 10)), () => agg.tick(), signal, log);
    }
  }

  /** Builds the stages and starts the timers; restores active alarms from the state file. */
  static start(opts: EdgeOptions): Edge {
    return new Edge(opts);
  }

  /** Status counters. */
  status(): EdgeStatus {
    return {
      filtered: this.#filters?.stats() ?? null,
      aggregate: this.#aggregate?.stats() ?? null,
      activeAlarms: this.#rules?.active() ?? {},
      alarmsQueued: this.#store?.queued ?? 0,
      actions: this.#actions.stats(),
      lane: this.#lane?.stats() ?? null,
    };
  }

  /** Stops timers, waits for running actions (up to `graceMs`), closes the alarm state file. */
  async stop(graceMs = 3000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#actions.idle(),
      new Promise((r) => timer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(timer);
    this.#controller.abort();
    this.#store?.close();
  }
}

/** Runs `fn` every `ms` until `signal` aborts; a throw is logged and the timer keeps going. */
function every(ms: number, fn: () => void, signal: AbortSignal, log: Logger): void {
  const t = setInterval(() => {
    try {
      fn();
    } catch (e) {
      log.error("edge timer step failed", { error: (e as Error).message });
    }
  }, ms);
  signal.addEventListener("abort", () => clearInterval(t), { once: true });
}
