/**
 * The work the fleet page starts: commands sent to gateways (`POST /api/commands`) and CSV
 * exports of a device's data (`POST /api/exports`, downloaded from `/api/exports/{id}.csv`).
 * Each keeps its most recent runs for the page's snapshot.
 */
import type { Logger } from "../log.ts";
import type { Fleet } from "./client.ts";
import { exportCsv, type ExportProgress } from "./export.ts";
import { type CommandRun, expectsRestart, type RunSummary } from "./run.ts";
import { BASE_HEADERS, json, readJson, RequestError } from "../common/http/mod.ts";
import { formatTime, pageRows } from "./results.ts";

/** Commands the page may send. */
export const PAGE_COMMANDS = [
  "ping",
  "status",
  "logs",
  "config-get",
  "query",
  "restart",
  "update-check",
  "update-apply",
  "devices-resume",
] as const;

/** The most rows a query from the page may ask for (the rows are kept for the page to read). */
export const PAGE_QUERY_MAX_ROWS = 10_000;

/** Commands whose whole results the server keeps for the page: sent to a few gateways at a time. */
const READ_COMMANDS = new Set(["status", "logs", "config-get", "query"]);

/** The most gateways one read command from the page goes to. */
export const PAGE_READ_MAX_TARGETS = 20;

/** Queries whose rows stay readable on the page; older ones keep their summary only. */
const KEEP_QUERY_ROWS = 5;

/** How long the page waits for each command's replies. */
const PAGE_TIMEOUTS: Record<string, number> = {
  "update-apply": 600_000,
  restart: 120_000,
  query: 120_000,
};

const KEEP_OPS = 50;
const KEEP_EXPORTS = 10;

/** A command the page sent, with its live run. */
export interface Op {
  id: string;
  cmd: string;
  targets: readonly string[] | "all";
  args: Record<string, unknown>;
  createdAt: number;
  run: CommandRun;
  summary: RunSummary;
  settled: boolean;
  /** A query whose rows were let go (only the last few queries keep theirs). */
  rowsDropped?: boolean;
}

/** A CSV export the page started. */
export interface ExportJob {
  id: string;
  gateway: string;
  device: string;
  metric?: string;
  from: number;
  to?: number;
  createdAt: number;
  state: "running" | "done" | "error";
  progress: ExportProgress;
  error?: string;
  file: string;
  name: string;
}

/** What the jobs need from the server. */
export interface JobsContext {
  fleet: Fleet;
  log: Logger;
  /** Ends the server's runs and exports. */
  signal: AbortSignal;
  /** Tells the page something changed. */
  changed: () => void;
}

