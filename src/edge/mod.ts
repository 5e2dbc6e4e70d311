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
import { type AlarmEvent, type AlarmHistoryEntry, AlarmStore } from "./alarm_store.ts";
import {
  type ActiveAlarm,
  activeAlarms,
  type AlarmMetrics,
  AlarmNotFoundError,
  type AlarmSummary,
  type AlarmsView,
  NO_ALARMS,
  summarize,
} from "./alarms.ts";
import type { AggregateConfig, FilterConfig, RuleConfig } from "./config.ts";
import { EDGE_SOURCE, FilterStage, type FilterStats } from "./filters.ts";
import { RuleEngine } from "./rules.ts";

export {
  type AlarmEvent,
  type AlarmHistoryEntry,
  AlarmStore,
  AlarmStoreError,
} from "./alarm_store.ts";
export {
  type ActiveAlarm,
  type AlarmMetrics,
  AlarmNotFoundError,
  type AlarmSummary,
  type AlarmsView,
  NO_ALARMS,
} from "./alarms.ts";
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
  /** Called after any change of the alarms: a transition or an acknowledgement. */
  onAlarmChange?: () => void;
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
  readonly #ruleConfigs: RuleConfig[];
  /** Transitions since start by `rule\0to`. */
  readonly #transitions = new Map<string, number>();
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #onChange: () => void;
  /** The active alarms as last read from the store; dropped at every change. */
  #active: ActiveAlarm[] | undefined;

  private constructor(o: EdgeOptions) {
    this.#ruleConfigs = o.config.rules;
    this.#log = o.log;
    this.#onChange = o.onAlarmChange ?? (() => {});
    this.#now = o.now ?? Date.now;
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
          this.#count(event.rule, event.state);
          o.onTransition?.(rule, event);
          this.#active = undefined;
          o.onAlarmChange?.();
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

  #count(rule: string, to: AlarmHistoryEntry["to"]): void {
    const k = `${rule}\0${to}`;
    this.#transitions.set(k, (this.#transitions.get(k) ?? 0) + 1);
  }

  /** Whether any `rules:` are configured (without, no alarm is ever raised). */
  get hasRules(): boolean {
    return this.#ruleConfigs.length > 0;
  }

  /** Active alarms (newest first) and the newest `historyLimit` history entries. */
  alarms(historyLimit = 100): AlarmsView {
    const store = this.#store;
    if (!store) return { active: [], history: [] };
    this.#active ??= activeAlarms(store.active(), store.acks());
    return { active: this.#active, history: historyLimit ? store.history(historyLimit) : [] };
  }

  /** Counts and the newest active alarms, for `/status` and the status topic. */
  alarmSummary(): AlarmSummary {
    return this.#store ? summarize(this.alarms(0).active) : NO_ALARMS;
  }

  #find(key: string): ActiveAlarm {
    const found = this.alarms(0).active.find((a) => a.key === key);
    if (!found) {
      const keys = this.alarms(0).active.map((a) => a.key);
      throw new AlarmNotFoundError(
        `no active alarm "${key}"${
          keys.length ? `; active: ${keys.slice(0, 20).join(", ")}` : " (none is active)"
        }`,
      );
    }
    return found;
  }

  /**
   * Acknowledges the active alarm `key` (`rule` or `rule[instance]`) on behalf of `by`; it stays
   * active until its condition clears or someone clears it. Acknowledging twice keeps the first.
   */
  acknowledge(key: string, by: string): ActiveAlarm {
    const a = this.#find(key);
    if (a.acknowledged) return a;
    const at = this.#now();
    this.#store!.acknowledge({
      key,
      rule: a.rule,
      ...(a.instance !== undefined ? { instance: a.instance } : {}),
      to: "acknowledged",
      severity: a.severity,
      message: `${key} acknowledged by ${by}`,
      ts: at,
      ...(a.device !== undefined ? { device: a.device } : {}),
      ...(a.metric !== undefined ? { metric: a.metric } : {}),
      ...(a.value !== undefined ? { value: a.value } : {}),
      by,
    });
    this.#count(a.rule, "acknowledged");
    this.#active = undefined;
    this.#log.info("alarm acknowledged", { alarm: key, by });
    this.#onChange();
    return { ...a, acknowledged: { at, by } };
  }

  /**
   * Clears the active alarm `key` by hand on behalf of `by`: a `cleared` transition (sent
   * upstream, actions run) and the rule starts afresh, so it is raised again only if new readings
   * meet its condition again.
   */
  clear(key: string, by: string): AlarmEvent {
    this.#find(key);
    const event = this.#rules!.clear(key, by);
    if (!event) throw new AlarmNotFoundError(`no active alarm "${key}"`);
    return event;
  }

  /** Alarm figures for `/metrics`. */
  metrics(): AlarmMetrics {
    const active = this.alarms(0).active;
    const alarms: AlarmMetrics["alarms"] = [];
    for (const r of this.#ruleConfigs) {
      const own = active.filter((a) => a.rule === r.name);
      if (!own.some((a) => a.instance !== undefined)) {
        alarms.push({ rule: r.name, instance: "", severity: r.severity, active: own.length > 0 });
      }
      for (const a of own) {
        if (a.instance === undefined) continue;
        alarms.push({ rule: r.name, instance: a.instance, severity: a.severity, active: true });
      }
    }
    const transitions: AlarmMetrics["transitions"] = [];
    for (const r of this.#ruleConfigs) {
      for (const to of ["raised", "cleared", "acknowledged"] as const) {
        transitions.push({
          rule: r.name,
          to,
          count: this.#transitions.get(`${r.name}\0${to}`) ?? 0,
        });
      }
    }
    return { alarms, transitions };
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
