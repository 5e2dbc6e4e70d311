/**
 * `outpost fleet`: the operator's console over the broker — list gateways, send commands to one,
 * some or all, roll out updates and restarts, export a device's data, serve the fleet page.
 * The command line itself is parsed in `args.ts`.
 */
import { ConfigError, formatProblem } from "../config/load.ts";
import { createLogger } from "../log.ts";
import { readSigningKey, type SigningKey } from "../update/keys.ts";
import { UsageError } from "../common/cli.ts";
import { FLEET_HELP, type FleetInvocation, parseFleetArgs } from "./args.ts";
import { Fleet, FleetError, type GatewayView } from "./client.ts";
import { FleetConfigError, resolveConnection } from "./config.ts";
import { exportCsv, ExportError } from "./export.ts";
import { formatFleetTable, formatFullResults, formatProgress, formatResults } from "./format.ts";
import { resultJson } from "./results.ts";
import { type CommandRun, expectsRestart, type RunSummary } from "./run.ts";
import { serveFleet } from "./serve.ts";

export { FLEET_COMMAND, FLEET_HELP, FleetUsageError, parseFleetArgs } from "./args.ts";

/** Where the fleet CLI writes; tests capture it. */
export interface FleetIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether `out` is a terminal (redraws in place). */
  isTerminal?: boolean;
}

const CONSOLE_IO: FleetIo = {
  out: (t) => console.log(t),
  err: (t) => console.error(t),
  isTerminal: Deno.stdout.isTerminal(),
};

/** Runs `outpost fleet …`; returns the exit status (0 ok, 1 failure, 2 usage). */
export async function fleetMain(
  argv: readonly string[],
  io: FleetIo = CONSOLE_IO,
): Promise<number> {
  let inv: FleetInvocation;
  try {
    inv = parseFleetArgs(argv);
  } catch (e) {
    io.err(`outpost fleet: ${(e as Error).message}\n\nRun "outpost fleet --help" for usage.`);
    return 2;
  }
  if (inv.help) {
    io.out(FLEET_HELP);
    return 0;
  }
  let fleet: Fleet | undefined;
  const shutdown = shutdownSignal();
  const signal = shutdown.signal;
  try {
    const { connection, keyFile, pages } = resolveConnection(inv.connection);
    const key: SigningKey | undefined = keyFile ? await readSigningKey(keyFile) : undefined;
    if (!key && inv.sub !== "list" && inv.sub !== "serve" && inv.cmd !== "ping") {
      io.err(
        "outpost fleet: no operator key (--key FILE or key: in --connection): gateways refuse unsigned commands except ping",
      );
    }
    const long = inv.sub === "serve" || (inv.sub === "list" && inv.watch === true);
    const log = createLogger({ level: "info", format: "text", syslogPrefix: false }).child("fleet");
    fleet = await Fleet.connect({
      connection,
      key,
      reconnect: long,
      staleAfterMs: inv.staleAfterMs,
      log: long ? log : undefined,
    });
    await fleet.sync();
    switch (inv.sub) {
      case "list":
        return inv.watch ? await watch(fleet, inv, io, signal) : list(fleet, inv, io);
      case "send":
        return await send(fleet, inv.cmd!, inv, io, signal);
      case "restart":
        return await send(fleet, "restart", inv, io, signal);
      case "update":
        return await send(
          fleet,
          inv.check ? "update-check" : "update-apply",
          {
            ...inv,
            args: inv.version ? { version: inv.version } : {},
          },
          io,
          signal,
        );
      case "export":
        return await exportCmd(fleet, inv, io, signal);
      default:
        return await serveFleet(fleet, { ...inv.serve!, log, print: io.out, signal, pages });
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(e.problems.map(formatProblem).join("\n"));
      return 2;
    }
    if (e instanceof FleetConfigError || e instanceof UsageError) {
      io.err(`outpost fleet: ${e.message}`);
      return 2;
    }
    const known = e instanceof FleetError || e instanceof ExportError;
    io.err(`outpost fleet ${inv.sub}: ${known ? e.message : (e as Error).stack ?? e}`);
    return 1;
  } finally {
    shutdown.dispose();
    await fleet?.close();
  }
}

/** Aborts on SIGINT or SIGTERM until disposed (tests call the CLI in-process). */
function shutdownSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const sigs: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const on = () => ac.abort();
  for (const s of sigs) Deno.addSignalListener(s, on);
  return {
    signal: ac.signal,
    dispose: () => {
      for (const s of sigs) Deno.removeSignalListener(s, on);
    },
  };
}

function listJson(gateways: readonly GatewayView[]): string {
  return JSON.stringify(
    gateways.map((g) => ({
      id: g.id,
      state: g.state,
      stale: g.stale,
      health: g.health,
      healthNote: g.healthNote,
      site: g.site,
      alarms: g.alarms,
      doctor: g.doctor,
      deviceUpdates: g.deviceUpdates,
      version: g.version,
      backlog: g.backlog,
      oldestPendingAgeMs: g.oldestPendingAgeMs,
      lastSeen: g.lastSeen === null ? null : new Date(g.lastSeen).toISOString(),
      startedAt: g.startedAt === null ? null : new Date(g.startedAt).toISOString(),
      reason: g.reason,
      status: g.status,
    })),
    null,
    2,
  );
}

function list(fleet: Fleet, inv: FleetInvocation, io: FleetIo): number {
  const gws = fleet.gateways();
  io.out(inv.json ? listJson(gws) : formatFleetTable(gws));
  return 0;
}

