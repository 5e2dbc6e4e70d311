/**
 * `outpost fleet`: the operator's console over the broker — list gateways, send commands to one,
 * some or all, roll out updates and restarts, export a device's data, serve the fleet page.
 */
import {
  type Command,
  commandHelp,
  type Options,
  type OptionSpec,
  parseCommand,
  parseTime,
  UsageError,
} from "../common/cli.ts";
import { ConfigError, formatProblem } from "../config/load.ts";
import { isLoopbackListen } from "../config/gateway.ts";
import { parseDuration } from "../config/schema.ts";
import { createLogger } from "../log.ts";
import { readSigningKey, type SigningKey } from "../update/keys.ts";
import { Fleet, FleetError, type GatewayView } from "./client.ts";
import { type ConnectionFlags, FleetConfigError, resolveConnection } from "./config.ts";
import { exportCsv, ExportError } from "./export.ts";
import { formatFleetTable, formatProgress, formatResults } from "./format.ts";
import { type CommandRun, expectsRestart, type RunSummary } from "./run.ts";
import { insecureListenMessage, serveFleet } from "./serve.ts";
import { COMMAND_NAMES } from "../protocol/mod.ts";

const USAGE = `Usage: outpost fleet [list] [--watch [--interval 2s]] [--json]
       outpost fleet send CMD [--args JSON] (--gateway ID[,ID...] | --all) [--timeout 30s] [--json]
       outpost fleet restart (--gateway ID[,ID...] | --all) [--timeout 2m] [--json]
       outpost fleet update (--gateway ID[,ID...] | --all) [--version V] [--check]
                            [--timeout 10m] [--json]
       outpost fleet export --gateway ID --device D [--metric M] --from TIME [--to TIME]
                            --out FILE.csv [--timeout 30s]
       outpost fleet serve [--listen 127.0.0.1:8790] [--token-file FILE]
                           [--https-cert FILE --https-key FILE] [--allow-insecure-http]

Shows every gateway from its retained status (online/offline, version, backlog, oldest pending,
last seen) and sends remote commands, waiting for every reply. Exit status 1 when a gateway
answered with an error or did not answer in time.

  list      the table (default); --watch redraws it as statuses change
  send      any command (${COMMAND_NAMES.join(", ")}); --all uses the fleet-wide topic and
            expects a reply from every gateway online
  restart   graceful restart, then waits until each gateway is back (new process in its status)
  update    update-apply (or --check: update-check); a gateway that installs a release is
            followed until it is back and the version it then reports is shown
  export    a device's buffered readings via paged query replies, checked for completeness,
            as the CSV of "outpost export" (written as FILE.partial, renamed when complete)
  serve     the fleet page: live gateway list, restart/update buttons, CSV export. Protected by
            a token (printed at start, or kept in --token-file); a non-loopback --listen needs
            --https-cert/--https-key or --allow-insecure-http`;

const FOOTER = `TIME is ISO 8601, ms since the epoch, or a duration back from now (30d).

Examples:
  outpost fleet --broker mqtts://broker:8883 --ca ca.pem --cert ops.pem --cert-key ops.key
  outpost fleet restart --gateway plant3-gw1 --connection fleet.yaml
  outpost fleet update --all --version 1.4.0 --connection fleet.yaml
  outpost fleet export --connection fleet.yaml --gateway plant3-gw1 --device pump-3 \\
      --from 30d --out pump-3.csv`;

const CONNECTION_OPTIONS = {
  connection: {
    type: "string",
    arg: "FILE",
    help: "YAML with url, username, password, tls {ca, cert, key, servername}, prefix, " +
      "statusTopic, key, clientId",
  },
  broker: { type: "string", arg: "URL", help: "mqtt:// or mqtts:// ($OUTPOST_BROKER)" },
  ca: {
    type: "string",
    arg: "FILE",
    help: "CA certificate (PEM) the broker's certificate is checked against",
  },
  cert: { type: "string", arg: "FILE", help: "client certificate (PEM) for mutual TLS" },
  "cert-key": { type: "string", arg: "FILE", help: "the key of --cert" },
  servername: { type: "string", arg: "NAME", help: "name to verify when it differs from the host" },
  username: { type: "string", arg: "NAME", help: "($OUTPOST_BROKER_USERNAME)" },
  "password-file": {
    type: "string",
    arg: "FILE",
    help: "($OUTPOST_BROKER_PASSWORD; never on the command line)",
  },
  prefix: { type: "string", arg: "P", default: "gateways", help: "the gateways' commands.prefix" },
  "status-topic": {
    type: "string",
    arg: "FILTER",
    default: "{prefix}/+/status",
    help: "filter matching every status topic",
  },
  key: {
    type: "string",
    arg: "FILE",
    help: 'operator key from "outpost release keygen": signs every command (gateways refuse ' +
      'unsigned ones but ping; "send ping" shows the scopes each gateway grants the key)',
  },
} as const satisfies Options;

