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

/** Commands the page may send. */
export const PAGE_COMMANDS = ["ping", "restart", "update-check", "update-apply"] as const;

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
    const args: Record<string, unknown> = {};
    if (cmd === "update-apply" && typeof body.version === "string" && body.version.trim()) {
      args.version = body.version.trim();
    }
    const timeoutMs = cmd === "update-apply" ? 600_000 : cmd === "restart" ? 120_000 : 60_000;
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