function parseTargets(v: unknown): readonly string[] | "all" {
  if (v === "all") return "all";
  if (
    !Array.isArray(v) || v.length === 0 ||
    !v.every((x) => typeof x === "string" && x && x !== "fleet" && !/[/#+\s]/.test(x))
  ) {
    throw new RequestError(400, 'targets: expected "all" or a list of gateway ids');
  }
  return [...new Set(v as string[])];
}

/** The arguments of `cmd` from the page's form, checked; bad ones answer 400 naming the field. */
export function pageArgs(cmd: string, body: Record<string, unknown>): Record<string, unknown> {
  const a = (body.args ?? {}) as Record<string, unknown>;
  if (typeof a !== "object" || Array.isArray(a)) {
    throw new RequestError(400, "args: expected an object");
  }
  const int = (v: unknown, what: string, min: number, max: number, dflt: number) => {
    if (v === undefined || v === null || v === "") return dflt;
    const n = typeof v === "string" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      throw new RequestError(400, `args.${what}: expected an integer ${min}–${max}, got ${v}`);
    }
    return n;
  };
  switch (cmd) {
    case "update-apply":
      return typeof body.version === "string" && body.version.trim()
        ? { version: body.version.trim() }
        : {};
    case "logs": {
      const out: Record<string, unknown> = { lines: int(a.lines, "lines", 1, 500, 100) };
      if (a.level !== undefined && a.level !== "") {
        if (!["debug", "info", "warn", "error"].includes(String(a.level))) {
          throw new RequestError(400, "args.level: expected debug, info, warn or error");
        }
        out.level = a.level;
      }
      return out;
    }
    case "query": {
      if (typeof a.device !== "string" || !a.device.trim()) {
        throw new RequestError(400, "args.device: required");
      }
      const out: Record<string, unknown> = {
        device: a.device.trim(),
        limit: int(a.limit, "limit", 1, PAGE_QUERY_MAX_ROWS, 1000),
      };
      if (typeof a.metric === "string" && a.metric.trim()) out.metric = a.metric.trim();
      const from = timeArg(a.from, "args.from");
      const to = timeArg(a.to, "args.to");
      if (from !== undefined) out.from = from;
      if (to !== undefined) out.to = to;
      if (from !== undefined && to !== undefined && to <= from) {
        throw new RequestError(400, "args.to must be after args.from");
      }
      return out;
    }
    case "devices-resume": {
      if (typeof a.class !== "string" || !/^[A-Za-z0-9._-]{1,128}$/.test(a.class)) {
        throw new RequestError(400, "args.class: expected a device class");
      }
      return { class: a.class };
    }
    default:
      return {};
  }
}

/**
 * Refuses a command to a gateway the console has no status for or whose status says offline:
 * it could not answer, and the page would only wait for the timeout.
 */
export function refuseUnreachable(fleet: Fleet, cmd: string, targets: readonly string[]): void {
  const problems: string[] = [];
  for (const id of targets) {
    const g = fleet.gateway(id);
    if (!g) problems.push(`${id} has published no status`);
    else if (g.state === "offline") {
      problems.push(
        `${id} is offline since ${formatTime(g.offlineSince)}${g.reason ? ` (${g.reason})` : ""}`,
      );
    }
  }
  if (problems.length) {
    throw new RequestError(409, `${cmd} not sent: ${problems.join("; ")}`);
  }
}

function timeArg(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const t = typeof v === "number" ? v : Date.parse(String(v));
  if (!Number.isFinite(t)) throw new RequestError(400, `${what}: expected a time, got ${v}`);
  return t;
}

/** Commands sent from the page, newest first (the last 50). */
export class CommandJobs {
  readonly list: Op[] = [];
  readonly #ctx: JobsContext;

  constructor(ctx: JobsContext) {
    this.#ctx = ctx;
  }

  /** `POST /api/commands` `{cmd, targets, version?}`: sends the command, answers 202. */
  async start(req: Request): Promise<Response> {
    const { fleet, log, changed } = this.#ctx;
    const body = await readJson(req);
    const cmd = String(body.cmd ?? "");
    if (!(PAGE_COMMANDS as readonly string[]).includes(cmd)) {
      throw new RequestError(400, `cmd: expected one of ${PAGE_COMMANDS.join(", ")}`);
    }
    const targets = parseTargets(body.targets);
    const args = pageArgs(cmd, body);
    if (
      READ_COMMANDS.has(cmd) && (targets === "all" || targets.length > PAGE_READ_MAX_TARGETS)
    ) {
      throw new RequestError(
        400,
        `targets: ${cmd} goes to at most ${PAGE_READ_MAX_TARGETS} gateways from the page ` +
          `(their whole results are kept); use outpost fleet send ${cmd} --all`,
      );
    }
    if (targets === "all") {
      if (!fleet.gateways().some((g) => g.state === "online")) {
        throw new RequestError(409, `${cmd} not sent: no gateway is online`);
      }
    } else refuseUnreachable(fleet, cmd, targets);
    const timeoutMs = PAGE_TIMEOUTS[cmd] ?? 60_000;
    const run = fleet.send(cmd, {
      targets,
      args,
      timeoutMs,
      followRestart: expectsRestart(cmd),
      signal: this.#ctx.signal,
    });
    const op: Op = {
      id: run.id,
      cmd,
      targets,
      args,
      createdAt: Date.now(),
      run,
      summary: run.summary(),
      settled: false,
    };
    this.list.unshift(op);
    this.list.splice(KEEP_OPS);
    // A query's rows can be 10,000 per gateway: only the last few queries keep theirs.
    for (const old of this.list.filter((o) => o.cmd === "query").slice(KEEP_QUERY_ROWS)) {
      for (const t of old.run.results()) t.pages = undefined;
      old.rowsDropped = true;
    }
    run.onUpdate(() => {
      op.summary = run.summary();
      changed();
    });
    run.done.then((s) => {
      op.summary = s;
      op.settled = true;
      log.info(`${cmd}: ${s.ok} of ${s.total} ok`, {
        failed: s.failed,
        timedOut: s.timedOut,
        targets: targets === "all" ? "all" : targets.join(","),
      });
      changed();
    });
    log.info(`page: ${cmd} sent`, {
      targets: targets === "all" ? `all (${run.results().length} online)` : targets.join(","),
    });
    changed();
    return json({ op: op.id, targets: run.results().map((t) => t.gatewayId) }, 202);
  }

  /**
   * `GET /api/commands/{op}/{gateway}`: one gateway's whole result (a query's rows gathered from
   * its pages), for the page's result view.
   */
  result(opId: string, gatewayId: string): Response {
    const op = this.list.find((o) => o.id === opId);
    const t = op?.run.results().find((r) => r.gatewayId === gatewayId);
    if (!op || !t) return json({ error: `no result of ${gatewayId} in command ${opId}` }, 404);
    return json({
      op: op.id,
      cmd: op.cmd,
      args: op.args,
      gatewayId,
      state: t.state,
      finished: t.finished,
      error: t.error ?? null,
      result: t.result ?? null,
      rows: t.pages?.length ? pageRows(t) : null,
      note: op.rowsDropped
        ? `the rows are no longer kept (the last ${KEEP_QUERY_ROWS} queries keep theirs): send it again`
        : null,
    });
  }
}

/** CSV exports started from the page, newest first (the last 10, their files in `dir`). */
export class ExportJobs {
  readonly list: ExportJob[] = [];
  readonly #ctx: JobsContext;
  readonly #dir: string;

  constructor(ctx: JobsContext, dir: string) {
    this.#ctx = ctx;
    this.#dir = dir;
  }

  /** `POST /api/exports` `{gateway, device, metric?, from, to?}`: starts it, answers 202. */
  async start(req: Request): Promise<Response> {
    const { fleet, log, changed } = this.#ctx;
    const body = await readJson(req);
    const gateway = String(body.gateway ?? "");
    const device = String(body.device ?? "");
    const metric = typeof body.metric === "string" && body.metric ? body.metric : undefined;
    if (!gateway || /[/#+\s]/.test(gateway)) throw new RequestError(400, "gateway: required");
    if (!device) throw new RequestError(400, "device: required");
    const from = timeArg(body.from, "from");
    const to = timeArg(body.to, "to");
    if (from === undefined) throw new RequestError(400, "from: required");
    if (to !== undefined && to <= from) throw new RequestError(400, "to must be after from");
    const id = crypto.randomUUID();
    const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, "_");
    const job: ExportJob = {
      id,
      gateway,
      device,
      metric,
      from,
      to,
      createdAt: Date.now(),
      state: "running",
      progress: { pages: 0, rows: 0, total: null, percent: null, lastTs: null },
      file: `${this.#dir}/${id}.csv`,
      name: `${safe(gateway)}-${safe(device)}${metric ? `-${safe(metric)}` : ""}.csv`,
    };
    this.list.unshift(job);
    for (const old of this.list.splice(KEEP_EXPORTS)) {
      await Deno.remove(old.file).catch(() => {});
    }
    changed();
    exportCsv(fleet, {
      gatewayId: gateway,
      device,
      metric,
      from,
      to,
      out: job.file,
      signal: this.#ctx.signal,
      onProgress: (p) => {
        job.progress = p;
        changed();
      },
    }).then((r) => {
      job.progress = {
        pages: r.pages,
        rows: r.rows,
        total: r.rows,
        percent: 100,
        lastTs: r.lastTs,
      };
      job.state = "done";
      log.info(`export of ${gateway}/${device}: ${r.rows} rows in ${r.pages} page(s)`);
    }, (e) => {
      job.state = "error";
      job.error = (e as Error).message;
      log.warn(`export of ${gateway}/${device} failed: ${job.error}`);
    }).finally(changed);
    return json({ export: id }, 202);
  }

  /** `GET /api/exports/{id}.csv`: the finished file, 404 or 409 otherwise. */
  async download(id: string): Promise<Response> {
    const job = this.list.find((x) => x.id === id);
    if (!job) return json({ error: "no such export" }, 404);
    if (job.state !== "done") return json({ error: `export is ${job.state}` }, 409);
    const file = await Deno.open(job.file, { read: true });
    return new Response(file.readable, {
      headers: {
        ...BASE_HEADERS,
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${job.name}"`,
      },
    });
  }
}