const TARGETS = {
  gateway: {
    type: "string",
    multiple: true,
    arg: "ID[,ID...]",
    help: "the gateways to command",
  },
  all: { type: "boolean", help: "every gateway (the fleet-wide topic)" },
} as const satisfies Options;

const timeout = (dflt: string): OptionSpec => ({
  type: "string",
  arg: "DURATION",
  default: dflt,
  help: "how long to wait for the replies",
});
const STALE_AFTER: OptionSpec = {
  type: "string",
  arg: "DURATION",
  help: "an online status older than this shows as stale",
};

/** `outpost fleet`: its subcommands and their options, from which its help is generated. */
export const FLEET_COMMAND: Command<unknown> = {
  name: "fleet",
  summary: "Fleet console over the broker: list, send, restart, update, export, serve",
  usage: USAGE,
  optionsTitle: "Connection (flags override a --connection FILE):",
  options: {
    ...CONNECTION_OPTIONS,
    json: { type: "boolean", help: "print JSON instead of a table" },
  },
  defaultSubcommand: "list",
  subcommands: [
    {
      name: "list",
      summary: "the table",
      options: {
        watch: { type: "boolean", help: "redraw the table as statuses change" },
        interval: { type: "string", arg: "DURATION", default: "2s", help: "redraw interval" },
        "stale-after": STALE_AFTER,
      },
    },
    {
      name: "send",
      summary: "any command",
      positionals: 1,
      options: {
        args: { type: "string", arg: "JSON", help: "the command's arguments (an object)" },
        ...TARGETS,
        timeout: timeout("30s; restart 2m"),
      },
    },
    {
      name: "restart",
      summary: "graceful restart",
      options: { ...TARGETS, timeout: timeout("2m") },
    },
    {
      name: "update",
      summary: "update-apply or update-check",
      options: {
        ...TARGETS,
        timeout: timeout("10m; --check 1m"),
        version: { type: "string", arg: "V", help: "install this version" },
        check: { type: "boolean", help: "only check (update-check)" },
      },
    },
    {
      name: "export",
      summary: "a device's buffered readings",
      options: {
        gateway: { type: "string", multiple: true, arg: "ID", help: "the gateway (one)" },
        device: { type: "string", arg: "D", help: "the device" },
        metric: { type: "string", arg: "M", help: "only this metric" },
        from: { type: "string", arg: "TIME", help: "from this time on" },
        to: { type: "string", arg: "TIME", help: "up to this time" },
        out: { type: "string", short: "o", arg: "FILE.csv", help: "the CSV file" },
        timeout: timeout("30s"),
        "page-rows": { type: "string", arg: "N", help: "rows per query reply" },
      },
    },
    {
      name: "serve",
      summary: "the fleet page",
      options: {
        listen: { type: "string", arg: "HOST:PORT", default: "127.0.0.1:8790", help: "address" },
        "token-file": { type: "string", arg: "FILE", help: "keeps the page's token" },
        "https-cert": { type: "string", arg: "FILE", help: "HTTPS certificate (PEM)" },
        "https-key": { type: "string", arg: "FILE", help: "its key" },
        "allow-insecure-http": {
          type: "boolean",
          help: "serve plain HTTP on a non-loopback address",
        },
        "stale-after": STALE_AFTER,
      },
    },
  ],
  footer: FOOTER,
};

/** Help of `outpost fleet`, generated from {@linkcode FLEET_COMMAND}. */
export const FLEET_HELP: string = commandHelp(FLEET_COMMAND);

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

