import { checkReading, type Reading, type ReadingValue } from "../../src/reading.ts";
import {
  checkJsonShape,
  checkSize,
  DEFAULT_JSON_LIMITS,
  type LimitExceeded,
  type LimitReason,
} from "../../src/limits.ts";
import type { SubscriptionConfig } from "./config.ts";
import {
  compileTemplate,
  compileTopic,
  matchTopic,
  renderTemplate,
  type Template,
  type TopicMatch,
  type TopicPattern,
} from "./_topic.ts";

/** Readings parsed out of one message, and how many fields were skipped as unusable. */
export interface Parsed {
  readings: Reading[];
  skipped: number;
}

/**
 * Either readings or why the whole message was refused; `reason` is set when it broke a size or
 * shape limit (checked before parsing) rather than being malformed.
 */
export type ParseResult = Parsed | { error: string; reason?: LimitReason };

/** How a value is turned into a reading. */
interface ValueSpec {
  metric: string;
  unit?: string;
  scale?: number;
  offset?: number;
}

/** A subscription ready to match topics and parse payloads. */
export interface CompiledSubscription {
  config: SubscriptionConfig;
  topic: TopicPattern;
  /** Matches a topic; undefined when this subscription does not cover it. */
  match(topic: string): TopicMatch | undefined;
  /** Parses one payload received on a matched topic. */
  parse(match: TopicMatch, payload: Uint8Array | string, now: number): ParseResult;
}

/** Most readings taken from one message, so a hostile payload cannot flood the buffer. */
export const MAX_READINGS_PER_MESSAGE = 10_000;
/** Most lines of a CSV payload. */
export const MAX_CSV_LINES = 10_000;
/** Longest line of a CSV payload, in characters. */
export const MAX_CSV_LINE_LENGTH = 8192;
const MAX_DEPTH = 8;
const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Formats of a source timestamp. */
export type TimestampFormat = "auto" | "ms" | "s" | "iso";

/** Converts a source timestamp into ms since the epoch; undefined when it is not one. */
export function parseTimestamp(v: unknown, format: TimestampFormat): number | undefined {
  let n: number | undefined;
  if (typeof v === "number") n = v;
  else if (typeof v === "string") {
    const t = v.trim();
    if (NUMBER_RE.test(t) && format !== "iso") n = Number(t);
    else if (format === "auto" || format === "iso") {
      // Date.parse accepts odd strings ("1", "Jan"); demand a date first.
      if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return undefined;
      const ms = Date.parse(t);
      return Number.isFinite(ms) ? ms : undefined;
    }
  }
  if (n === undefined || !Number.isFinite(n) || format === "iso") return undefined;
  const ms = format === "s" || (format === "auto" && Math.abs(n) < 1e11) ? n * 1000 : n;
  return Math.round(ms);
}

/** Turns a payload value into a reading value, applying scale and offset to numbers. */
export function toValue(v: unknown, spec: Omit<ValueSpec, "metric">): ReadingValue | undefined {
  let out: ReadingValue;
  if (typeof v === "number") out = v;
  else if (typeof v === "boolean") return v;
  else if (typeof v === "string") {
    const t = v.trim();
    if (NUMBER_RE.test(t)) out = Number(t);
    else if (t === "true" || t === "false") return t === "true";
    else return t.length > 0 ? v : undefined;
  } else return undefined;
  out = out * (spec.scale ?? 1) + (spec.offset ?? 0);
  return Number.isFinite(out) ? out : undefined;
}

/** Follows a dotted path (`a.b.0.c`) through objects and lists, own keys only. */
export function getPath(root: unknown, path: readonly string[]): unknown {
  let cur = root;
  for (const step of path) {
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(step)) return undefined;
      cur = cur[Number(step)];
    } else if (cur !== null && typeof cur === "object") {
      if (!Object.hasOwn(cur, step)) return undefined;
      cur = (cur as Record<string, unknown>)[step];
    } else return undefined;
  }
  return cur;
}

