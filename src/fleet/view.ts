/**
 * One gateway as the console sees it, built from its retained status message. Every field beyond
 * state and id is read defensively: a gateway of an older version that does not publish alarms,
 * site or its page address shows them as unknown (null), never as wrong; one of a newer `schema`
 * shows the fields this console knows, and a note says so.
 */
import { STATUS_SCHEMA, type StatusMessage } from "../uplink/mod.ts";

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
  /** The host checklist's verdict (`outpost doctor`); null when it does not publish one. */
  doctor: DoctorVerdict | null;
  /** Device updates per class; null when it does not publish them (no `devices:`). */
  deviceUpdates: DeviceUpdates | null;
  health: Health;
  /** Why the health is not `ok`, for people (with {@linkcode GatewayView.statusNote}). */
  healthNote: string | null;
  /** `schema` of its status (the shape's version); null when it does not say (older gateway). */
  schema: number | null;
  /** Fields its status left out or shortened to fit its size budget (`truncated`). */
  truncated: string[];
  /** What of its status this console could not show in full, for people; null when nothing. */
  statusNote: string | null;
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
    // A gateway's own summary lists `{key, acknowledged}` (`rule` or `rule[instance]`).
    const k = item as { key?: unknown; acknowledged?: unknown };
    if (typeof i.rule !== "string" && typeof k.key === "string" && k.key) {
      if (k.acknowledged !== true) names.push(k.key.slice(0, 200));
      continue;
    }
    if (typeof i.rule !== "string") continue;
    names.push(typeof i.instance === "string" && i.instance ? `${i.rule}/${i.instance}` : i.rule);
  }
  return { active, acknowledged: ack, names };
}

/** The host checklist's verdict from the status's `doctor` summary. */
export interface DoctorVerdict {
  ok: boolean;
  /** Ids of the failing checks, at most 20. */
  failing: string[];
  /** Ids of the checks that warn, at most 20. */
  warning: string[];
  fail: number;
  warn: number;
  /** When the checklist ran, ms since epoch. */
  at: number | null;
  /** `ok`, `ok, 1 warning`, `2 failing, 1 warning`. */
  label: string;
}

/** Up to 20 short strings of an array; anything else is dropped. */
const ids = (v: unknown): string[] =>
  Array.isArray(v)
    ? v.filter((x): x is string => typeof x === "string" && x.length > 0 && x.length <= 64)
      .slice(0, 20)
    : [];
const count = (v: unknown): number | null => {
  const n = num(v);
  return n !== null && n >= 0 ? Math.floor(n) : null;
};
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Reads `doctor: {at, ok, summary: {fail, warn}, failing, warning}`; null when it is not that. */
export function doctorVerdict(v: unknown): DoctorVerdict | null {
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const d = v as { at?: unknown; ok?: unknown; summary?: unknown; failing?: unknown };
  const summary = (d.summary && typeof d.summary === "object" ? d.summary : {}) as {
    fail?: unknown;
    warn?: unknown;
  };
  if (typeof d.ok !== "boolean" && !Array.isArray(d.failing)) return null;
  const failing = ids(d.failing);
  const warning = ids((v as { warning?: unknown }).warning);
  const fail = Math.max(count(summary.fail) ?? 0, failing.length);
  const warn = Math.max(count(summary.warn) ?? 0, warning.length);
  const ok = typeof d.ok === "boolean" ? d.ok && fail === 0 : fail === 0;
  const label = ok
    ? `ok${warn ? `, ${plural(warn, "warning")}` : ""}`
    : `${fail || "?"} failing${warn ? `, ${plural(warn, "warning")}` : ""}`;
  return { ok, failing, warning, fail, warn, at: num(d.at), label };
}

/** One device class in {@linkcode DeviceUpdates}. */
export interface ClassUpdates {
  class: string;
  devices: number;
  current: number;
  /** Failed or rolled back. */
  failed: number;
  /** Offered, downloading or installed. */
  inFlight: number;
  waiting: number;
  rollout: { name: string; version: string; status: string; failures: number } | null;
}

