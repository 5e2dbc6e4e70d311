/**
 * History of one device for the gateway page: its stored readings over a time range, read from
 * the buffer through the series index and reduced on the gateway to a fixed number of buckets
 * (min, max, mean and last per bucket), so a 30-day view costs the browser at most a few hundred
 * points whatever the rate; and the same range as CSV, streamed in the format of `outpost export`.
 *
 * @module
 */
import { type Buffer, CSV_HEADER, csvLine, exportReadings } from "../buffer/mod.ts";
import { BASE_HEADERS, json } from "../common/http/mod.ts";

/** Buckets of a history answer unless asked otherwise, and the most it gives. */
export const DEFAULT_BUCKETS = 500;
const MAX_BUCKETS = 2000;
/** Rows read from the buffer per query call. */
const PAGE_ROWS = 5000;

/** One bucket of a metric: start (ms), mean, min, max, last value, readings in it. */
export type HistoryPoint = [
  ts: number,
  avg: number,
  min: number,
  max: number,
  last: number,
  n: number,
];

/** What `GET /api/history` answers. */
export interface HistoryResponse {
  device: string;
  from: number;
  to: number;
  bucketMs: number;
  /** Numeric and boolean metrics (booleans as 0 and 1), buckets without readings left out. */
  metrics: Record<string, { unit: string | null; points: HistoryPoint[] }>;
  /** Metrics with text values: how many readings and the last one. */
  text: Record<string, { n: number; last: string }>;
  /** Readings read from the buffer. */
  rows: number;
  /** Time the gateway took, ms. */
  ms: number;
}

/** A history request's bounds, checked. */
export interface HistoryRange {
  device: string;
  metric?: string;
  from: number;
  to: number;
  buckets: number;
}

/** The request was wrong; the message says which parameter and why. */
export class HistoryRequestError extends Error {
  override name = "HistoryRequestError";
}

function time(v: string | null, name: string, fallback: number): number {
  if (v === null || v === "") return fallback;
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) {
    throw new HistoryRequestError(`${name}: expected ms since epoch or ISO 8601, got "${v}"`);
  }
  return t;
}

/** Reads `device`, `metric`, `from`, `to` (ms or ISO 8601; default the last 24 h) and `buckets`. */
export function parseHistoryRange(params: URLSearchParams, now = Date.now()): HistoryRange {
  const device = params.get("device");
  if (!device) throw new HistoryRequestError("device: required (a device id)");
  const to = time(params.get("to"), "to", now);
  const from = time(params.get("from"), "from", to - 86_400_000);
  if (to <= from) throw new HistoryRequestError(`to (${to}) must be after from (${from})`);
  const b = params.get("buckets");
  const buckets = b === null ? DEFAULT_BUCKETS : Number(b);
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > MAX_BUCKETS) {
    throw new HistoryRequestError(`buckets: expected an integer 1–${MAX_BUCKETS}, got "${b}"`);
  }
  return { device, metric: params.get("metric") || undefined, from, to, buckets };
}

class Buckets {
  readonly n = new Map<number, [sum: number, min: number, max: number, last: number, n: number]>();
  add(b: number, v: number): void {
    const x = this.n.get(b);
    if (!x) this.n.set(b, [v, v, v, v, 1]);
    else {
      x[0] += v;
      if (v < x[1]) x[1] = v;
      if (v > x[2]) x[2] = v;
      x[3] = v;
      x[4]++;
    }
  }
}

/**
 * Reduces one device's readings in `[from, to)` to at most `buckets` points per metric. Rows come
 * from the buffer in sequence order; a bucket's `last` is the reading stored last. Between two
 * pages of rows it lets the event loop run, so a long range never holds up ingest and commits.
 */