function decode(payload: Uint8Array | string): string | undefined {
  if (typeof payload === "string") return payload;
  try {
    return decoder.decode(payload);
  } catch {
    return undefined;
  }
}

function spec(v: string | ValueSpec): ValueSpec {
  return typeof v === "string" ? { metric: v } : v;
}

/**
 * Adds a reading when it is valid; returns false for an unusable field. A bad device id or
 * timestamp spoils the whole message, so those throw a message-level error.
 */
function add(out: Parsed, r: Reading, now: number): void {
  const bad = checkReading(r, now);
  if (bad === "device") {
    throw new MessageError(`device id ${JSON.stringify(r.device)} is not valid`);
  }
  if (bad === "timestamp") throw new MessageError(`timestamp ${r.ts} is out of range`);
  if (bad) out.skipped++;
  else if (out.readings.length >= MAX_READINGS_PER_MESSAGE) {
    throw new MessageError(`more than ${MAX_READINGS_PER_MESSAGE} readings in one message`);
  } else out.readings.push(r);
}

class MessageError extends Error {
  override name = "MessageError";
}

/** A message over a limit: refused before it is parsed. */
class LimitError extends MessageError {
  override name = "LimitError";
  readonly reason: LimitReason;
  constructor(over: LimitExceeded) {
    super(over.message);
    this.reason = over.reason;
  }
}

function flatten(
  v: unknown,
  prefix: string,
  depth: number,
  visit: (metric: string, value: number | boolean) => void,
): void {
  if (typeof v === "number" || typeof v === "boolean") {
    if (prefix) visit(prefix, v);
  } else if (v !== null && typeof v === "object" && depth < MAX_DEPTH) {
    for (const [k, child] of Object.entries(v)) {
      flatten(child, prefix ? `${prefix}.${k}` : k, depth + 1, visit);
    }
  }
}

function jsonParser(sub: SubscriptionConfig) {
  const fields = sub.fields &&
    Object.entries(sub.fields).map(([path, v]) => ({ path: path.split("."), spec: spec(v) }));
  const tsPath = sub.timestampField?.split(".");
  return (device: string, text: string, now: number, out: Parsed) => {
    const over = checkJsonShape(text, DEFAULT_JSON_LIMITS);
    if (over) throw new LimitError(over);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new MessageError(`invalid JSON: ${(e as Error).message}`);
    }
    if (doc === null || typeof doc !== "object") {
      throw new MessageError("expected a JSON object or list");
    }
    let ts = now;
    if (tsPath) {
      const raw = getPath(doc, tsPath);
      if (raw !== undefined) {
        const t = parseTimestamp(raw, sub.timestampFormat);
        if (t === undefined) {
          throw new MessageError(
            `${sub.timestampField} is not a timestamp: ${JSON.stringify(raw)}`,
          );
        }
        ts = t;
      }
    }
    if (fields) {
      let found = 0;
      for (const f of fields) {
        const raw = getPath(doc, f.path);
        if (raw === undefined) continue;
        found++;
        const value = toValue(raw, f.spec);
        if (value === undefined) out.skipped++;
        else add(out, { device, metric: f.spec.metric, value, unit: f.spec.unit, ts }, now);
      }
      if (found === 0) throw new MessageError("none of the mapped fields is in the payload");
    } else {
      flatten(doc, "", 0, (metric, value) => {
        if (tsPath && metric === sub.timestampField) return;
        add(out, { device, metric, value, ts }, now);
      });
      if (out.readings.length === 0) throw new MessageError("no number or boolean in the payload");
    }
  };
}

