/**
 * The alarms as an operator sees them: active ones (acknowledged or not), the recent history,
 * the summary that `/status` and the status topic carry, and the figures `/metrics` shows.
 *
 * @module
 */
import type { AlarmAck, AlarmEvent, AlarmHistoryEntry } from "./alarm_store.ts";

/** An active alarm with its acknowledgement, if any. */
export interface ActiveAlarm {
  /** `rule`, or `rule[instance]`: what acknowledge and clear name. */
  key: string;
  rule: string;
  instance?: string;
  severity: string;
  message: string;
  raisedAt: number;
  device?: string;
  metric?: string;
  value?: number | boolean | string;
  acknowledged: AlarmAck | null;
}

/** Active alarms and the newest history entries (newest first). */
export interface AlarmsView {
  active: ActiveAlarm[];
  history: AlarmHistoryEntry[];
}

/** Active alarms listed in the summary at most; `more` counts the rest. */
export const SUMMARY_LIST = 20;

/**
 * What `/status` (`alarms`) and the retained status message carry: how many alarms are active and
 * not acknowledged, how many are acknowledged (and still active), and the newest active ones.
 */
export interface AlarmSummary {
  active: number;
  acknowledged: number;
  list: {
    key: string;
    severity: string;
    raisedAt: number;
    acknowledged: boolean;
  }[];
  /** Active alarms left out of `list`. */
  more: number;
}

/** Alarm figures for `/metrics`. */
export interface AlarmMetrics {
  /** One per configured rule without globs (active or not) and per active instance. */
  alarms: { rule: string; instance: string; severity: string; active: boolean }[];
  /** Transitions since the gateway started, by rule and the state moved to. */
  transitions: { rule: string; to: AlarmHistoryEntry["to"]; count: number }[];
}

/** No active alarm has the key an operator named. */
export class AlarmNotFoundError extends Error {
  override name = "AlarmNotFoundError";
}

/** Active alarms from the store's raise events and acknowledgements, newest first. */
export function activeAlarms(
  raised: Map<string, AlarmEvent>,
  acks: Map<string, AlarmAck>,
): ActiveAlarm[] {
  return [...raised].map(([key, e]): ActiveAlarm => ({
    key,
    rule: e.rule,
    ...(e.instance !== undefined ? { instance: e.instance } : {}),
    severity: e.severity,
    message: e.message,
    raisedAt: e.raisedAt,
    ...(e.device !== undefined ? { device: e.device } : {}),
    ...(e.metric !== undefined ? { metric: e.metric } : {}),
    ...(e.value !== undefined ? { value: e.value } : {}),
    acknowledged: acks.get(key) ?? null,
  })).sort((a, b) => b.raisedAt - a.raisedAt || a.key.localeCompare(b.key));
}

/** The summary of {@linkcode AlarmSummary} from the active alarms (newest first). */
export function summarize(active: ActiveAlarm[]): AlarmSummary {
  const acknowledged = active.filter((a) => a.acknowledged).length;
  return {
    active: active.length - acknowledged,
    acknowledged,
    list: active.slice(0, SUMMARY_LIST).map((a) => ({
      key: a.key,
      severity: a.severity,
      raisedAt: a.raisedAt,
      acknowledged: a.acknowledged !== null,
    })),
    more: Math.max(0, active.length - SUMMARY_LIST),
  };
}

/** The summary of a gateway without rules. */
export const NO_ALARMS: AlarmSummary = { active: 0, acknowledged: 0, list: [], more: 0 };