async function watch(
  fleet: Fleet,
  inv: FleetInvocation,
  io: FleetIo,
  signal: AbortSignal,
): Promise<number> {
  const draw = () => {
    const gws = fleet.gateways();
    if (inv.json) {
      return io.out(JSON.stringify({ ts: Date.now(), gateways: JSON.parse(listJson(gws)) }));
    }
    const head = `${new Date().toISOString()}  ${fleet.url}${
      fleet.connected ? "" : `  DISCONNECTED${fleet.lastError ? `: ${fleet.lastError}` : ""}`
    }`;
    io.out(`${io.isTerminal ? "\x1b[H\x1b[2J" : "\n"}${head}\n\n${formatFleetTable(gws)}`);
  };
  draw();
  // Redraw on a change, at most once per interval, and each interval for the ages.
  let dirty = false;
  const offChange = fleet.onChange(() => dirty = true);
  const offConn = fleet.onConnection(() => dirty = true);
  let ticks = 0;
  const perAgeRefresh = Math.max(1, Math.round(10_000 / inv.intervalMs!));
  const timer = setInterval(() => {
    ticks++;
    if (dirty || (!inv.json && ticks % perAgeRefresh === 0)) {
      dirty = false;
      draw();
    }
  }, inv.intervalMs);
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
  clearInterval(timer);
  offChange();
  offConn();
  return 0;
}

async function send(
  fleet: Fleet,
  cmd: string,
  inv: FleetInvocation,
  io: FleetIo,
  signal: AbortSignal,
): Promise<number> {
  const targets = inv.targets!;
  if (targets !== "all") {
    const unknown = targets.filter((id) => !fleet.gateway(id));
    if (unknown.length) io.err(`note: no status seen for ${unknown.join(", ")}; sending anyway`);
    const offline = targets.filter((id) => fleet.gateway(id)?.state === "offline");
    if (offline.length) io.err(`note: offline according to status: ${offline.join(", ")}`);
  } else {
    const off = fleet.gateways().filter((g) => g.state === "offline");
    if (off.length) {
      io.err(
        `note: ${off.length} offline gateway(s) will not get it: ${
          off.map((g) => g.id).join(", ")
        }`,
      );
    }
  }
  const run = fleet.send(cmd, {
    targets,
    args: inv.args,
    timeoutMs: inv.timeoutMs!,
    followRestart: expectsRestart(cmd),
    signal,
  });
  if (run.results().length === 0) {
    io.err(`${cmd}: no gateway is online according to its status; nothing sent`);
    return 1;
  }
  io.err(
    `${cmd} sent to ${
      targets === "all" ? `all (${run.results().length} online)` : targets.join(", ")
    }; waiting up to ${Math.round(inv.timeoutMs! / 1000)}s`,
  );
  const off = run.onUpdate((t) => io.err(formatProgress(run.summary(), t)));
  const summary = await run.done;
  off();
  report(run, summary, inv, io);
  return summary.ok === summary.total ? 0 : 1;
}

function report(run: CommandRun, s: RunSummary, inv: FleetInvocation, io: FleetIo): void {
  if (inv.json) {
    io.out(JSON.stringify({ ...s, results: run.results().map(resultJson) }, null, 2));
    return;
  }
  io.out(formatResults(run.results()));
  const full = formatFullResults(s.cmd, run.results());
  if (full) io.out(`\n${full}`);
  io.out(
    `\n${s.cmd}: ${s.ok} of ${s.total} ok${s.failed ? `, ${s.failed} failed` : ""}${
      s.timedOut ? `, ${s.timedOut} timed out` : ""
    }`,
  );
}

async function exportCmd(
  fleet: Fleet,
  inv: FleetInvocation,
  io: FleetIo,
  signal: AbortSignal,
): Promise<number> {
  const x = inv.export!;
  const g = fleet.gateway(x.gateway);
  if (!g) io.err(`note: no status seen for ${x.gateway}; asking anyway`);
  else if (g.state === "offline") io.err(`note: ${x.gateway} is offline according to its status`);
  const started = Date.now();
  let lastShown = 0;
  const r = await exportCsv(fleet, {
    gatewayId: x.gateway,
    device: x.device,
    metric: x.metric,
    from: x.from,
    to: x.to,
    out: x.out,
    pageRows: x.pageRows,
    idleTimeoutMs: inv.timeoutMs,
    signal,
    onProgress: (p) => {
      if (p.pages === 0 || Date.now() - lastShown < 500) return;
      lastShown = Date.now();
      io.err(
        `export ${x.gateway}/${x.device}: ${p.pages} page(s), ${
          p.total === null ? `${p.rows} rows` : `${p.rows} of ${p.total} rows (${p.percent}%)`
        }`,
      );
    },
  });
  const summary = {
    gateway: x.gateway,
    device: x.device,
    metric: x.metric ?? null,
    from: new Date(x.from).toISOString(),
    to: x.to === undefined ? null : new Date(x.to).toISOString(),
    rows: r.rows,
    pages: r.pages,
    requests: r.requests,
    out: r.out,
    ms: Date.now() - started,
  };
  if (inv.json) io.out(JSON.stringify(summary, null, 2));
  else {
    io.out(
      `exported ${r.rows} readings of ${x.device} from ${x.gateway} to ${r.out} (${r.pages} page(s), complete)`,
    );
  }
  return 0;
}
