/**
 * Whether each device is online, derived in one place for every adapter kind: from the time its
 * last reading arrived and how often readings are expected (the adapter's poll interval, the
 * entry's `offlineAfter`, or, for devices that send on their own, the interval seen so far). A
 * state an adapter reports itself (a Modbus unit that stopped answering, a Zigbee device its
 * coordinator calls offline) comes first: it carries the reason.
 *
 * @module
 */
import type { DeviceState } from "./adapter.ts";
import type { Reading } from "./reading.ts";

/** A device's presence as status shows it. */
export interface DevicePresence {
  state: DeviceState;
  reason?: string;
  /** Since when the device is in this state (reported), or its last reading arrived. */
  since: number;
  /** When the device's last reading arrived at the gateway (ms), or null before one. */
  lastSeen: number | null;
  /** Silence after which it counts as offline, ms. */
  offlineAfterMs: number;
}

/** How one adapter entry's devices are judged. */
export interface PresencePolicy {
  /** Set by the entry's `offlineAfter`: wins over everything else. */
  offlineAfterMs?: number;
  /** The adapter's poll interval (the longest of its devices), when it polls. */
  pollIntervalMs?: number;
}

/** Poll cycles a device may miss before it counts as offline. */
const MISSED_POLLS = 3;
/** Never offline sooner than this after its last reading (commit window, a slow poll). */
const MIN_OFFLINE_AFTER_MS = 10_000;
/** For devices that send on their own, at least this long and this many of their intervals. */
const MIN_PUSH_OFFLINE_AFTER_MS = 60_000;
const PUSH_INTERVALS = 3;
/** Until a device's interval is known (two arrivals), silence for this long means offline. */
const DEFAULT_OFFLINE_AFTER_MS = 5 * 60_000;
/** Devices tracked per adapter entry at most (the series cap bounds them anyway). */
const MAX_DEVICES = 100_000;

interface Seen {
  last: number;
  /** When the device last came (back) online by its readings. */
  onlineSince: number;
  /** Smoothed interval between arrivals, ms; 0 until two arrivals. */
  interval: number;
}

/** The silence after which a device with this policy and observed interval is offline. */
export function offlineAfter(policy: PresencePolicy, observedIntervalMs = 0): number {
  if (policy.offlineAfterMs !== undefined) return policy.offlineAfterMs;
  if (policy.pollIntervalMs !== undefined) {
    return Math.max(MISSED_POLLS * policy.pollIntervalMs, MIN_OFFLINE_AFTER_MS);
  }
  if (observedIntervalMs <= 0) return DEFAULT_OFFLINE_AFTER_MS;
  return Math.max(PUSH_INTERVALS * observedIntervalMs, MIN_PUSH_OFFLINE_AFTER_MS);
}

/** Arrival times of the devices of one adapter entry, and their derived presence. */
export class Presence {
  readonly #policy: PresencePolicy;
  readonly #now: () => number;
  readonly #seen = new Map<string, Seen>();

  constructor(policy: PresencePolicy, opts: { now?: () => number } = {}) {
    this.#policy = policy;
    this.#now = opts.now ?? Date.now;
  }

  /** Takes over the arrivals another tracker saw (the same entry before a config reload). */
  carry(from: Presence | undefined): this {
    if (from) { for (const [id, s] of from.#seen) this.#seen.set(id, { ...s }); }
    return this;
  }

  /** Notes that readings of these devices arrived now (call once their emit was accepted). */
  arrived(readings: readonly Reading[]): void {
    const now = this.#now();
    let prev: string | undefined;
    for (const r of readings) {
      if (r.device === prev) continue;
      prev = r.device;
      const s = this.#seen.get(r.device);
      if (!s) {
        if (this.#seen.size < MAX_DEVICES) {
          this.#seen.set(r.device, { last: now, onlineSince: now, interval: 0 });
        }
        continue;
      }
      const gap = now - s.last;
      // Readings of one batch split over two emits are one arrival.
      if (gap < 50) continue;
      if (gap > offlineAfter(this.#policy, s.interval)) s.onlineSince = now;
      s.interval = s.interval === 0 ? gap : s.interval * 0.8 + gap * 0.2;
      s.last = now;
    }
  }

  /**
   * Every device's presence: those the adapter reported on and those it sent readings for. A
   * reported `online` is checked against the readings; a reported `offline` or `unavailable`
   * stands until the adapter says otherwise.
   */
  judge(
    reported: Record<string, { state: DeviceState; reason?: string; since: number }>,
  ): Record<string, DevicePresence> {
    const now = this.#now();
    const out: Record<string, DevicePresence> = {};
    const ids = new Set([...Object.keys(reported), ...this.#seen.keys()]);
    for (const id of ids) {
      const r = reported[id];
      const s = this.#seen.get(id);
      const after = offlineAfter(this.#policy, s?.interval);
      const lastSeen = s?.last ?? null;
      if (r && r.state !== "online") {
        out[id] = { ...r, lastSeen, offlineAfterMs: after };
      } else if (lastSeen === null) {
        out[id] = { state: "online", since: r!.since, lastSeen, offlineAfterMs: after };
      } else if (now - lastSeen > after) {
        out[id] = {
          state: "offline",
          reason: `no reading for ${seconds(now - lastSeen)} (offline after ${seconds(after)})`,
          since: lastSeen + after,
          lastSeen,
          offlineAfterMs: after,
        };
      } else {
        out[id] = {
          state: "online",
          since: Math.max(r?.since ?? 0, s!.onlineSince),
          lastSeen,
          offlineAfterMs: after,
        };
      }
    }
    return out;
  }
}

function seconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}
