import type { Stage } from "../pipeline.ts";
import type { Reading } from "../reading.ts";
import { type AlarmEvent, alarmKey, type AlarmStore } from "./alarm_store.ts";
import { type LeafCondition, leavesOf, type RuleConfig } from "./config.ts";
import { globTest, isGlob } from "./_match.ts";
import { fill } from "./_template.ts";

interface LeafState {
  cond: LeafCondition;
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

/** One alarm: a rule without globs, or one instance (device, or device/metric) of a rule with. */
interface Alarm {
  rule: RuleState;
  /** Instance name; undefined for a rule without globs. */
  instance: string | undefined;
  /** The device an instance is bound to. */
  device: string | undefined;
  /** The metric an instance is bound to, when the rule's metric is a glob. */
  metric: string | undefined;
  /** In condition order: the instance's own state for leaves with a glob, shared ones else. */
  leaves: LeafState[];
  active: boolean;
  raisedAt: number;
}

interface RuleState {
  config: RuleConfig;
  conds: LeafCondition[];
  /** Per leaf: matchers when the leaf has a glob (its state is per instance). */
  globs: ({ device: (d: string) => boolean; metric: (m: string) => boolean } | undefined)[];
  /** Per leaf: the state shared by every instance, for leaves without a glob. */
  shared: (LeafState | undefined)[];
  alarms: Alarm[];
  byInstance: Map<string, Alarm>;
  /** Instances are per device/metric pair (a single condition with a metric glob). */
  perMetric: boolean;
  /** Has a `for:` or `stale:` leaf, so time alone can change it. */
  timed: boolean;
  /** Has a glob and a `stale:` leaf: instances are remembered so silence is watched on restart. */
  remember: boolean;
}

/** A leaf to update for a device/metric pair, and the alarms to re-evaluate after. */
interface Target {
  leaf: LeafState;
  alarms: Alarm[];
}

/** Options of {@linkcode RuleEngine}. */
export interface RuleEngineOptions {
  /** Persistent alarm state; active alarms in it are restored at construction. */
  store: AlarmStore;
  /** Dispatches each transition (actions); called just before its batch is recorded. */
  notify: (rule: RuleConfig, event: AlarmEvent) => void;
  /** Called once a batch of transitions is recorded (the alarm lane reads them from the store). */
  recorded?: () => void;
  /** Clock of `for:`, `stale:` and event times. */
  now?: () => number;
}

/**
 * The `rules:` stage: watches readings (it never drops one), keeps each rule's condition state and
 * turns changes into alarm transitions, raised → cleared. Thresholds latch with hysteresis
 * (`above`/`clearBelow`); `for:` asks the condition to hold that long (by the engine's clock)
 * before it counts, and any dip (past the hysteresis band) restarts it. A batch's transitions are
 * dispatched (`notify`) and then written to the {@linkcode AlarmStore} in the same synchronous
 * turn, so after a restart an active alarm is not forgotten, and is raised again only after a
 * crash inside that write (see `#flush`). Time-only changes (`for:`, `stale:`) need
 * {@linkcode tick}.
 *
 * A rule whose condition has a glob is a template: each matching device (or device/metric pair,
 * when the metric is a glob) gets its own alarm instance, created at its first reading, with its
 * own condition state and its own raise and clear. Leaves without a glob are shared by all
 * instances.
 */
export class RuleEngine implements Stage {
  readonly #store: AlarmStore;
  readonly #notify: RuleEngineOptions["notify"];
  readonly #recorded: (() => void) | undefined;
  readonly #now: () => number;
  readonly #rules: RuleState[] = [];
  /** Targets of leaves without a glob, by `device\0metric`. */
  readonly #exact = new Map<string, Target[]>();
  /** Targets by `device\0metric`: `#exact` itself without glob rules, else a cache of pairs seen. */
  readonly #byKey: Map<string, Target[]>;
  readonly #globRules: RuleState[];
  readonly #timed: RuleState[];
  #pending: { rule: RuleConfig | undefined; event: AlarmEvent }[] = [];

