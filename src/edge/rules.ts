import type { Stage } from "../pipeline.ts";
import type { Reading } from "../reading.ts";
import type { AlarmEvent, AlarmStore } from "./alarm_store.ts";
import { type LeafCondition, leavesOf, type RuleConfig } from "./config.ts";
import { fill } from "./_template.ts";

interface LeafState {
  cond: LeafCondition;
  rule: RuleState;
  /** The condition holds (with hysteresis applied), ignoring `for`. */
  latched: boolean;
  /** When `latched` last became true. */
  since: number;
  /** A value has been seen since start (staleness leaves are always known). */
  known: boolean;
  lastSeen: number;
  /** Latest reading of this leaf's metric (rate, event details). */
  last: Reading | undefined;
}

interface RuleState {
  config: RuleConfig;
  leaves: LeafState[];
  active: boolean;
  raisedAt: number;
  /** Has a `for:` or `stale:` leaf, so time alone can change it. */
  timed: boolean;
}

/** Options of {@linkcode RuleEngine}. */
export interface RuleEngineOptions {
  /** Persistent alarm state; active alarms in it are restored at construction. */
  store: AlarmStore;
  /** Called after each transition is recorded (actions, the alarm lane). */
  notify: (rule: RuleConfig, event: AlarmEvent) => void;
  /** Clock of `for:`, `stale:` and event times. */
  now?: () => number;
}

/**
 * The `rules:` stage: watches readings (it never drops one), keeps each rule's condition state and
 * turns changes into alarm transitions, raised → cleared. Thresholds latch with hysteresis
 * (`above`/`clearBelow`); `for:` asks the condition to hold that long (by the engine's clock)
 * before it counts, and any dip (past the hysteresis band) restarts it. A transition is written to
 * the {@linkcode AlarmStore} before `notify` runs, so after a restart an active alarm is neither
 * raised again nor forgotten. Time-only changes (`for:`, `stale:`) need {@linkcode tick}.
 */
export class RuleEngine implements Stage {
  readonly #store: AlarmStore;
  readonly #notify: RuleEngineOptions["notify"];
  readonly #now: () => number;
  readonly #rules: RuleState[] = [];
  readonly #byKey = new Map<string, LeafState[]>();
  readonly #timed: RuleState[];
  #pending: { rule: RuleConfig | undefined; event: AlarmEvent }[] = [];