/** Device updates from the status's `deviceUpdates` summary. */
export interface DeviceUpdates {
  /** At most 20. */
  classes: ClassUpdates[];
  /** Classes left off. */
  more: number;
  /** `boiler: 3/4 current, stopped: 1 failed`, one part per class; `-` for none. */
  label: string;
}

const ROLLOUT_STATUS = new Set(["running", "stopped", "done"]);

/** A class's state in a few words: `boiler: 3/4 current, stopped: 1 failed`. */
function classLabel(c: ClassUpdates): string {
  const r = c.rollout;
  let s = `${c.class}: ${c.current}/${c.devices} current`;
  if (r?.status === "stopped") return `${s}, stopped: ${r.failures} failed`;
  if (r?.status === "running") s += `, ${r.version} rolling out`;
  return c.failed ? `${s}, ${c.failed} failed` : s;
}

/** Reads `deviceUpdates: {classes: [{class, devices, states, rollout}], more}`; null otherwise. */
export function deviceUpdatesOf(v: unknown): DeviceUpdates | null {
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const d = v as { classes?: unknown; more?: unknown };
  if (!Array.isArray(d.classes)) return null;
  const classes: ClassUpdates[] = [];
  let more = count(d.more) ?? 0;
  for (const item of d.classes) {
    if (!item || typeof item !== "object") continue;
    const c = item as { class?: unknown; devices?: unknown; states?: unknown; rollout?: unknown };
    if (typeof c.class !== "string" || !c.class || c.class.length > 64) continue;
    if (classes.length >= 20) {
      more++;
      continue;
    }
    const st = (c.states && typeof c.states === "object" ? c.states : {}) as Record<
      string,
      unknown
    >;
    const n = (k: string) => count(st[k]) ?? 0;
    const r = c.rollout as
      | { name?: unknown; version?: unknown; status?: unknown; failures?: unknown }
      | null
      | undefined;
    const rollout = r && typeof r === "object" && typeof r.name === "string" &&
        typeof r.version === "string" && typeof r.status === "string" &&
        ROLLOUT_STATUS.has(r.status)
      ? {
        name: r.name.slice(0, 64),
        version: r.version.slice(0, 64),
        status: r.status,
        failures: count(r.failures) ?? 0,
      }
      : null;
    const current = n("current");
    const failed = n("failed") + n("rolled-back");
    const inFlight = n("offered") + n("downloading") + n("installed");
    const waiting = n("waiting");
    const devices = Math.max(
      count(c.devices) ?? 0,
      current + failed + inFlight + waiting + n("unknown"),
    );
    classes.push({ class: c.class, devices, current, failed, inFlight, waiting, rollout });
  }
  const parts = classes.map(classLabel);
  if (more) parts.push(`${more} more class(es)`);
  return { classes, more, label: parts.length ? parts.join("; ") : "-" };
}

/** The note of {@linkcode GatewayView.statusNote}: a newer shape, or detail shed for size. */
function noteOf(schema: number | null, truncated: string[]): string | null {
  const parts = [];
  if (schema !== null && schema > STATUS_SCHEMA) {
    parts.push(
      `status schema ${schema} is newer than this console's (${STATUS_SCHEMA}): showing the fields it knows`,
    );
  }
  if (truncated.length) parts.push(`left out to fit the status size: ${truncated.join(", ")}`);
  return parts.length ? parts.join("; ") : null;
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
  const doctor = doctorVerdict(status.doctor);
  const deviceUpdates = deviceUpdatesOf(status.deviceUpdates);
  const failing = reportedFailing(status.health);
  const reason = typeof status.reason === "string" ? status.reason : null;
  const schema = num(status.schema);
  const truncated = Array.isArray(status.truncated)
    ? status.truncated.filter((x): x is string => typeof x === "string" && x.length <= 64)
      .slice(0, 20)
    : [];
  const statusNote = noteOf(schema, truncated);
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
    doctor,
    deviceUpdates,
    health,
    healthNote: [healthNote, statusNote].filter(Boolean).join("; ") || null,
    schema,
    truncated,
    statusNote,
    status,
  };
}