  constructor(rules: readonly RuleConfig[], opts: RuleEngineOptions) {
    this.#store = opts.store;
    this.#notify = opts.notify;
    this.#recorded = opts.recorded;
    this.#now = opts.now ?? Date.now;
    const now = this.#now();
    const active = this.#store.active();
    const known = Map.groupBy(this.#store.instances(), (i) => i.rule);
    for (const config of rules) {
      const conds = leavesOf(config.when);
      const globs = conds.map((c) =>
        isGlob(c.device) || isGlob(c.metric)
          ? { device: globTest(c.device), metric: globTest(c.metric) }
          : undefined
      );
      const globbed = globs.some((g) => g !== undefined);
      const rule: RuleState = {
        config,
        conds,
        globs,
        shared: conds.map((c, i) => globs[i] ? undefined : newLeaf(c, now)),
        alarms: [],
        byInstance: new Map(),
        perMetric: conds.length === 1 && isGlob(conds[0].metric),
        timed: conds.some((c) => c.stale !== undefined || c.for > 0),
        remember: globbed && conds.some((c) => c.stale !== undefined),
      };
      this.#rules.push(rule);
      conds.forEach((c, i) => {
        const leaf = rule.shared[i];
        if (!leaf) return;
        const key = c.device + "\0" + c.metric;
        const list = this.#exact.get(key);
        const target = { leaf, alarms: rule.alarms };
        if (list) list.push(target);
        else this.#exact.set(key, [target]);
      });
      if (!globbed) {
        const prior = active.get(config.name);
        active.delete(config.name);
        this.#addAlarm(rule, undefined, undefined, prior, now);
        continue;
      }
      for (const [key, prior] of active) {
        if (prior.rule !== config.name || prior.instance === undefined) continue;
        const bound = this.#bind(rule, prior.device, prior.metric);
        if (bound?.instance !== prior.instance) continue;
        active.delete(key);
        this.#addAlarm(rule, bound.device, bound.metric, prior, now);
      }
      for (const k of known.get(config.name) ?? []) {
        const bound = this.#bind(rule, k.device, k.metric ?? undefined);
        if (!rule.remember || bound?.instance !== k.instance) {
          this.#store.forgetInstance(k.rule, k.instance);
        } else if (!rule.byInstance.has(k.instance)) {
          this.#addAlarm(rule, bound.device, bound.metric, undefined, now);
        }
      }
    }
    for (const [rule, list] of known) {
      if (!rules.some((r) => r.name === rule)) {
        for (const k of list) this.#store.forgetInstance(rule, k.instance);
      }
    }
    this.#globRules = this.#rules.filter((r) => r.globs.some((g) => g !== undefined));
    this.#byKey = this.#globRules.length ? new Map() : this.#exact;
    this.#timed = this.#rules.filter((r) => r.timed);
    for (const [key, raised] of active) {
      this.#transition(undefined, {
        ...raised,
        state: "cleared",
        message: raised.instance === undefined
          ? `rule "${raised.rule}" is no longer configured`
          : `alarm "${key}" no longer matches a configured rule`,
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
      const key = r.device + "\0" + r.metric;
      let targets = this.#byKey.get(key);
      if (targets === undefined) {
        if (this.#globRules.length === 0) continue;
        targets = this.#resolve(r.device, r.metric, key, now);
      }
      for (let j = 0; j < targets.length; j++) {
        const t = targets[j];
        update(t.leaf, r, now);
        for (let k = 0; k < t.alarms.length; k++) this.#evaluate(t.alarms[k], now, r);
      }
    }
    this.#flush();
    return readings;
  }

  /** Re-evaluates rules that time alone can change (`for:`, `stale:`). */
  tick(): void {
    const now = this.#now();
    for (const rule of this.#timed) {
      for (const alarm of rule.alarms) this.#evaluate(alarm, now, undefined);
    }
    this.#flush();
  }

  /** How often {@linkcode tick} should run: a quarter of the shortest `for:`/`stale:`, 50 ms–1 s. */
  get tickInterval(): number {
    let min = 4000;
    for (const r of this.#timed) {
      for (const c of r.conds) {
        if (c.stale !== undefined) min = Math.min(min, c.stale);
        if (c.for > 0) min = Math.min(min, c.for);
      }
    }
    return Math.max(50, Math.floor(min / 4));
  }

  /** Active alarms by {@linkcode alarmKey} (`rule`, or `rule[instance]`), with when raised. */
  active(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#rules) {
      for (const a of r.alarms) {
        if (a.active) out[alarmKey({ rule: r.config.name, instance: a.instance })] = a.raisedAt;
      }
    }
    return out;
  }

  /**
   * Clears the active alarm `key` (`rule` or `rule[instance]`) by hand: records a `cleared`
   * transition naming `by`, and forgets the alarm's condition state, so it is raised again only
   * once new readings (or new silence, for `stale:`) meet the condition again. Returns the event,
   * or undefined when no alarm of that key is active.
   */
  clear(key: string, by: string): AlarmEvent | undefined {
    const now = this.#now();
    for (const r of this.#rules) {
      for (const a of r.alarms) {
        if (!a.active || alarmKey({ rule: r.config.name, instance: a.instance }) !== key) continue;
        a.active = false;
        const cause = a.leaves.reduce<Reading | undefined>(
          (x, l) => l.last && (!x || l.last.ts > x.ts) ? l.last : x,
          undefined,
        );
        for (const l of a.leaves) {
          l.latched = false;
          l.since = -Infinity;
          if (l.cond.stale !== undefined) l.lastSeen = now;
          else l.known = false;
        }
        const event: AlarmEvent = {
          rule: r.config.name,
          ...(a.instance !== undefined ? { instance: a.instance } : {}),
          state: "cleared",
          severity: r.config.severity,
          message: `${key} cleared by hand (${by})`,
          ts: now,
          raisedAt: a.raisedAt,
          // After a restart the leaves have seen nothing yet: the raise tells the value.
          ...(cause
            ? { device: cause.device, metric: cause.metric, value: cause.value }
            : pick(this.#store.active().get(key))),
          by,
        };
        this.#transition(r.config, event);
        this.#flush();
        return event;
      }
    }
    return undefined;
  }

  /** The instance of `rule` that a device (and metric) belongs to, if they match its globs. */
  #bind(
    rule: RuleState,
    device: string | undefined,
    metric: string | undefined,
  ): { instance: string; device: string; metric: string | undefined } | undefined {
    if (device === undefined) return undefined;
    if (rule.perMetric) {
      const g = rule.globs[0]!;
      if (metric === undefined || !g.device(device) || !g.metric(metric)) return undefined;
      return { instance: `${device}/${metric}`, device, metric };
    }
    const g = rule.globs.find((g) => g !== undefined);
    return g?.device(device) ? { instance: device, device, metric: undefined } : undefined;
  }

  /** Finds (creating instances as needed) and caches the targets of a pair seen for the first time. */
  #resolve(device: string, metric: string, key: string, now: number): Target[] {
    const targets: Target[] = [...this.#exact.get(key) ?? []];
    for (const rule of this.#globRules) {
      for (let i = 0; i < rule.conds.length; i++) {
        const g = rule.globs[i];
        if (!g || !g.device(device) || !g.metric(metric)) continue;
        const bound = this.#bind(rule, device, metric)!;
        let alarm = rule.byInstance.get(bound.instance);
        if (!alarm) {
          alarm = this.#addAlarm(rule, bound.device, bound.metric, undefined, now);
          if (rule.remember) {
            this.#store.addInstance({
              rule: rule.config.name,
              instance: bound.instance,
              device: bound.device,
              metric: bound.metric ?? null,
            });
          }
        }
        targets.push({ leaf: alarm.leaves[i], alarms: [alarm] });
      }
    }
    this.#byKey.set(key, targets);
    return targets;
  }

