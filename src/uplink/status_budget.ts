/**
 * The retained status message's shape version and its size budget: a status that would not fit
 * sheds detail in a fixed order, so the core fields always reach the broker.
 *
 * @module
 */
import type { StatusMessage } from "./uplink.ts";

/**
 * Version of the status message's shape (`schema` in every message). It grows when a field
 * changes meaning or type; new fields alone do not change it. Consoles read the fields they know
 * from any version and ignore the rest.
 */
export const STATUS_SCHEMA = 1;

/**
 * Most bytes (UTF-8 JSON) a status message may take. A full status with typical names is
 * 2-4 KB; 8 KB keeps that whole while bounding what long names from config and devices can add.
 * It stays far below AWS IoT Core's 128 KB per message and costs two of its 5 KB metering units
 * at most; a console syncing 500 gateways receives at most 4 MB of retained statuses. A broker
 * with a lower `message_size_limit` is matched by setting `uplink.maxMessageBytes`, which lowers
 * this budget too (a broker silently drops a larger message, keeping the older status).
 */
export const STATUS_BUDGET_BYTES = 8 * 1024;

/** The budget a gateway uses: {@linkcode STATUS_BUDGET_BYTES}, or the uplink's cap if smaller. */
export function statusBudget(maxMessageBytes?: number): number {
  return Math.min(STATUS_BUDGET_BYTES, maxMessageBytes ?? Infinity);
}

/** Fields that always arrive (besides the small numbers kept with them). */
const CORE = new Set([
  "schema",
  "gatewayId",
  "state",
  "version",
  "ts",
  "backlog",
  "oldestPendingAgeMs",
  "lastForwardedAt",
  "startedAt",
  "droppedUnforwarded",
  "reason",
  "health",
  "alarms",
  "truncated",
]);

/** Optional sections in the order they are dropped, after any optional key not named here. */
const SECTIONS = ["deviceUpdates", "doctor", "alarms.list", "health.failing", "pageUrl", "site"];

/** Longest free text kept when detail is shed (`site`, `reason`), in characters. */
const TEXT_CHARS = 200;
/** Longest name kept in a list when detail is shed (the fleet console shows up to 64). */
const NAME_CHARS = 64;

function json(v: unknown): string | undefined {
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}

/** Its size as published; a section JSON cannot write (a BigInt, a cycle) makes it too large. */
function bytes(m: StatusMessage): number {
  const text = json(m);
  return text === undefined ? Infinity : new TextEncoder().encode(text).length;
}

function clip(s: unknown, n: number): unknown {
  return typeof s === "string" && s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);

/** A list of the message by its path, with the count it leaves out kept beside it. */
interface ListRef {
  path: string;
  get(m: Obj): unknown[] | undefined;
  /** Shortens it to `n` items, adding what it left out to its count; names clipped. */
  cut(m: Obj, n: number): void;
}

function list(
  path: string,
  parent: (m: Obj) => Obj | undefined,
  key: string,
  countKey: string,
  name: (item: unknown) => unknown,
): ListRef {
  const get = (m: Obj) => {
    const v = parent(m)?.[key];
    return Array.isArray(v) ? v : undefined;
  };
  return {
    path,
    get,
    cut(m, n) {
      const p = parent(m)!;
      const items = get(m)!;
      const left = Math.max(0, items.length - n);
      p[key] = items.slice(0, Math.min(n, items.length)).map(name);
      if (left) p[countKey] = (typeof p[countKey] === "number" ? p[countKey] as number : 0) + left;
    },
  };
}

const sub = (k: string) => (m: Obj) => isObj(m[k]) ? m[k] as Obj : undefined;
const clipKeys = (keys: string[]) => (item: unknown) =>
  isObj(item)
    ? Object.fromEntries(
      Object.entries(item).map(([k, v]) => [k, keys.includes(k) ? clip(v, NAME_CHARS) : v]),
    )
    : clip(item, NAME_CHARS);

const LISTS: ListRef[] = [
  list("alarms.list", sub("alarms"), "list", "more", clipKeys(["key", "severity"])),
  list("deviceUpdates.classes", sub("deviceUpdates"), "classes", "more", (c) => {
    const o = clipKeys(["class"])(c);
    if (isObj(o) && isObj(o.rollout)) o.rollout = clipKeys(["name", "version"])(o.rollout);
    return o;
  }),
  list("doctor.failing", sub("doctor"), "failing", "failingMore", clipKeys([])),
  list("doctor.warning", sub("doctor"), "warning", "warningMore", clipKeys([])),
  list("health.failing", sub("health"), "failing", "failingMore", clipKeys([])),
];

/**
 * Returns `msg` as it is when its JSON fits `budget` bytes; otherwise a copy that sheds detail
 * until it fits, in this order: free text (`site`, `reason`) clipped to 200 characters and names
 * in lists (alarm keys, device classes, check ids) to 64; the lists cut to 10, 5, then 1 item,
 * what was left out added to their count (`more`, `failingMore`, `warningMore`); then whole
 * optional sections dropped: any this version does not know, then `deviceUpdates`, `doctor`,
 * `alarms.list`, `health.failing`, `pageUrl`, `site`. `truncated` names every field shortened or
 * dropped. The core (`schema`, `gatewayId`, `state`, `version`, `ts`, `backlog`, `health.ok`, the
 * alarm counts, a few more numbers) is never dropped. Never throws: at worst the core alone is
 * returned, even if still larger.
 */
export function fitStatus(msg: StatusMessage, budget: number): StatusMessage {
  if (bytes(msg) <= budget) return msg;
  // Lists are replaced, never changed in place: copying the objects that hold them is enough.
  const m: StatusMessage = { ...msg };
  for (const k of ["alarms", "deviceUpdates", "doctor", "health"]) {
    if (isObj(m[k])) m[k] = { ...m[k] as Obj };
  }
  const truncated = new Set<string>(Array.isArray(m.truncated) ? m.truncated.map(String) : []);
  const done = () => {
    m.truncated = [...truncated];
    return bytes(m) <= budget;
  };
  for (const k of ["site", "reason"]) {
    if (typeof m[k] === "string" && (m[k] as string).length > TEXT_CHARS) {
      m[k] = clip(m[k], TEXT_CHARS);
      truncated.add(k);
    }
  }
  if (done()) return m;
  for (const n of [Infinity, 10, 5, 1]) {
    for (const l of LISTS) {
      const items = l.get(m);
      if (!items) continue;
      const before = json(items);
      l.cut(m, n);
      if (json(l.get(m)) !== before) truncated.add(l.path);
    }
    if (done()) return m;
  }
  const others = Object.keys(m).filter((k) => !CORE.has(k) && !SECTIONS.includes(k)).sort();
  for (const path of [...others, ...SECTIONS]) {
    const [top, inner] = path.split(".");
    const holder = inner ? sub(top)(m) : m;
    const key = inner ?? top;
    if (!holder || !(key in holder)) continue;
    // A list dropped whole leaves all its items in its count.
    LISTS.find((l) => l.path === path && l.get(m))?.cut(m, 0);
    delete holder[key];
    truncated.add(path);
    if (done()) return m;
  }
  done();
  return m;
}
