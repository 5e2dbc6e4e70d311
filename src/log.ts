import { redactText, redactValue } from "./redact.ts";

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
// journald reads "<N>" prefixes as syslog priorities.
const SYSLOG: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/** One structured log event, as kept in the recent-lines ring and written out. */
export interface LogRecord {
  ts: number;
  level: LogLevel;
  component: string;
  msg: string;
  fields?: Record<string, unknown>;
}

/** A logger tagged with a component name; `child()` derives a sub-component logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  format?: "text" | "json";
  /**
   * Prefix lines (text and JSON) with `<N>` syslog priorities, which journald turns into the
   * entry's priority. Defaults to on when stdout is the journal (`$JOURNAL_STREAM` set).
   */
  syslogPrefix?: boolean;
  /** How many recent lines to keep for status pages and the `logs` command. */
  ringSize?: number;
  /** Where lines go; defaults to stderr for warn/error and stdout otherwise. */
  sink?: (line: string, level: LogLevel) => void;
}

/** The root of a logger tree: the logger itself plus its recent-lines ring. */
export interface RootLogger extends Logger {
  /** The last lines written, oldest first. */
  recent(limit?: number): LogRecord[];
}

const encoder = new TextEncoder();

function defaultSink(line: string, level: LogLevel): void {
  const bytes = encoder.encode(line + "\n");
  try {
    if (level === "warn" || level === "error") Deno.stderr.writeSync(bytes);
    else Deno.stdout.writeSync(bytes);
  } catch {
    // A closed stdout (journald restarted, pipe gone) must never take the gateway down.
  }
}

function formatFields(fields: Record<string, unknown> | undefined): string {
  if (!fields) return "";
  let out = "";
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = typeof v === "string" ? v : v instanceof Error ? v.message : JSON.stringify(v);
    out += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
  }
  return out;
}

/**
 * Creates the root logger; every component gets a `child()` of it. Messages and fields are
 * redacted before they are written or kept (see `src/redact.ts`): values of secret-named fields
 * (`password`, `token`, …), URL credentials and remembered secrets never appear.
 */
export function createLogger(options: LoggerOptions = {}): RootLogger {
  const min = LEVELS[options.level ?? "info"];
  const format = options.format ?? "text";
  const sink = options.sink ?? defaultSink;
  const syslog = options.syslogPrefix ?? (Deno.env.get("JOURNAL_STREAM") !== undefined);
  const ringSize = options.ringSize ?? 500;
  const ring: LogRecord[] = [];

  function write(
    component: string,
    level: LogLevel,
    msg: string,
    fields?: Record<string, unknown>,
  ) {
    if (LEVELS[level] < min) return;
    // Nothing secret reaches a line or the ring (/logs, the `logs` command, the gateway page).
    msg = redactText(msg);
    fields = fields && redactValue(fields);
    const rec: LogRecord = { ts: Date.now(), level, component, msg, fields };
    ring.push(rec);
    if (ring.length > ringSize) ring.shift();
    let line: string;
    // journald strips a leading "<N>" and files the line under that priority, in either format.
    const prefix = syslog ? `<${SYSLOG[level]}>` : "";
    if (format === "json") {
      line = prefix + JSON.stringify(jsonLogObject(rec));
    } else {
      // One event, one line: a line break inside a message would read as a second event.
      line = `${prefix || `${new Date(rec.ts).toISOString()} `}${
        level.toUpperCase().padEnd(5)
      } [${component}] ${msg.replace(/\r?\n/g, "\\n")}${formatFields(fields)}`;
    }
    sink(line, level);
  }

  function make(component: string): Logger {
    return {
      debug: (m, f) => write(component, "debug", m, f),
      info: (m, f) => write(component, "info", m, f),
      warn: (m, f) => write(component, "warn", m, f),
      error: (m, f) => write(component, "error", m, f),
      child: (c) => make(component ? `${component}.${c}` : c),
    };
  }

  const root = make("outpost");
  return {
    ...root,
    child: (c) => make(c),
    recent: (limit = ringSize) => ring.slice(-limit),
  };
}

/**
 * The JSON shape of a log line, the same on stdout (`log.format: json`) and in `/logs`: ISO `ts`,
 * `level`, `component`, `msg`, then the fields flat beside them (a field named like one of those
 * four becomes `field_<name>`).
 */
export function jsonLogObject(rec: LogRecord): Record<string, unknown> {
  const obj: Record<string, unknown> = {
    ts: new Date(rec.ts).toISOString(),
    level: rec.level,
    component: rec.component,
    msg: rec.msg,
  };
  for (const [k, v] of Object.entries(rec.fields ?? {})) {
    // A field named like a core key must not overwrite it.
    obj[k in obj ? `field_${k}` : k] = v instanceof Error ? v.message : v;
  }
  return obj;
}

/** A logger that discards everything, for tests and tools. */
export function silentLogger(): Logger {
  const l: Logger = {
    debug() {},
    info() {},
    warn() {},
    error() {},
    child: () => l,
  };
  return l;
}