  /**
   * Adds an alarm (the rule's only one, or an instance). One restored from `prior` keeps its
   * latches, so a value inside the hysteresis band after a restart does not clear it, and its
   * staleness, so a device silent across the restart does not clear it either.
   */
  #addAlarm(
    rule: RuleState,
    device: string | undefined,
    metric: string | undefined,
    prior: AlarmEvent | undefined,
    now: number,
  ): Alarm {
    const instance = device === undefined
      ? undefined
      : metric === undefined
      ? device
      : `${device}/${metric}`;
    // Shared leaves carry the restored state for a rule without globs, and for instances only
    // under all: (where every leaf held); under any: the instance's own leaves do.
    const restoreShared = prior !== undefined &&
      (instance === undefined || "all" in rule.config.when);
    const leaves = rule.conds.map((c, i) => {
      const shared = rule.shared[i];
      if (shared) {
        if (restoreShared) restore(shared);
        return shared;
      }
      const own = newLeaf(c, now);
      if (prior) restore(own);
      return own;
    });
    const alarm: Alarm = {
      rule,
      instance,
      device,
      metric,
      leaves,
      active: prior !== undefined,
      raisedAt: prior?.raisedAt ?? 0,
    };
    rule.alarms.push(alarm);
    if (instance !== undefined) rule.byInstance.set(instance, alarm);
    return alarm;
  }