function csvParser(sub: SubscriptionConfig) {
  const columns = (sub.columns ?? []).map((c) => c === "-" ? undefined : spec(c));
  return (device: string, text: string, now: number, out: Parsed) => {
    let lines = 1;
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
      if (++lines > MAX_CSV_LINES) {
        throw new LimitError({
          reason: "lines",
          message: `CSV has more than ${MAX_CSV_LINES} lines`,
        });
      }
    }
    const rows = text.split(/\r?\n/).filter((l) => l.trim() !== "");
    if (rows.length === 0) throw new MessageError("empty CSV payload");
    rows.forEach((row, i) => {
      if (row.length > MAX_CSV_LINE_LENGTH) {
        throw new LimitError({
          reason: "line_length",
          message: `CSV row ${i + 1} is longer than ${MAX_CSV_LINE_LENGTH} characters`,
        });
      }
      const cells = row.split(sub.delimiter);
      if (cells.length !== columns.length) {
        throw new MessageError(
          `row ${i + 1} has ${cells.length} columns, expected ${columns.length}`,
        );
      }
      let ts = now;
      if (sub.timestampColumn !== undefined) {
        const t = parseTimestamp(cells[sub.timestampColumn], sub.timestampFormat);
        if (t === undefined) {
          throw new MessageError(
            `row ${i + 1} column ${sub.timestampColumn} is not a timestamp: ${
              JSON.stringify(cells[sub.timestampColumn].slice(0, 40))
            }`,
          );
        }
        ts = t;
      }
      cells.forEach((cell, c) => {
        const col = columns[c];
        if (!col || c === sub.timestampColumn) return;
        const value = toValue(cell.trim(), col);
        if (value === undefined) out.skipped++;
        else add(out, { device, metric: col.metric, value, unit: col.unit, ts }, now);
      });
    });
  };
}

function numberParser(sub: SubscriptionConfig, metric: Template) {
  return (device: string, text: string, now: number, out: Parsed, match: TopicMatch) => {
    const t = text.trim();
    if (!NUMBER_RE.test(t)) {
      throw new MessageError(`expected a number, got ${JSON.stringify(t.slice(0, 40))}`);
    }
    const value = toValue(t, sub);
    const name = renderTemplate(metric, match);
    if (value === undefined) throw new MessageError(`number out of range: ${t.slice(0, 40)}`);
    if (name === undefined) throw new MessageError("the topic has no level for the metric name");
    const r: Reading = { device, metric: name, value, unit: sub.unit, ts: now };
    if (checkReading(r, now) === "metric") {
      throw new MessageError(`metric name ${JSON.stringify(name)} is not valid`);
    }
    add(out, r, now);
  };
}

/** Prepares a validated subscription for matching and parsing. */
export function compileSubscription(sub: SubscriptionConfig): CompiledSubscription {
  const topic = compileTopic(sub.topic);
  if (typeof topic === "string") throw new TypeError(topic);
  const template = (src: string) => {
    const t = compileTemplate(src, topic);
    if (typeof t === "string") throw new TypeError(t);
    return t;
  };
  const device = template(sub.device ?? "{device}");
  const parseBody = sub.format === "json"
    ? jsonParser(sub)
    : sub.format === "csv"
    ? csvParser(sub)
    : numberParser(sub, template(sub.metric ?? "{metric}"));
  return {
    config: sub,
    topic,
    match: (t) => matchTopic(topic, t),
    parse(match, payload, now) {
      const size = typeof payload === "string" ? payload.length : payload.byteLength;
      const big = checkSize(size, sub.maxMessageBytes, "message");
      if (big) return { error: `${big.message} (maxMessageBytes)`, reason: big.reason };
      const text = decode(payload);
      if (text === undefined) return { error: "payload is not UTF-8 text" };
      const id = renderTemplate(device, match);
      if (id === undefined) return { error: "the topic has no level for the device id" };
      const out: Parsed = { readings: [], skipped: 0 };
      try {
        parseBody(id, text, now, out, match);
      } catch (e) {
        if (e instanceof LimitError) return { error: e.message, reason: e.reason };
        if (e instanceof MessageError) return { error: e.message };
        throw e;
      }
      return out;
    },
  };
}
