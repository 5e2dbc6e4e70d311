/**
 * The `query` command: a device's stored readings in `page` replies, oldest first. Pages are read
 * from the buffer one at a time and published with at most `commands.query.inflight` of them
 * waiting for PUBACK, so memory stays bounded by a few pages whatever the time range (30 days of
 * a reading every 10 s is 259,200 rows).
 */
import type { Buffer } from "../buffer/mod.ts";
import { parseDuration } from "../config/schema.ts";
import { type CommandContext, CommandError } from "./service.ts";
import type { CommandsConfig } from "./config.ts";
import {
  ERROR_CODES,
  QUERY_COLUMNS,
  type QueryArgs,
  type QueryDone,
  type QueryPage,
  type QueryRow,
} from "../protocol/mod.ts";

/** Room left in a page for the reply envelope (id, gateway id, cmd, ts …). */
const ENVELOPE_BYTES = 1024;

function badArgs(message: string): CommandError {
  return new CommandError(ERROR_CODES.badArgs, message);
}

/** Reads a time bound: ms since epoch, ISO 8601, or a duration back from now ("30d"). */
export function parseTimeArg(v: unknown, name: string, now = Date.now()): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim()) {
    if (/^\d+$/.test(v.trim())) return Number(v);
    const d = parseDuration(v);
    if (d !== undefined) return now - d;
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return t;
  }
  throw badArgs(
    `args.${name}: expected ms since epoch, ISO 8601 or a duration such as 30d, got ${
      JSON.stringify(v)
    }`,
  );
}

function intArg(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw badArgs(`args.${name}: expected an integer ${min}–${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Checks `query` arguments. */
export function parseQueryArgs(
  args: Record<string, unknown>,
  maxPageRows: number,
  now = Date.now(),
): Required<Pick<QueryArgs, "device" | "pageRows">> & {
  metric?: string;
  from?: number;
  to?: number;
  afterSeq: number;
  limit?: number;
} {
  const known = ["device", "metric", "from", "to", "afterSeq", "limit", "pageRows"];
  const unknown = Object.keys(args).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw badArgs(`unknown args ${unknown.join(", ")}; expected ${known.join(", ")}`);
  }
  if (typeof args.device !== "string" || !args.device) {
    throw badArgs("args.device: expected a device id");
  }
  if (args.metric !== undefined && (typeof args.metric !== "string" || !args.metric)) {
    throw badArgs("args.metric: expected a metric name");
  }
  const from = parseTimeArg(args.from, "from", now);
  const to = parseTimeArg(args.to, "to", now);
  if (from !== undefined && to !== undefined && to <= from) {
    throw badArgs(`args.to (${to}) must be after args.from (${from})`);
  }
  return {
    device: args.device,
    metric: args.metric as string | undefined,
    from,
    to,
    afterSeq: intArg(args.afterSeq, "afterSeq", 0, Number.MAX_SAFE_INTEGER) ?? 0,
    limit: intArg(args.limit, "limit", 1, Number.MAX_SAFE_INTEGER),
    pageRows: intArg(args.pageRows, "pageRows", 1, maxPageRows) ?? maxPageRows,
  };
}

/**
 * Streams the readings `ctx.args` selects as `page` replies and returns the summary for the final
 * one. Never more than `cfg.inflight` pages wait for PUBACK; a page that cannot be delivered ends
 * the query with an error that says where to resume (`afterSeq`).
 */
export async function runQuery(
  ctx: CommandContext,
  buffer: Buffer,
  cfg: CommandsConfig["query"],
  maxMessageBytes: number,
): Promise<QueryDone> {
  const q = parseQueryArgs(ctx.args, cfg.pageRows);
  const pageBytes = Math.max(512, Math.min(cfg.pageBytes, maxMessageBytes) - ENVELOPE_BYTES);
  const enc = new TextEncoder();
  const select = { device: q.device, metric: q.metric, from: q.from, to: q.to };
  // Rows to send, counted from the series index: progress is rows done of this total (rows
  // stored while the query runs may add to it; the last page says so).
  const total = Math.min(buffer.count({ ...select, afterSeq: q.afterSeq }), q.limit ?? Infinity);
  await ctx.reply("accepted", {
    result: {
      device: q.device,
      metric: q.metric ?? null,
      from: q.from ?? null,
      to: q.to ?? null,
      total,
    },
  });
  let after = q.afterSeq;
  let sent = 0;
  let pages = 0;
  let lastSeq: number | null = null;
  /** Last row of the newest page acknowledged together with every page before it. */
  let deliveredSeq = q.afterSeq;
  let contiguous = true;
  let failure: Error | undefined;
  const window: { acked: Promise<boolean>; last: number }[] = [];
  const settleOldest = async () => {
    const w = window.shift()!;
    if (await w.acked && contiguous) deliveredSeq = w.last;
    else contiguous = false;
  };
  let complete = true;
  for (;;) {
    if (failure) break;
    if (ctx.signal.aborted) {
      failure = new Error("the gateway stopped or restarted");
      break;
    }
    const remaining = q.limit === undefined ? Infinity : q.limit - sent;
    if (remaining <= 0) {
      complete = buffer.query({ ...select, afterSeq: after, limit: 1 }).length === 0;
      break;
    }
    const want = Math.min(q.pageRows, remaining);
    const found = buffer.query({ ...select, afterSeq: after, limit: want });
    if (found.length === 0) break;
    const rows: QueryRow[] = [];
    let bytes = 0;
    for (const r of found) {
      const row: QueryRow = [
        r.seq,
        r.ts,
        r.device,
        r.metric,
        r.value,
        r.unit ?? null,
        buffer.isForwarded(r.seq),
      ];
      const size = enc.encode(JSON.stringify(row)).length + 1;
      if (rows.length > 0 && bytes + size > pageBytes) break;
      rows.push(row);
      bytes += size;
    }
    const last = rows[rows.length - 1][0];
    const page: QueryPage = { columns: QUERY_COLUMNS, rows, lastSeq: last };
    const n = pages++;
    sent += rows.length;
    after = last;
    lastSeq = last;
    const progress = { done: sent, total: Math.max(total, sent) };
    const acked = ctx.reply("page", { page: n, result: page, progress }).then(() => true, (e) => {
      failure ??= e as Error;
      return false;
    });
    window.push({ acked, last });
    // Backpressure: the next page is read only once the oldest in flight is acknowledged.
    if (window.length >= cfg.inflight) await settleOldest();
    if (found.length < want && rows.length === found.length) break;
  }
  while (window.length) await settleOldest();
  if (failure) {
    throw new CommandError(
      ERROR_CODES.failed,
      `query stopped after ${pages} page(s): ${failure.message}; resume with afterSeq ${deliveredSeq}`,
      { result: { afterSeq: deliveredSeq } },
    );
  }
  return { rows: sent, pages, lastSeq, complete };
}