  #evaluate(alarm: Alarm, now: number, cause: Reading | undefined): void {
    const when = alarm.rule.config.when;
    let result: boolean | undefined;
    if ("all" in when || "any" in when) {
      const all = "all" in when;
      let unknown = false;
      result = all;
      for (const l of alarm.leaves) {
        const m = met(l, now);
        if (m === undefined) unknown = true;
        else if (m !== all) {
          result = m;
          unknown = false;
          break;
        }
      }
      if (unknown) result = undefined;
    } else result = met(alarm.leaves[0], now);
    if (result === undefined || result === alarm.active) return;
    alarm.active = result;
    if (result) alarm.raisedAt = now;
    const c = alarm.rule.config;
    // An instance reports a reading of its own device; a transition made by time (`for:`,
    // `stale:`) or by another device's reading reports the freshest such reading of the alarm.
    if (cause && alarm.device !== undefined && cause.device !== alarm.device) cause = undefined;
    cause ??= alarm.leaves.reduce<Reading | undefined>(
      (a, l) =>
        l.last && (alarm.device === undefined || l.last.device === alarm.device) &&
          (!a || l.last.ts > a.ts)
          ? l.last
          : a,
      undefined,
    );
    const event: AlarmEvent = {
      rule: c.name,
      ...(alarm.instance !== undefined ? { instance: alarm.instance } : {}),
      state: result ? "raised" : "cleared",
      severity: c.severity,
      message: "",
      ts: now,
      raisedAt: alarm.raisedAt,
      ...(cause ? { device: cause.device, metric: cause.metric, value: cause.value } : {}),
    };
    if (alarm.device !== undefined && !cause) {
      event.device = alarm.device;
      const metric = alarm.metric ?? (alarm.leaves.length === 1 ? alarm.leaves[0].cond.metric : "");
      if (metric) event.metric = metric;
    }
    event.message = c.message ? fill(c.message, event) : defaultMessage(c, event);
    this.#transition(c, event);
  }

  #transition(rule: RuleConfig | undefined, event: AlarmEvent): void {
    this.#pending.push({ rule, event });
  }

  /**
   * Dispatches the transitions of one batch, then records them in one transaction (one commit per
   * batch, not per alarm), in the same synchronous turn: actions start without waiting for the
   * SQLite write (~0.4 ms for 100 transitions), while nothing else runs before it is durable — no
   * further reading, no buffer commit and so no answer to a device, no event sent upstream (the
   * alarm lane reads the store after `recorded`), and no action's asynchronous step. Only an
   * action's first synchronous step (a socket write it issues at once) can precede the write, by
   * that write's duration: a crash (SIGKILL, power) inside it leaves the alarm recorded as before,
   * so after the restart it is raised again and its actions run again — at least once. Writing
   * first had the mirror-image window: a crash after the write lost the actions for good while
   * the alarm stayed raised. A failed write still throws into the pipeline (the readings are not
   * stored and the device sends them again).
   */
  #flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    try {
      for (let i = 0; i < batch.length; i++) {
        const { rule, event } = batch[i];
        if (rule) this.#notify(rule, event);
      }
    } finally {
      this.#store.recordAll(
        batch.map(({ rule, event }) => ({ event, queue: rule?.alarm ?? true })),
      );
    }
    this.#recorded?.();
  }
}

/** Device, metric and value of an event, when it has them. */
function pick(e: AlarmEvent | undefined): Partial<AlarmEvent> {
  if (!e) return {};
  return {
    ...(e.device !== undefined ? { device: e.device } : {}),
    ...(e.metric !== undefined ? { metric: e.metric } : {}),
    ...(e.value !== undefined ? { value: e.value } : {}),
  };
}

function newLeaf(cond: LeafCondition, now: number): LeafState {
  return {
    cond,
    latched: false,
    since: -Infinity,
    known: cond.stale !== undefined,
    lastSeen: now,
    last: undefined,
  };
}

/** Puts a leaf of a restored active alarm back in the state that made it active. */
function restore(l: LeafState): void {
  l.latched = true;
  if (l.cond.stale !== undefined) l.lastSeen = -Infinity;
}

function defaultMessage(c: RuleConfig, e: AlarmEvent): string {
  const name = e.instance === undefined ? c.name : `${c.name}[${e.instance}]`;
  const at = e.value !== undefined ? ` (${e.device} ${e.metric} = ${e.value})` : "";
  return `${name} ${e.state}${at}`;
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
