/**
 * Remote export: a paged `query` of one gateway's buffer, checked for completeness (every page
 * from 0, in order, no gaps, counts as the final reply states) and written as the same CSV
 * `outpost export` writes.
 */
import { CSV_HEADER, csvLine, type ExportRow } from "../buffer/mod.ts";
import type { Fleet } from "./client.ts";
import {
  type CommandReply,
  type QueryArgs,
  type QueryDone,
  type QueryPage,
  type QueryRow,
  queryRowReading,
} from "../protocol/mod.ts";

/** The export is incomplete or the gateway refused it. */
export class ExportError extends Error {
  override name = "ExportError";
}

/** Progress of an export, after each page. */
export interface ExportProgress {
  pages: number;
  rows: number;
  /** Rows the gateway counted for the query when it accepted it (null from older gateways). */
  total: number | null;
  /** Rows written of the total, 0–100 (null while the total is unknown). */
  percent: number | null;
  /** Timestamp of the last row written, ms (in sequence order: not a measure of progress). */
  lastTs: number | null;
}

/** `rows` of `total` as a whole percentage, never past 100. */
export function percentOf(rows: number, total: number | null): number | null {
  if (total === null) return null;
  return total <= 0 ? 100 : Math.min(100, Math.floor(rows * 100 / total));
}

/** What {@linkcode PageAssembler.finish} verified. */
export interface AssembledQuery {
  rows: number;
  pages: number;
  lastSeq: number | null;
}

function isRow(r: unknown): r is QueryRow {
  return Array.isArray(r) && r.length >= 7 && typeof r[0] === "number" &&
    typeof r[1] === "number" && typeof r[2] === "string" && typeof r[3] === "string";
}

/**
 * Puts the `page` replies to one query back together. Pages may arrive twice (QoS 1 delivers at
 * least once) or out of order; rows come out once each, in page order. A missing page, a row out
 * of sequence order, a row outside the filter or a final count that disagrees is an error.
 */
export class PageAssembler {
  readonly #filter: QueryArgs;
  readonly #waiting = new Map<number, QueryPage>();
  #next = 0;
  #rows = 0;
  #lastSeq: number | null;
  #final: CommandReply | undefined;
  #total: number | null = null;

  constructor(filter: QueryArgs) {
    this.#filter = filter;
    this.#lastSeq = filter.afterSeq ?? null;
  }

  /** Pages put in order so far. */
  get pages(): number {
    return this.#next;
  }

  /** Rows put in order so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Sequence number of the last row put in order. */
  get lastSeq(): number | null {
    return this.#lastSeq;
  }

  /** Rows the gateway counted for this query (its `accepted` reply or a page's progress). */
  get total(): number | null {
    return this.#total;
  }

  /** The final reply, once it came. */
  get final(): CommandReply | undefined {
    return this.#final;
  }

  /**
   * Takes one reply to the query; returns the rows that are now in order (possibly none).
   * Throws {@linkcode ExportError} on an error reply or a malformed page.
   */
  add(reply: CommandReply): ExportRow[] {
    if (reply.status === "error") {
      const e = reply.error ?? { code: "failed", message: "no details" };
      throw new ExportError(
        `gateway ${reply.gatewayId} refused the query: ${e.code}: ${e.message}`,
      );
    }
    const total = reply.progress?.total ??
      (reply.status === "accepted" ? (reply.result as { total?: unknown })?.total : undefined);
    if (typeof total === "number" && Number.isFinite(total)) this.#total = total;
    if (reply.final) {
      this.#final ??= reply;
      return [];
    }
    if (reply.status !== "page") return [];
    const n = reply.page;
    const page = reply.result as QueryPage | undefined;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || !Array.isArray(page?.rows)) {
      throw new ExportError(
        `gateway ${reply.gatewayId} sent a malformed page (number ${JSON.stringify(n)})`,
      );
    }
    if (n < this.#next || this.#waiting.has(n)) return []; // a duplicate delivery
    this.#waiting.set(n, page);
    const out: ExportRow[] = [];
    for (let p = this.#waiting.get(this.#next); p; p = this.#waiting.get(this.#next)) {
      this.#waiting.delete(this.#next);
      for (const row of p.rows) out.push(this.#check(row, this.#next));
      this.#next++;
    }
    return out;
  }

  #check(row: unknown, page: number): ExportRow {
    if (!isRow(row)) {
      throw new ExportError(`page ${page}: malformed row ${JSON.stringify(row).slice(0, 120)}`);
    }
    const r = queryRowReading(row);
    const f = this.#filter;
    if (this.#lastSeq !== null && r.seq <= this.#lastSeq) {
      throw new ExportError(
        `page ${page}: row seq ${r.seq} is not after ${this.#lastSeq} (rows out of order or repeated)`,
      );
    }
    const from = typeof f.from === "number" ? f.from : undefined;
    const to = typeof f.to === "number" ? f.to : undefined;
    if (
      r.device !== f.device || (f.metric !== undefined && r.metric !== f.metric) ||
      (from !== undefined && r.ts < from) || (to !== undefined && r.ts >= to)
    ) {
      throw new ExportError(
        `page ${page}: row seq ${r.seq} (${r.device}/${r.metric} at ${r.ts}) is outside the query`,
      );
    }
    this.#lastSeq = r.seq;
    this.#rows++;
    return r;
  }

  /** Whether the final reply came and every page before it is in. */
  get complete(): boolean {
    return this.#final !== undefined;
  }

