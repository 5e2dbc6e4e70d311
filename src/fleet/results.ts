/**
 * Whole command results for people: the rows of a paged `query`, a gateway's log lines, its
 * config, its status. Nothing is cut; the console prints them below the results table.
 */
import { CSV_HEADER, csvLine } from "../buffer/mod.ts";
import { type QueryRow, queryRowReading } from "../protocol/mod.ts";
import type { TargetResult } from "./run.ts";

/** One locale-independent time: `2026-12-03 14:05:09 UTC` (the fleet page shows the same). */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** The rows of every `page` reply of a target, in page order (empty for unpaged results). */
export function pageRows(t: Pick<TargetResult, "pages">): QueryRow[] {
  const rows: QueryRow[] = [];
  for (const p of t.pages ?? []) {
    const r = (p as { rows?: unknown } | null | undefined)?.rows;
    if (Array.isArray(r)) rows.push(...r as QueryRow[]);
  }
  return rows;
}

/** A target as `--json` prints it: the page rows gathered as `rows`, no raw pages. */
export function resultJson(t: TargetResult): Record<string, unknown> {
  const { pages, ...rest } = t;
  return pages ? { ...rest, rows: pageRows(t) } : rest;
}

interface LogLine {
  ts?: unknown;
  level?: unknown;
  component?: unknown;
  msg?: unknown;
  [field: string]: unknown;
}

/**
 * The fields of a `logs` line: beside `msg` (this build, the shape of stdout and `/logs`), or
 * under `fields` (gateways of earlier builds, epoch-ms `ts`).
 */
export function logLineFields(l: LogLine): Record<string, unknown> {
  const { ts: _ts, level: _level, component: _component, msg: _msg, ...rest } = l;
  const keys = Object.keys(rest);
  const nested = keys.length === 1 && keys[0] === "fields" && rest.fields !== null &&
    typeof rest.fields === "object" && !Array.isArray(rest.fields);
  return nested ? rest.fields as Record<string, unknown> : rest;
}

/** One log line of a `logs` reply: `2026-12-03 14:05:09 UTC  warn  [component] message {…}`. */
export function formatLogLine(l: LogLine): string {
  const ts = typeof l.ts === "number"
    ? formatTime(l.ts)
    : typeof l.ts === "string"
    ? formatTime(Date.parse(l.ts))
    : "-";
  const f = logLineFields(l);
  const fields = Object.keys(f).length ? ` ${JSON.stringify(f)}` : "";
  return `${ts}  ${String(l.level ?? "-").padEnd(5)}  ${l.component ? `[${l.component}] ` : ""}${
    String(l.msg ?? "")
  }${fields}`;
}

/**
 * The whole result of `cmd` from one target as text: log lines for `logs`, the YAML for
 * `config-get`, CSV rows for `query` (with its final summary), indented JSON otherwise;
 * undefined when there is nothing to show.
 */
export function formatFullResult(cmd: string, t: TargetResult): string | undefined {
  if (t.pages?.length) {
    const rows = pageRows(t);
    const lines = [CSV_HEADER, ...rows.map((r) => csvLine(queryRowReading(r)))];
    if (t.result !== undefined) lines.push(`# ${JSON.stringify(t.result)}`);
    return lines.join("\n");
  }
  const r = t.result as Record<string, unknown> | null | undefined;
  if (r === undefined || r === null) return undefined;
  if (cmd === "logs" && Array.isArray(r.lines)) {
    const out = (r.lines as LogLine[]).map(formatLogLine);
    if (Array.isArray(r.audit)) out.push(JSON.stringify(r.audit, null, 2));
    if (r.truncated) out.push("(older lines left out: the reply has a size limit)");
    return out.join("\n");
  }
  if (cmd === "config-get" && typeof r.yaml === "string") {
    const head = Object.entries(r).filter(([k]) => k !== "yaml").map(([k, v]) => `# ${k}: ${v}`);
    return [...head, r.yaml.replace(/\n$/, "")].join("\n");
  }
  return typeof r === "string" ? r : JSON.stringify(r, null, 2);
}

/** Whether a result fits the one-line DETAIL column whole. */
export function fitsOneLine(text: string): boolean {
  return text.length <= 100 && !text.includes("\n");
}