/** Bad `outpost fleet` usage: printed with a pointer to the help, exit status 2. */
export const FleetUsageError = UsageError;

type Sub = "list" | "send" | "restart" | "update" | "export" | "serve";
const SUBS: readonly Sub[] = ["list", "send", "restart", "update", "export", "serve"];

/** Who a command goes to. */
export type Targets = readonly string[] | "all";

/** A parsed `outpost fleet` command line. */
export interface FleetInvocation {
  sub: Sub;
  connection: ConnectionFlags;
  json: boolean;
  help: boolean;
  /** `send`: the command name. */
  cmd?: string;
  args?: Record<string, unknown>;
  targets?: Targets;
  timeoutMs?: number;
  watch?: boolean;
  intervalMs?: number;
  staleAfterMs?: number;
  version?: string;
  check?: boolean;
  export?: {
    gateway: string;
    device: string;
    metric?: string;
    from: number;
    to?: number;
    out: string;
    pageRows?: number;
  };
  serve?: {
    listen: string;
    tokenFile?: string;
    httpsCert?: string;
    httpsKey?: string;
    allowInsecureHttp: boolean;
  };
}

function duration(text: string | undefined, flag: string, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms < min) {
    throw new FleetUsageError(`${flag}: expected a duration such as 30s or 10m, got "${text}"`);
  }
  return ms;
}