  constructor(rules: readonly RuleConfig[], opts: RuleEngineOptions) {
    this.#store = opts.store;
    this.#notify = opts.notify;
    this.#now = opts.now ?? Date.now;
    const now = this.#now();
    const active = this.#store.active();
    for (const config of rules) {
      const prior = active.get(config.name);
      active.delete(config.name);
      const rule: RuleState = {
        config,
        leaves: [],
        active: prior !== undefined,
        raisedAt: prior?.raisedAt ?? 0,
        timed: false,
      };
      for (const cond of leavesOf(config.when)) {
        const leaf: LeafState = {
          cond,
          rule,
          // A restored alarm keeps its latches, so a value inside the hysteresis band after a
          // restart does not clear it.
          latched: prior !== undefined,
          since: -Infinity,
          known: cond.stale !== undefined,
          lastSeen: now,
          last: undefined,
        };
        rule.leaves.push(leaf);
        rule.timed ||= cond.stale !== undefined || cond.for > 0;
        const key = cond.device + "\0" + cond.metric;
        const list = this.#byKey.get(key);
        if (list) list.push(leaf);
        else this.#byKey.set(key, [leaf]);
      }
      this.#rules.push(rule);
    }
    this.#timed = this.#rules.filter((r) => r.timed);
    for (const [name, raised] of active) {
      this.#transition(undefined, {
        ...raised,
        state: "cleared",
        message: `rule "${name}" is no longer configured`,
        ts: now,
      });
    }
    this.#flush();
  }

  /** Observes readings; returns them unchanged. */
  process(readings: Reading[], _source: string): Reading[] {
    const now = this.#now();
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i];
      const leaves = this.#byKey.get(r.device + "\0" + r.metric);
      if (!leaves) continue;
      for (const leaf of leaves) {
        update(leaf, r, now);
        this.#evaluate(leaf.rule, now, r);
      }
    }
    this.#flush();
    return readings;
  }

  /** Re-evaluates rules that time alone can change (`for:`, `stale:`). */
  tick(): void {
    const now = this.#now();
    for (const rule of this.#timed) this.#evaluate(rule, now, undefined);
    this.#flush();
  }

  /** How often {@linkcode tick} should run: a quarter of the shortest `for:`/`stale:`, 50 ms–1 s. */
  get tickInterval(): number {
    let min = 4000;
    for (const r of this.#timed) {
      for (const l of r.leaves) {
        if (l.cond.stale !== undefined) min = Math.min(min, l.cond.stale);
        if (l.cond.for > 0) min = Math.min(min, l.cond.for);
      }
    }
    return Math.max(50, Math.floor(min / 4));
  }

  /** Rules whose alarm is active now, by name, with when they were raised. */
  active(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#rules) if (r.active) out[r.config.name] = r.raisedAt;
    return out;
  }

  #evaluate(rule: RuleState, now: number, cause: Reading | undefined): void {
    const when = rule.config.when;
    let result: boolean | undefined;
    if ("all" in when || "any" in when) {
      const all = "all" in when;
      let unknown = false;
      result = all;
      for (const l of rule.leaves) {
        const m = met(l, now);
        if (m === undefined) unknown = true;
        else if (m !== all) {
          result = m;
          unknown = false;
          break;
        }
      }
      if (unknown) result = undefined;
    } else result = met(rule.leaves[0], now);
    if (result === undefined || result === rule.active) return;
    rule.active = result;
    if (result) rule.raisedAt = now;
    const c = rule.config;
    // A transition made by time (`for:`, `stale:`) reports the freshest reading of the rule.
    cause ??= rule.leaves.reduce<Reading | undefined>(
      (a, l) => l.last && (!a || l.last.ts > a.ts) ? l.last : a,
      undefined,
    );
    const event: AlarmEvent = {
      rule: c.name,
      state: result ? "raised" : "cleared",
      severity: c.severity,
      message: "",
      ts: now,
      raisedAt: rule.raisedAt,
      ...(cause ? { device: cause.device, metric: cause.metric, value: cause.value } : {}),
    };
    event.message = c.message ? fill(c.message, event) : defaultMessage(c, event);
    this.#transition(c, event);
  }

  #transition(rule: RuleConfig | undefined, event: AlarmEvent): void {
    this.#pending.push({ rule, event });
  }

  /**
   * Persists the transitions of one batch in one transaction, then dispatches them: one commit
   * per batch rather than per alarm keeps dispatch latency flat when many rules flip together.
   */
  #flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#store.recordAll(batch.map(({ rule, event }) => ({ event, queue: rule?.alarm ?? true })));
    for (const { rule, event } of batch) if (rule) this.#notify(rule, event);
  }
}

function defaultMessage(c: RuleConfig, e: AlarmEvent): string {
  const at = e.device ? ` (${e.device} ${e.metric} = ${e.value})` : "";
  return `${c.name} ${e.state}${at}`;
}

/** Whether a leaf counts as true now; undefined while nothing is known. */
function met(l: LeafState, now: number): boolean | undefined {
  const c = l.cond;
  if (c.stale !== undefined) return now - l.lastSeen > c.stale;
  if (!l.known && !l.latched) return undefined;
  return l.latched && now - l.since >= c.for;
}

/** Feeds one reading into a leaf: hysteresis latch, rate, last-seen time. */
function update(l: LeafState, r: Reading, now: number): void {
  const c = l.cond;
  const v = r.value;
  l.lastSeen = now;
  if (!c.rate) l.last = r;
  if (c.stale !== undefined) return;
  let next = l.latched;
  if (c.equals !== undefined) next = v === c.equals;
  else if (typeof v !== "number") return;
  else if (c.above !== undefined) {
    next = l.latched && c.clearBelow !== undefined ? v >= c.clearBelow : v > c.above;
  } else if (c.below !== undefined) {
    next = l.latched && c.clearAbove !== undefined ? v <= c.clearAbove : v < c.below;
  } else if (c.rate) {
    const prev = l.last;
    if (prev && r.ts < prev.ts) return;
    l.last = r;
    if (!prev || typeof prev.value !== "number" || r.ts === prev.ts) return;
    const rate = (v - prev.value) / (r.ts - prev.ts) * c.rate.per;
    next = (c.rate.above !== undefined && rate > c.rate.above) ||
      (c.rate.below !== undefined && rate < c.rate.below);
  }
  l.known = true;
  if (next && !l.latched) l.since = now;
  l.latched = next;
}
