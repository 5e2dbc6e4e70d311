/**
 * One gateway as the console sees it, built from its retained status message. Every field beyond
 * state and id is read defensively: a gateway of an older version that does not publish alarms,
 * site or its page address shows them as unknown (null), never as wrong.
 */
import type { StatusMessage } from "../uplink/mod.ts";

/** A finite number, or null. */
export const num = (v: unknown): number | null =>
  typeof v === "number" && Number.isFinite(v) ? v : null;

/** A gateway's health in one word, worst first: see {@linkcode gatewayView}. */
export type Health = "offline" | "stale" | "failing" | "alarm" | "lagging" | "ok";

/** Active and acknowledged alarms from the status's `alarms`. */
export interface AlarmCounts {
  active: number;
  acknowledged: number | null;
  /** `rule` (`/instance`) of the active ones, at most 20. */
  names: string[];
}

/** One gateway as the console sees it. */
export interface GatewayView {
  id: string;
  state: "online" | "offline";
  /** Online, but its status has not been refreshed for longer than `staleAfterMs`. */
  stale: boolean;
  version: string | null;
  backlog: number | null;
  /** Age of its oldest unforwarded reading now (extrapolated from its last status). */
  oldestPendingAgeMs: number | null;
  /** When its oldest unforwarded reading arrived, ms since epoch (null: none or not known). */
  oldestPendingSince: number | null;
  /**
   * When it was last heard of: a live status's arrival, else the time in the retained status
   * (for a last will, that is when the gateway had connected).
   */
  lastSeen: number | null;
  /** For an offline gateway: when its offline status arrived (or, retained, its time). */
  offlineSince: number | null;
  startedAt: number | null;
  reason: string | null;
  /** `site` of its status; null when it does not publish one. */
  site: string | null;
  /** `pageUrl` of its status (http or https only); null otherwise. */
  pageUrl: string | null;
  /** Alarms from its status; null when it does not publish them (unknown). */
  alarms: AlarmCounts | null;
  health: Health;
  /** Why the health is not `ok`, for people. */
  healthNote: string | null;
  /**
   * What this gateway grants the console's operator key, as its last `ping` reply said: the key
   * id, name and scopes; null when it answered an unsigned ping; undefined when not known yet.
   */
  operator?: GrantedKey | null;
  /** The retained status message as published. */
  status: StatusMessage;
}

/** An operator key as a gateway grants it (the `operator` of a ping reply). */
export interface GrantedKey {
  keyid: string;
  name?: string;
  scopes: string[];
}

/** A backlog whose oldest reading is older than this makes a gateway `lagging`. */
export const LAGGING_AFTER_MS = 10 * 60_000;

/** An http(s) URL as given, or null (no `javascript:` or relative links on the page). */
export function httpUrl(v: unknown): string | null {
  if (typeof v !== "string" || v.length > 2048) return null;
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Reads `alarms: {active, acknowledged, list}`; `active` may be a count or a list. */
export function alarmCounts(v: unknown): AlarmCounts | null {
  if (!v || typeof v !== "object") return null;
  const a = v as { active?: unknown; acknowledged?: unknown; list?: unknown };
  const count = (x: unknown) => Array.isArray(x) ? x.length : num(x);
  const active = count(a.active);
  if (active === null || active < 0) return null;
  const ack = count(a.acknowledged);
  const items = Array.isArray(a.active) ? a.active : Array.isArray(a.list) ? a.list : [];
  const names: string[] = [];
  for (const item of items) {
    if (names.length >= 20 || !item || typeof item !== "object") continue;
    const i = item as { rule?: unknown; instance?: unknown; state?: unknown; active?: unknown };
    if (i.state !== undefined && i.state !== "active") continue;
    if (i.active === false) continue;
    if (typeof i.rule !== "string") continue;
    names.push(typeof i.instance === "string" && i.instance ? `${i.rule}/${i.instance}` : i.rule);
  }
  return { active, acknowledged: ack, names };
}

/** What a `health` field of the status says is failing; null when it says nothing. */
function reportedFailing(v: unknown): string[] | null {
  if (typeof v === "string") return v === "ok" || v === "healthy" ? [] : [v];
  if (!v || typeof v !== "object") return null;
  const h = v as { ok?: unknown; status?: unknown; failing?: unknown };
  const failing = Array.isArray(h.failing) ? h.failing.map(String) : [];
  if (h.ok === false || (typeof h.status === "string" && !/^(ok|healthy)$/.test(h.status))) {
    return failing.length ? failing : [typeof h.status === "string" ? h.status : "not ok"];
  }
  return failing;
}

/**
 * Builds the view of one gateway from its status message. Health, worst first: `offline`;
 * `stale` (online, but no status for `staleAfterMs`); `failing` (its status's `health` names
 * failing checks); `alarm` (active alarms); `lagging` (a backlog whose oldest reading is older
 * than 10 min); `ok`.
 */
export function gatewayView(
  id: string,
  status: StatusMessage,
  o: { receivedAt: number; live: boolean; now: number; staleAfterMs: number },
): GatewayView {
  const ts = num(status.ts);
  const lastSeen = o.live ? o.receivedAt : ts;
  const age = num(status.oldestPendingAgeMs);
  const backlog = num(status.backlog);
  // The oldest pending reading keeps ageing after the status was published.
  const since = age !== null && ts !== null && backlog ? ts - age : null;
  const oldest = since !== null ? o.now - since : age;
  const stale = status.state === "online" && lastSeen !== null &&
    o.now - lastSeen > o.staleAfterMs;
  const alarms = alarmCounts(status.alarms);
  const failing = reportedFailing(status.health);
  const reason = typeof status.reason === "string" ? status.reason : null;
  let health: Health = "ok";
  let healthNote: string | null = null;
  if (status.state === "offline") {
    health = "offline";
    healthNote = reason;
  } else if (stale) {
    health = "stale";
    healthNote = `no status for over ${Math.round(o.staleAfterMs / 1000)}s`;
  } else if (failing?.length) {
    health = "failing";
    healthNote = `failing: ${failing.join(", ")}`;
  } else if (alarms && alarms.active > 0) {
    health = "alarm";
    healthNote = `${alarms.active} active alarm(s)${
      alarms.names.length ? `: ${alarms.names.join(", ")}` : ""
    }`;
  } else if (oldest !== null && backlog && oldest > LAGGING_AFTER_MS) {
    health = "lagging";
    healthNote = `${backlog} readings pending, the oldest for ${Math.round(oldest / 60_000)} min`;
  }
  return {
    id,
    state: status.state,
    stale,
    version: typeof status.version === "string" ? status.version : null,
    backlog,
    oldestPendingAgeMs: oldest === null ? null : Math.max(0, oldest),
    oldestPendingSince: since,
    lastSeen,
    offlineSince: status.state === "offline" ? lastSeen : null,
    startedAt: num(status.startedAt),
    reason,
    site: typeof status.site === "string" && status.site ? status.site : null,
    pageUrl: httpUrl(status.pageUrl),
    alarms,
    health,
    healthNote,
    status,
  };
}