function parseTargets(gateway: string[] | undefined, all: boolean | undefined): Targets {
  const ids = (gateway ?? []).flatMap((g) => g.split(",")).map((g) => g.trim()).filter(Boolean);
  if (all && ids.length) throw new FleetUsageError("use either --gateway or --all, not both");
  if (all) return "all";
  if (!ids.length) {
    throw new FleetUsageError("say which gateways: --gateway ID[,ID...] or --all");
  }
  for (const id of ids) {
    if (id === "fleet" || /[/#+\s]/.test(id)) {
      throw new FleetUsageError(`--gateway: "${id}" is not a gateway id`);
    }
  }
  return [...new Set(ids)];
}

/** Parses the arguments after `outpost fleet` (exported for tests). */
export function parseFleetArgs(argv: readonly string[], now = Date.now()): FleetInvocation {
  const parsed = parseCommand(FLEET_COMMAND, argv);
  const a = parsed.args;
  const named = parsed.help ? a.positionals[0] : parsed.command.name;
  const sub = (SUBS.includes(named as Sub) ? named : "list") as Sub;
  const inv: FleetInvocation = {
    sub,
    connection: Object.fromEntries(
      Object.keys(CONNECTION_OPTIONS).flatMap((k) =>
        a.string(k) !== undefined ? [[k, a.string(k)]] : []
      ),
    ) as ConnectionFlags,
    json: a.flag("json"),
    help: parsed.help,
  };
  if (inv.help) return inv;
  const pos = a.positionals;
  const list = (k: string) => a.list(k).length ? a.list(k) : undefined;
  const v = {
    watch: a.flag("watch"),
    interval: a.string("interval"),
    args: a.string("args"),
    gateway: list("gateway"),
    all: a.flag("all"),
    timeout: a.string("timeout"),
    version: a.string("version"),
    check: a.flag("check"),
    device: a.string("device"),
    metric: a.string("metric"),
    from: a.string("from"),
    to: a.string("to"),
    out: a.string("out"),
    "page-rows": a.string("page-rows"),
    listen: a.string("listen"),
    "token-file": a.string("token-file"),
    "https-cert": a.string("https-cert"),
    "https-key": a.string("https-key"),
    "allow-insecure-http": a.flag("allow-insecure-http"),
    "stale-after": a.string("stale-after"),
  };
  switch (sub) {
    case "list":
      inv.watch = v.watch === true;
      inv.intervalMs = duration(v.interval, "--interval", 100) ?? 2000;
      inv.staleAfterMs = duration(v["stale-after"], "--stale-after", 1000);
      break;
    case "send": {
      const cmd = pos[0];
      if (!cmd) throw new FleetUsageError(`send: missing CMD (${COMMAND_NAMES.join(", ")})`);
      if (!/^[A-Za-z0-9._-]+$/.test(cmd)) {
        throw new FleetUsageError(`send: "${cmd}" is not a command name`);
      }
      inv.cmd = cmd;
      if (v.args !== undefined) {
        let a: unknown;
        try {
          a = JSON.parse(v.args);
        } catch (e) {
          throw new FleetUsageError(`--args: not JSON: ${(e as Error).message}`);
        }
        if (!a || typeof a !== "object" || Array.isArray(a)) {
          throw new FleetUsageError(`--args: expected a JSON object, got ${v.args}`);
        }
        inv.args = a as Record<string, unknown>;
      }
      inv.targets = parseTargets(v.gateway, v.all);
      inv.timeoutMs = duration(v.timeout, "--timeout") ?? (cmd === "restart" ? 120_000 : 30_000);
      break;
    }
    case "restart":
      inv.targets = parseTargets(v.gateway, v.all);
      inv.timeoutMs = duration(v.timeout, "--timeout") ?? 120_000;
      break;
    case "update":
      inv.targets = parseTargets(v.gateway, v.all);
      inv.check = v.check === true;
      if (inv.check && v.version !== undefined) {
        throw new FleetUsageError("--version applies to an update, not to --check");
      }
      inv.version = v.version;
      inv.timeoutMs = duration(v.timeout, "--timeout") ?? (inv.check ? 60_000 : 600_000);
      break;
    case "export": {
      const targets = parseTargets(v.gateway, false);
      if (targets.length !== 1) throw new FleetUsageError("export: one --gateway at a time");
      if (!v.device) throw new FleetUsageError("export: missing --device ID");
      if (!v.from) throw new FleetUsageError("export: missing --from TIME (e.g. 30d)");
      if (!v.out) throw new FleetUsageError("export: missing --out FILE.csv");
      const from = parseTime(v.from, "--from", now);
      const to = v.to !== undefined ? parseTime(v.to, "--to", now) : undefined;
      if (to !== undefined && to <= from) {
        throw new FleetUsageError(`--to (${v.to}) must be after --from (${v.from})`);
      }
      let pageRows: number | undefined;
      if (v["page-rows"] !== undefined) {
        pageRows = Number(v["page-rows"]);
        if (!Number.isInteger(pageRows) || pageRows < 1) {
          throw new FleetUsageError(`--page-rows: expected a positive integer`);
        }
      }
      inv.export = {
        gateway: (targets as string[])[0],
        device: v.device,
        metric: v.metric,
        from,
        to,
        out: v.out,
        pageRows,
      };
      inv.timeoutMs = duration(v.timeout, "--timeout") ?? 30_000;
      break;
    }
    case "serve":
      inv.serve = {
        listen: v.listen ?? "127.0.0.1:8790",
        tokenFile: v["token-file"],
        httpsCert: v["https-cert"],
        httpsKey: v["https-key"],
        allowInsecureHttp: v["allow-insecure-http"] === true,
      };
      if ((inv.serve.httpsCert === undefined) !== (inv.serve.httpsKey === undefined)) {
        throw new FleetUsageError("--https-cert and --https-key go together");
      }
      if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/.test(inv.serve.listen)) {
        throw new FleetUsageError(
          `--listen: expected host:port such as 127.0.0.1:8790, got "${inv.serve.listen}"`,
        );
      }
      if (
        !isLoopbackListen(inv.serve.listen) && !inv.serve.httpsCert && !inv.serve.allowInsecureHttp
      ) {
        throw new FleetUsageError(insecureListenMessage(inv.serve.listen));
      }
      inv.staleAfterMs = duration(v["stale-after"], "--stale-after", 1000);
      break;
  }
  return inv;
}

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
    const { connection, keyFile } = resolveConnection(inv.connection);
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
        return await serveFleet(fleet, { ...inv.serve!, log, print: io.out, signal });
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(e.problems.map(formatProblem).join("\n"));
      return 2;
    }
    if (e instanceof FleetConfigError || e instanceof FleetUsageError) {
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
    io.out(JSON.stringify({ ...s, results: run.results() }, null, 2));
    return;
  }
  io.out(formatResults(run.results()));
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
        `export ${x.gateway}/${x.device}: ${p.pages} page(s), ${p.rows} rows${
          p.lastTs ? `, up to ${new Date(p.lastTs).toISOString()}` : ""
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