export async function downsample(buffer: Buffer, q: HistoryRange): Promise<HistoryResponse> {
  const started = performance.now();
  const bucketMs = Math.max(1, Math.ceil((q.to - q.from) / q.buckets));
  const numeric = new Map<string, { unit: string | null; b: Buckets }>();
  const text: HistoryResponse["text"] = {};
  let rows = 0;
  let afterSeq = 0;
  for (;;) {
    const page = buffer.query({
      device: q.device,
      metric: q.metric,
      from: q.from,
      to: q.to,
      afterSeq,
      limit: PAGE_ROWS,
    });
    for (const r of page) {
      const v = typeof r.value === "boolean" ? (r.value ? 1 : 0) : r.value;
      if (typeof v === "string") {
        const t = text[r.metric] ??= { n: 0, last: v };
        t.n++;
        t.last = v;
        continue;
      }
      let m = numeric.get(r.metric);
      if (!m) numeric.set(r.metric, m = { unit: r.unit ?? null, b: new Buckets() });
      m.b.add(Math.floor((r.ts - q.from) / bucketMs), v);
    }
    rows += page.length;
    if (page.length < PAGE_ROWS) break;
    afterSeq = page[page.length - 1].seq;
    await new Promise((r) => setTimeout(r, 0));
  }
  const metrics: HistoryResponse["metrics"] = {};
  for (const [name, m] of [...numeric].sort(([a], [b]) => a.localeCompare(b))) {
    const points: HistoryPoint[] = [...m.b.n].sort(([a], [b]) => a - b).map((
      [b, [sum, min, max, last, n]],
    ) => [q.from + b * bucketMs, sum / n, min, max, last, n]);
    metrics[name] = { unit: m.unit, points };
  }
  return {
    device: q.device,
    from: q.from,
    to: q.to,
    bucketMs,
    metrics,
    text,
    rows,
    ms: Math.round(performance.now() - started),
  };
}

/** The devices and metrics the buffer holds, for the page's picker. */
export function seriesList(buffer: Buffer): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of buffer.series()) (out[s.device] ??= []).push(s.metric);
  for (const d in out) out[d].sort();
  return out;
}

/** A name for the downloaded file: `<device>_<from>_<to>.csv`, safe in any file system. */
export function csvFileName(
  q: { device: string; metric?: string; from: number; to: number },
): string {
  const iso = (t: number) => new Date(t).toISOString().replace(/[:.]/g, "-");
  const name = `${q.device}${q.metric ? `_${q.metric}` : ""}_${iso(q.from)}_${iso(q.to)}.csv`;
  return name.replace(/[^A-Za-z0-9._-]/g, "_");
}

/**
 * The range as CSV, streamed row by row from the buffer file (read-only, beside the writer) in
 * exactly the format of `outpost export` for the same device, metric and range.
 */
export function csvResponse(bufferPath: string, q: HistoryRange): Response {
  const enc = new TextEncoder();
  const it = exportReadings(bufferPath, {
    device: q.device,
    metric: q.metric,
    from: q.from,
    to: q.to,
  });
  let header = true;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      let chunk = header ? CSV_HEADER + "\n" : "";
      header = false;
      while (chunk.length < 65536) {
        const n = it.next();
        if (n.done) {
          if (chunk) controller.enqueue(enc.encode(chunk));
          controller.close();
          return;
        }
        chunk += csvLine(n.value) + "\n";
      }
      controller.enqueue(enc.encode(chunk));
    },
    cancel() {
      it.return(undefined);
    },
  });
  return new Response(body, {
    headers: {
      ...BASE_HEADERS,
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="${csvFileName(q)}"`,
    },
  });
}

/** `GET /api/history`, `/api/history/series` and `/api/history.csv` of the gateway's buffer. */
export function historyRoutes(buffer: () => Buffer) {
  const guarded = (f: (url: URL) => Response | Promise<Response>) => async (url: URL) => {
    try {
      return await f(url);
    } catch (e) {
      if (e instanceof HistoryRequestError) return json({ error: e.message }, 400);
      throw e;
    }
  };
  return {
    history: guarded(async (url) =>
      json(await downsample(buffer(), parseHistoryRange(url.searchParams)))
    ),
    series: guarded(() => json({ devices: seriesList(buffer()) })),
    csv: guarded((url) => {
      const b = buffer();
      b.flush();
      return csvResponse(b.path, parseHistoryRange(url.searchParams));
    }),
  };
}