  /**
   * Checks the whole: the final reply came, every page it counts was received in order and the
   * row count and last sequence number agree. Returns what was verified.
   */
  finish(): AssembledQuery & { complete: boolean } {
    const f = this.#final;
    if (!f) throw new ExportError(`no final reply after ${this.#next} page(s)`);
    const done = f.result as Partial<QueryDone> | undefined;
    if (typeof done?.pages !== "number" || typeof done.rows !== "number") {
      throw new ExportError(`the final reply has no page and row counts`);
    }
    if (this.#waiting.size || this.#next !== done.pages) {
      const missing: number[] = [];
      for (let p = this.#next; p < done.pages && missing.length < 10; p++) {
        if (!this.#waiting.has(p)) missing.push(p);
      }
      throw new ExportError(
        `incomplete: the gateway sent ${done.pages} page(s), ${this.#next} arrived in order${
          missing.length ? `; missing page(s) ${missing.join(", ")}` : ""
        }`,
      );
    }
    if (done.rows !== this.#rows) {
      throw new ExportError(
        `incomplete: the gateway sent ${done.rows} rows, ${this.#rows} arrived`,
      );
    }
    if (done.lastSeq !== undefined && done.lastSeq !== null && done.lastSeq !== this.#lastSeq) {
      throw new ExportError(
        `incomplete: last seq ${this.#lastSeq}, the gateway says ${done.lastSeq}`,
      );
    }
    return {
      rows: this.#rows,
      pages: this.#next,
      lastSeq: this.#lastSeq,
      complete: done.complete !== false,
    };
  }
}

/** Options of {@linkcode exportCsv}. */
export interface ExportOptions {
  gatewayId: string;
  device: string;
  metric?: string;
  /** Inclusive, ms. */
  from?: number;
  /** Exclusive, ms. */
  to?: number;
  /** Rows per page to ask for (the gateway caps it). */
  pageRows?: number;
  /** CSV file; written as `FILE.partial` and renamed once complete. */
  out: string;
  /** Fail when nothing arrives for this long; default 30 s. */
  idleTimeoutMs?: number;
  onProgress?: (p: ExportProgress) => void;
  signal?: AbortSignal;
}

/** What an export wrote. */
export interface ExportResult extends ExportProgress {
  out: string;
  /** Query requests it took (a gateway that stops early with `complete: false` is resumed). */
  requests: number;
}

/**
 * Exports one device's readings from a gateway to CSV over remote `query` commands. The file
 * appears under its name only once every page arrived and the counts agree; anything less
 * leaves no file and throws {@linkcode ExportError}.
 */
export async function exportCsv(fleet: Fleet, opts: ExportOptions): Promise<ExportResult> {
  const partial = `${opts.out}.partial`;
  const file = await Deno.open(partial, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  const progress: ExportProgress = { pages: 0, rows: 0, total: null, percent: null, lastTs: null };
  let requests = 0;
  let ok = false;
  try {
    await writeAll(file, enc.encode(CSV_HEADER + "\n"));
    let afterSeq: number | undefined;
    let pagesBefore = 0;
    let rowsBefore = 0;
    for (;;) {
      requests++;
      const args: QueryArgs = {
        device: opts.device,
        ...(opts.metric !== undefined ? { metric: opts.metric } : {}),
        ...(opts.from !== undefined ? { from: opts.from } : {}),
        ...(opts.to !== undefined ? { to: opts.to } : {}),
        ...(afterSeq !== undefined ? { afterSeq } : {}),
        ...(opts.pageRows !== undefined ? { pageRows: opts.pageRows } : {}),
      };
      const asm = new PageAssembler(args);
      let pending = Promise.resolve();
      await queryPages(fleet, opts, args, (rows) => {
        // Replies arrive faster than the disk takes them at times: keep the writes in order.
        pending = pending.then(async () => {
          if (!rows.length) return;
          await writeAll(file, enc.encode(rows.map(csvLine).join("\n") + "\n"));
        });
        progress.rows += rows.length;
        if (rows.length) progress.lastTs = rows[rows.length - 1].ts;
        progress.pages = pagesBefore + asm.pages;
        if (asm.total !== null) progress.total = rowsBefore + asm.total;
        progress.percent = percentOf(progress.rows, progress.total);
        opts.onProgress?.({ ...progress });
      }, asm);
      await pending;
      const done = asm.finish();
      pagesBefore += done.pages;
      rowsBefore += done.rows;
      if (done.complete || done.rows === 0 || done.lastSeq === null) break;
      afterSeq = done.lastSeq;
    }
    await file.sync();
    ok = true;
  } finally {
    file.close();
    if (!ok) await Deno.remove(partial).catch(() => {});
  }
  await Deno.rename(partial, opts.out);
  return { ...progress, out: opts.out, requests };
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

/** Sends one query and feeds its replies through `asm` until the final reply (or a timeout). */
function queryPages(
  fleet: Fleet,
  opts: ExportOptions,
  args: QueryArgs,
  onRows: (rows: ExportRow[]) => void,
  asm: PageAssembler,
): Promise<void> {
  const id = crypto.randomUUID();
  const idle = opts.idleTimeoutMs ?? 30_000;
  return new Promise<void>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = (e?: Error) => {
      clearTimeout(timer);
      off();
      opts.signal?.removeEventListener("abort", onAbort);
      if (e) reject(e);
      else resolve();
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        end(
          new ExportError(
            `no reply from ${opts.gatewayId} for ${
              idle / 1000
            }s after ${asm.pages} page(s), ${asm.rows} rows`,
          ),
        );
      }, idle);
    };
    const onAbort = () => end(new ExportError("export cancelled"));
    const off = fleet.onReply(id, (reply) => {
      if (reply.gatewayId !== opts.gatewayId) return;
      arm();
      try {
        onRows(asm.add(reply));
        if (asm.complete) end();
      } catch (e) {
        end(e as Error);
      }
    });
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    arm();
    fleet.request(opts.gatewayId, "query", { id, args: args as unknown as Record<string, unknown> })
      .catch((e) => end(e as Error));
  });
}
