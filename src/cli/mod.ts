import { parseArgs } from "node:util";
import type { AdapterModule } from "../adapter.ts";
import { ConfigError, formatProblem, loadConfigFile } from "../config/load.ts";
import { type GatewayConfig, gatewaySchema } from "../config/gateway.ts";
import { parseDuration } from "../config/schema.ts";
import { CSV_HEADER, csvLine, exportReadings } from "../buffer/mod.ts";
import { Gateway, type GatewayStatus, provideStatus } from "../gateway.ts";
import { startHttpServer } from "../http/server.ts";
import { auditPath, readAuditFile } from "../commands/mod.ts";
import { localClient, openHttpAccess } from "../http/local.ts";
import { readTokenFile, rotateTokenFile, tokenPath } from "../http/token.ts";
import { createLogger } from "../log.ts";
import { createCommandService } from "../commands/mod.ts";
import { provideUpdateCommands } from "../commands/mod.ts";
import { fleetMain } from "../fleet/mod.ts";
import {
  BufferWriteProbe,
  startWatchdog,
  statusLine,
  SystemdNotifier,
  watchdogIntervalMs,
  watchdogProblem,
} from "../systemd.ts";
import { VERSION } from "../version.ts";
import { checkExec, execInto } from "../update/handover.ts";
import { stopChild } from "../update/trial.ts";
import {
  checkArtifact,
  describeRoot,
  initRelease,
  keygen,
  parseExpires,
  parseVersion,
  pinUpdates,
  publish,
  readPublicKeys,
  readRoot,
  readRootFile,
  readSigningKey,
  releaseRoleKeys,
  rollbackByHand,
  rotateRole,
  Slots,
  TARGET_RE,
  unpinUpdates,
  UpdateAgent,
  type UpdateConfig,
  Updater,
  UpdateRefused,
  verifyChannel,
  verifyChannelWithRoot,
  writeTimestamp,
} from "../update/mod.ts";

/** Exit status: success. */
export const EXIT_OK = 0;
/** Exit status: runtime failure. */
export const EXIT_FAILURE = 1;
/** Exit status: bad usage or bad config. */
export const EXIT_USAGE = 2;

/** What the CLI needs from the binary that embeds it. */
export interface CliDeps {
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
}

/** Bad command-line usage: printed with the command's help, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

const HELP: Record<string, string> = {
  main: `outpost ${VERSION} — IoT edge gateway

Usage: outpost <command> [options]

Commands:
  run            Run the gateway (--config FILE)
  check-config   Validate a config file and exit
  status         Show a running gateway's status
  token          The access token of the gateway page and API: show, rotate, path
  export         Export buffered readings as CSV or JSON lines
  schema         Print the config JSON Schema
  update         Self-update: check, apply, init (device side)
  release        Release tooling: keygen, publish, verify
  fleet          Fleet console over the broker: list, send, restart, update, export, serve
  version        Print the version

Run "outpost <command> --help" for a command's options.
Exit status: 0 ok, 1 runtime failure, 2 bad usage or config.`,
  run: `Usage: outpost run --config FILE [--log-format text|json] [--log-level LEVEL]

Runs the gateway until SIGTERM/SIGINT. SIGHUP reloads the config (validated first; the
buffer is never wiped). The gateway page and API (http.listen) need the access token that the
first run generates and prints once (see "outpost token --help"). Under systemd (Type=notify) it sends READY=1 once serving, WATCHDOG=1
at half of WatchdogSec while healthy, STATUS= lines and STOPPING=1.`,
  "check-config": `Usage: outpost check-config FILE

Validates FILE; prints every problem as file:line:col key.path: message. Exit 2 when invalid.`,
  status: `Usage: outpost status [--config FILE] [--url URL] [--token-file FILE] [--ca FILE]
                      [--json]

Reads /status of a running gateway (address from the config's http.listen, default
127.0.0.1:8787) with its access token (from the config's token file, default data/http-token)
and prints it. Under http.tls the configured certificate (or --ca) is trusted.`,
  token: `Usage: outpost token show --config FILE
       outpost token rotate --config FILE
       outpost token path --config FILE

The gateway page, /status, /metrics and /logs need the gateway's access token (the page's
sign-in form, or the header "Authorization: Bearer TOKEN"); /healthz does not. The gateway
generates it on first run (32 random bytes, base64url), prints it once and keeps it in
http.tokenFile (default: http-token next to buffer.path), mode 0600.

  show    print the token (needs read access to the file: the gateway's user or root)
  rotate  write a new random token and print it; a running gateway uses it from its next
          request, without a restart, and refuses the old one (signed-in pages sign in again)
  path    print where the token file is`,
  export: `Usage: outpost export (--config FILE | --db FILE) [--device ID] [--metric NAME]
                      [--since DURATION | --from TIME] [--until TIME]
                      [--format csv|jsonl] [--out FILE]

Exports buffered readings (forwarded or not) in sequence order. TIME is ISO 8601 or ms since
the epoch; DURATION such as 30d, 12h. Example — the last 30 days of pump-3 as CSV:
  outpost export --config site.yaml --device pump-3 --since 30d --out pump-3.csv`,
  schema: `Usage: outpost schema

Prints the JSON Schema of the config file (config/schema.json), for editors.`,
  version: `Usage: outpost version [--json]`,
  release:
    `Usage: outpost release init --out DIR [--ROLE-keys N] [--ROLE-threshold K] [--expires 365d]
       outpost release rotate --dir DIR --role root|targets|timestamp [--expires 365d]
       outpost release publish --channel DIR --artifact FILE --version X --target T
                               (--root-dir DIR [--key TARGETS.key]… [--timestamp-key TS.key]
                                [--timestamp-expires 1d] | --key PRIV [--key PRIV2])
                               [--expires 30d] [--rollout 100] [--hardware CLASS]…
                               [--channel-name NAME] [--counter N]
       outpost release timestamp --channel DIR --root-dir DIR [--key TS.key] [--expires 1d]
       outpost release keygen --out DIR
       outpost release verify --channel DIR (--root root.json | --pubkey FILE|ed25519:…)

init makes a release directory: new keys for the root, targets and timestamp roles (ROLE is
root, targets or timestamp; 1 key, threshold 1 each unless given) and root.json version 1, the
file devices pin (update init --root). rotate replaces one role's keys with a root version
signed by the old and the new root keys. timestamp re-signs timestamp.json (run it daily with
the timestamp key: devices report the channel stale once it expires).
keygen writes DIR/<keyid>.key (Ed25519 private key, mode 0600) and DIR/<keyid>.pub and prints
the public key. publish checks the artifact is an Outpost build of that version for that target,
verifies the channel's current manifest.json and its artifacts, copies the artifact into the
channel and writes a signed manifest.json with the next counter (with --root-dir also the root
chain and timestamp.json). verify checks the channel as a device pinning --root would (or the
manifest alone with --pubkey) and every artifact's length and SHA-256. See the README's
Self-update section.`,
  update: `Usage: outpost update check --config FILE
       outpost update apply --config FILE
       outpost update init --install-root DIR --artifact FILE --version X [--root root.json]
       outpost update rollback --config FILE [--reason TEXT]
       outpost update pin (--config FILE | --install-root DIR) [--reason TEXT]
       outpost update unpin (--config FILE | --install-root DIR)

check fetches and verifies the channel's manifest and prints what the device would do (nothing
changes). apply asks the running gateway (pid from its /status) to check and install now
(SIGUSR2). init lays out a fresh install root (slots/a with the artifact, current, state.json);
the artifact must be an Outpost build for this machine that reports exactly --version.
rollback (gateway stopped) makes the other slot's version the committed one; the version rolled
back from is not installed again until a newer release or unpin. pin stops all installs until
unpin.`,
};

function printErr(msg: string): void {
  console.error(msg);
}

/** Loads and validates a config file with every registered adapter. */
export function loadGatewayConfig(path: string, deps: CliDeps): GatewayConfig {
  return loadConfigFile(path, gatewaySchema(deps.adapters));
}

/** Parsed flags: strings for string options, `true` for boolean ones that were given. */
type Values = Record<string, string | undefined> & { help?: unknown };

function parse(
  cmd: string,
  args: string[],
  options: Record<string, { type: "string" | "boolean"; short?: string }>,
  allowPositionals = false,
): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals,
      strict: true,
    });
    return { values: r.values as unknown as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${HELP[cmd]}`);
  }
}

/** Parses a time bound: ISO 8601, ms since epoch, or a duration back from now ("30d"). */
export function parseTime(text: string, flag: string, now = Date.now()): number {
  if (/^\d{12,}$/.test(text)) return Number(text);
  const d = parseDuration(text);
  if (d !== undefined) return now - d;
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new UsageError(
      `${flag}: expected ISO 8601 time, ms since epoch or a duration like 30d, got "${text}"`,
    );
  }
  return t;
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[], deps: CliDeps): Promise<number> {
  const [cmd, ...rest] = args;
  try {
    switch (cmd) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(HELP.main);
        return cmd === undefined ? EXIT_USAGE : EXIT_OK;
      case "version":
      case "--version": {
        const { values } = parse("version", rest, { json: { type: "boolean" } });
        if (values.help) return help("version");
        console.log(
          values.json
            ? JSON.stringify({ version: VERSION, deno: Deno.version.deno, arch: Deno.build.arch })
            : `outpost ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.target})`,
        );
        return EXIT_OK;
      }
      case "check-config":
        return checkConfig(rest, deps);
      case "run":
        return await runWithUpdates(rest, deps);
      case "release":
        return await releaseCmd(rest);
      case "fleet":
        return await fleetMain(rest);
      case "update":
        return await updateCmd(rest, deps);
      case "status":
        return await status(rest, deps);
      case "token":
        return tokenCmd(rest, deps);
      case "export":
        return await exportCmd(rest, deps);
      case "schema": {
        const { values } = parse("schema", rest, {});
        if (values.help) return help("schema");
        console.log(JSON.stringify(configJsonSchema(deps), null, 2));
        return EXIT_OK;
      }
      default:
        printErr(`outpost: unknown command "${cmd}"\n\n${HELP.main}`);
        return EXIT_USAGE;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      printErr(`outpost ${cmd}: ${e.message}`);
      return EXIT_USAGE;
    }
    if (e instanceof ConfigError) {
      printErr(e.problems.map(formatProblem).join("\n"));
      return EXIT_USAGE;
    }
    printErr(`outpost ${cmd}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
}

function help(cmd: string): number {
  console.log(HELP[cmd]);
  return EXIT_OK;
}

/** The JSON Schema of the config file. */
export function configJsonSchema(deps: CliDeps): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://outpost.dev/schema/config.json",
    title: "Outpost gateway config",
    ...gatewaySchema(deps.adapters).toJsonSchema(),
  };
}

function checkConfig(args: string[], deps: CliDeps): number {
  const { values, positionals } = parse("check-config", args, {
    config: { type: "string", short: "c" },
  }, true);
  if (values.help) return help("check-config");
  const file = positionals[0] ?? values.config;
  if (!file) throw new UsageError(`missing FILE\n\n${HELP["check-config"]}`);
  const config = loadGatewayConfig(file, deps);
  const enabled = config.adapters.filter((a) => a.enabled);
  console.log(
    `${file}: ok — gateway "${config.gateway.id}", ${enabled.length} adapter(s) (${
      enabled.map((a) => `${a.name}:${a.type}`).join(", ") || "none"
    }), uplink ${config.uplink ? (config.uplink as unknown as { type: string }).type : "none"}`,
  );
  return EXIT_OK;
}

async function run(args: string[], deps: CliDeps): Promise<number> {
  const { values } = parse("run", args, {
    config: { type: "string", short: "c" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
  });
  if (values.help) return help("run");
  if (!values.config) throw new UsageError(`missing --config FILE\n\n${HELP.run}`);
  const format = values["log-format"];
  if (format !== undefined && format !== "text" && format !== "json") {
    throw new UsageError(`--log-format: expected text or json, got "${format}"`);
  }
  const level = values["log-level"];
  if (level !== undefined && !["debug", "info", "warn", "error"].includes(level)) {
    throw new UsageError(`--log-level: expected debug, info, warn or error, got "${level}"`);
  }
  const configPath = values.config;
  let config = loadGatewayConfig(configPath, deps);
  const log = createLogger({
    level: (level ?? config.log.level) as "info",
    format: (format ?? config.log.format) as "text",
  });
  const sdLog = log.child("systemd");
  // Before the gateway starts: a bad token file or certificate stops us with nothing running.
  // The first-run token goes to stdout once, through a logger whose ring nobody reads.
  const access = config.http.enabled
    ? openHttpAccess(config, {
      log: log.child("http"),
      announce: createLogger({ format: (format ?? config.log.format) as "text", ringSize: 0 })
        .child("http").info,
    })
    : undefined;
  // Read before anything spawns children, then unset so they do not inherit it.
  const watchdogMs = watchdogIntervalMs();
  const systemd = SystemdNotifier.fromEnv(sdLog, { unset: true });
  // Resolves with the signal that stops the gateway, or "restart" (a remote command).
  let stopping = Promise.withResolvers<string>();
  // Listening before the gateway starts: a SIGTERM during start-up (systemctl stop while it comes
  // up) still stops it in order, with the buffer flushed, instead of killing it.
  const onSignal = (sig: Deno.Signal) => () => stopping.resolve(sig);
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", onSignal("SIGTERM")],
    ["SIGINT", onSignal("SIGINT")],
  ];
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  let gateway = Gateway.start({ config, adapters: deps.adapters, log, version: VERSION });
  const startHttp = async () =>
    access
      ? await startHttpServer({
        ...access,
        gateway,
        log: log.child("http"),
        recentLogs: (n) => log.recent(n),
        audit: (n) => readAuditFile(auditPath(config.buffer.path), n),
      })
      : undefined;
  let http = await startHttp();
  const lifetime = new AbortController();
  let probe = new BufferWriteProbe(config.buffer.path);
  if (systemd) {
    await systemd.notify(`READY=1\nSTATUS=${statusLine(gateway.status())}`);
    sdLog.info("notified systemd: ready", {
      watchdog: watchdogMs ? `${watchdogMs}ms` : "off",
    });
    startWatchdog({
      notifier: systemd,
      intervalMs: watchdogMs ?? 10_000,
      ping: watchdogMs !== undefined,
      check: () => watchdogProblem(gateway.health(), probe),
      status: () => statusLine(gateway.status()),
      log: sdLog,
      signal: lifetime.signal,
    });
  }
  let restartWith: GatewayConfig | undefined;
  const commands = createCommandService({
    configPath,
    version: VERSION,
    adapters: deps.adapters,
    apply: async (next) => {
      await systemd?.notify("RELOADING=1\nSTATUS=reloading config (remote command)");
      try {
        await gateway.reload(next);
        config = next;
        commands.reconfigure(next);
      } finally {
        await systemd?.notify(`READY=1\nSTATUS=${statusLine(gateway.status())}`);
      }
    },
    restart: (next) => {
      restartWith = next;
      stopping.resolve("restart");
    },
  });
  commands.attach(gateway, config, log);
  const reload = async () => {
    await systemd?.notify("RELOADING=1\nSTATUS=reloading config");
    try {
      const next = loadGatewayConfig(configPath, deps);
      await gateway.reload(next);
      config = next;
      commands.reconfigure(next);
    } catch (e) {
      const msg = e instanceof ConfigError
        ? e.problems.map(formatProblem).join("; ")
        : (e as Error).message;
      log.error("config reload refused; keeping the running config", { error: msg });
    }
    await systemd?.notify(`READY=1\nSTATUS=${statusLine(gateway.status())}`);
  };
  const onHup = () => void reload();
  Deno.addSignalListener("SIGHUP", onHup);
  let sig = await stopping.promise;
  // A restart command: stop in order, start again with the config it validated, same process.
  while (sig === "restart" && restartWith) {
    const next: GatewayConfig = restartWith;
    restartWith = undefined;
    stopping = Promise.withResolvers<string>();
    log.info("restarting the gateway (remote command)");
    await systemd?.notify("RELOADING=1\nSTATUS=restarting (remote command)");
    commands.detach();
    await http?.close();
    await gateway.stop({ reason: "restarting" });
    probe.close();
    config = next;
    gateway = Gateway.start({ config, adapters: deps.adapters, log, version: VERSION });
    http = await startHttp();
    probe = new BufferWriteProbe(config.buffer.path);
    commands.attach(gateway, config, log);
    await systemd?.notify(`READY=1\nSTATUS=${statusLine(gateway.status())}`);
    sig = await stopping.promise;
  }
  log.info(`received ${sig}; shutting down`);
  await systemd?.notify(`STOPPING=1\nSTATUS=stopping (${sig})`);
  lifetime.abort();
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  Deno.removeSignalListener("SIGHUP", onHup);
  commands.close();
  await http?.close();
  await gateway.stop();
  probe.close();
  systemd?.close();
  return EXIT_OK;
}

function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "-";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

/** Renders a status document for a terminal. */
export function formatStatus(s: GatewayStatus): string {
  const lines: string[] = [];
  const u = s.uplink;
  lines.push(
    `gateway   ${s.gatewayId}${s.site ? ` (${s.site})` : ""}  version ${s.version}  up ${
      formatAge(s.uptimeMs)
    }  health ${s.health.ok ? "OK" : "FAILING"}`,
  );
  for (const [name, c] of Object.entries(s.health.checks)) {
    lines.push(`  ${c.ok ? "ok  " : "FAIL"} ${name.padEnd(9)} ${c.detail}`);
  }
  lines.push(
    `uplink    ${
      u
        ? `${u.type} ${u.target}  ${u.connected ? "connected" : "DISCONNECTED"} for ${
          formatAge(u.forSeconds * 1000)
        }${u.lastError && !u.connected ? `  (${u.lastError})` : ""}`
        : "none (buffer only)"
    }`,
  );
  const b = s.buffer;
  lines.push(
    `buffer    ${b.pending} pending, oldest ${formatAge(b.oldestPendingAgeMs)}; ${b.rows} stored, ${
      (b.bytes / 1048576).toFixed(1)
    } MB${b.atCap ? `  AT ${b.atCap.toUpperCase()} CAP` : ""}`,
  );
  if (s.forwarder) {
    lines.push(
      `forwarded ${s.forwarder.forwardedReadings} readings in ${s.forwarder.forwardedMessages} messages, last ${
        s.forwarder.lastForwardedAt
          ? formatAge(Date.now() - s.forwarder.lastForwardedAt) + " ago"
          : "never"
      }`,
    );
  }
  const d = s.drops;
  lines.push(
    `drops     invalid ${d.invalid}, over series limit ${
      d.seriesLimit ?? 0
    }, dropped at cap ${d.droppedUnforwarded}, refused when full ${d.rejectedFull}, set aside ${d.setAside}`,
  );
  lines.push("adapters");
  for (const a of s.adapters) {
    const devices = Object.values(a.devices);
    const down = devices.filter((x) => x.state !== "online").length;
    lines.push(
      `  ${a.name.padEnd(16)} ${a.type.padEnd(12)} ${a.state.padEnd(8)} restarts ${a.restarts}${
        down ? `  ${down} device(s) down` : ""
      }${a.lastError ? `  last error: ${a.lastError}` : ""}`,
    );
  }
  return lines.join("\n");
}

async function status(args: string[], deps: CliDeps): Promise<number> {
  const { values } = parse("status", args, {
    config: { type: "string", short: "c" },
    url: { type: "string" },
    "token-file": { type: "string" },
    ca: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return help("status");
  const config = values.config ? loadGatewayConfig(values.config, deps) : undefined;
  const client = localClient(config, {
    url: values.url,
    tokenFile: values["token-file"],
    ca: values.ca,
  });
  let body: GatewayStatus;
  try {
    const res = await client.get("/status");
    if (!res.ok) {
      throw new Error(`${client.base}/status answered ${res.status}: ${(await res.text()).trim()}`);
    }
    body = await res.json() as GatewayStatus;
  } finally {
    client.close();
  }
  console.log(values.json ? JSON.stringify(body, null, 2) : formatStatus(body));
  return body.health.ok ? EXIT_OK : EXIT_FAILURE;
}

function tokenCmd(args: string[], deps: CliDeps): number {
  const [sub, ...rest] = args;
  const { values } = parse("token", rest, { config: { type: "string", short: "c" } });
  if (values.help || sub === "--help" || sub === "-h") return help("token");
  if (sub !== "show" && sub !== "rotate" && sub !== "path") {
    throw new UsageError(`expected show, rotate or path, got "${sub ?? ""}"\n\n${HELP.token}`);
  }
  if (!values.config) throw new UsageError(`${sub}: missing --config FILE\n\n${HELP.token}`);
  const path = tokenPath(loadGatewayConfig(values.config, deps));
  if (sub === "path") {
    console.log(path);
  } else if (sub === "show") {
    console.log(readTokenFile(path));
  } else {
    const token = rotateTokenFile(path);
    console.error(
      `wrote a new access token to ${path} (mode 0600); a running gateway uses it from its ` +
        `next request and refuses the old one`,
    );
    console.log(token);
  }
  return EXIT_OK;
}

async function exportCmd(args: string[], deps: CliDeps): Promise<number> {
  const { values } = parse("export", args, {
    config: { type: "string", short: "c" },
    db: { type: "string" },
    device: { type: "string" },
    metric: { type: "string" },
    since: { type: "string" },
    from: { type: "string" },
    until: { type: "string" },
    format: { type: "string" },
    out: { type: "string", short: "o" },
  });
  if (values.help) return help("export");
  const db = values.db ??
    (values.config ? loadGatewayConfig(values.config, deps).buffer.path : undefined);
  if (!db) throw new UsageError(`missing --config FILE or --db FILE\n\n${HELP.export}`);
  const format = values.format ?? "csv";
  if (format !== "csv" && format !== "jsonl") {
    throw new UsageError(`--format: expected csv or jsonl, got "${format}"`);
  }
  if (values.since && values.from) throw new UsageError("use either --since or --from, not both");
  const now = Date.now();
  const from = values.since
    ? (() => {
      const d = parseDuration(values.since!);
      if (d === undefined) {
        throw new UsageError(
          `--since: expected a duration such as 30d or 12h, got "${values.since}"`,
        );
      }
      return now - d;
    })()
    : values.from
    ? parseTime(values.from, "--from", now)
    : undefined;
  const to = values.until ? parseTime(values.until, "--until", now) : undefined;
  const file = values.out
    ? await Deno.open(values.out, { write: true, create: true, truncate: true })
    : undefined;
  const enc = new TextEncoder();
  let chunk = "";
  let n = 0;
  const write = async (force: boolean) => {
    if (!force && chunk.length < 65536) return;
    const bytes = enc.encode(chunk);
    chunk = "";
    if (file) {
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
    } else {
      let off = 0;
      while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
    }
  };
  try {
    if (format === "csv") chunk += CSV_HEADER + "\n";
    for (
      const r of exportReadings(db, { device: values.device, metric: values.metric, from, to })
    ) {
      chunk += (format === "csv" ? csvLine(r) : JSON.stringify(r)) + "\n";
      n++;
      await write(false);
    }
    await write(true);
  } finally {
    file?.close();
  }
  if (values.out) console.error(`exported ${n} readings to ${values.out}`);
  return EXIT_OK;
}

function parseListenUrl(listen: string): string {
  const host = listen.replace(/^0\.0\.0\.0:/, "127.0.0.1:").replace(/^\[::\]:/, "[::1]:");
  return `http://${host}`;
}

const SYSTEMD_ENV = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/**
 * `run`, with the self-updater around it when the config has an `update:` section. A staged
 * release stops the gateway the way systemd would (SIGTERM to itself), runs the new version on
 * trial as a child, and either hands over to it (MAINPID= under systemd, then exits 0; without
 * systemd it stays the new version's parent and passes signals on) or rolls back and runs the
 * gateway again in this process. While it supervises a trial it keeps systemd's watchdog fed.
 */
async function runWithUpdates(args: string[], deps: CliDeps): Promise<number> {
  const { values } = parse("run", args, {
    config: { type: "string", short: "c" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
  });
  if (values.help || !values.config) return await run(args, deps);
  const config = loadGatewayConfig(values.config, deps);
  const uc = config.update as UpdateConfig | undefined;
  if (!uc) return await run(args, deps);
  const log = createLogger({
    level: config.log.level as "info",
    format: config.log.format as "text",
  }).child("update");
  // run() unsets these for its children; keep them for re-runs after a rollback and the handover.
  const sdEnv = new Map(
    SYSTEMD_ENV.flatMap((k) => Deno.env.get(k) !== undefined ? [[k, Deno.env.get(k)!]] : []),
  );
  const agent = new UpdateAgent({
    config: uc,
    configPath: values.config,
    gatewayId: config.gateway.id,
    healthUrl: config.http.healthListen
      ? `http://${config.http.healthListen}`
      : parseListenUrl(config.http.listen),
    version: VERSION,
    log,
  });
  const isTrialChild = Deno.env.get("OUTPOST_TRIAL_CHILD") === "1";
  Deno.env.delete("OUTPOST_TRIAL_CHILD");
  let boot: "run" | "self-trial" | "exit" = "run";
  if (!isTrialChild) boot = await agent.boot();
  // The version on trial shows its own trial, then the verdict, in /status.
  const following = new AbortController();
  if (isTrialChild) void agent.followTrial(following.signal);
  if (boot === "exit") return EXIT_FAILURE;
  const unprovide = provideStatus("update", () => agent.status());
  try {
    for (;;) {
      const lifetime = new AbortController();
      let trialWanted = false;
      let selfTrialFailed = false;
      const stopSelf = () => Deno.kill(Deno.pid, "SIGTERM");
      agent.schedule(lifetime.signal, () => {
        trialWanted = true;
        log.info("stopping this gateway to run the new version on trial");
        stopSelf();
      });
      const onUsr2 = () => {
        log.info("SIGUSR2: checking for an update now");
        void agent.checkAndStage(lifetime.signal).then((staged) => {
          if (staged && !lifetime.signal.aborted) {
            trialWanted = true;
            stopSelf();
          }
        });
      };
      Deno.addSignalListener("SIGUSR2", onUsr2);
      provideUpdateCommands({
        agent,
        config: uc,
        version: VERSION,
        signal: lifetime.signal,
        startTrial: () => {
          trialWanted = true;
          stopSelf();
        },
      });
      if (boot === "self-trial") {
        boot = "run";
        void agent.selfTrial(lifetime.signal, () => {
          selfTrialFailed = true;
          stopSelf();
        });
      }
      for (const [k, v] of sdEnv) Deno.env.set(k, v);
      const code = await run(args, deps);
      lifetime.abort();
      Deno.removeSignalListener("SIGUSR2", onUsr2);
      if (selfTrialFailed) return EXIT_FAILURE;
      if (!trialWanted) return code;
      if (sdEnv.has("NOTIFY_SOCKET")) {
        // Under systemd the trial begins with a restart: this process exits, systemd (guard
        // first) starts the version on trial, which judges itself. One gateway process at a
        // time, so the trial stays within the unit's MemoryMax=.
        const t = await agent.restartTrial();
        log.info("exiting so that systemd starts the version on trial", { version: t?.version });
        return EXIT_OK;
      }
      const stop = new AbortController();
      const onStop = () => stop.abort();
      Deno.addSignalListener("SIGTERM", onStop);
      Deno.addSignalListener("SIGINT", onStop);
      // Not WATCHDOG_PID: it names this process, and the new version has to feed the watchdog
      // itself once it is the main process.
      const childEnv: Record<string, string> = {
        ...Deno.env.toObject(),
        ...Object.fromEntries([...sdEnv].filter(([k]) => k !== "WATCHDOG_PID")),
      };
      const sdSocket = sdEnv.get("NOTIFY_SOCKET");
      const notifier = sdSocket ? new SystemdNotifier(sdSocket, log) : undefined;
      const trialWatchdog = new AbortController();
      const pingMs = watchdogIntervalMs({ get: (k) => sdEnv.get(k) });
      if (notifier) {
        const trialOf = agent.status().staged?.version ?? "another version";
        // At once: stopping the gateway took time since its last ping.
        await notifier.notify(
          `${pingMs ? "WATCHDOG=1\n" : ""}STATUS=supervising the trial of ${trialOf}`,
        );
        startWatchdog({
          notifier,
          intervalMs: pingMs ?? 10_000,
          ping: pingMs !== undefined,
          status: () => `supervising the trial of ${trialOf}`,
          log,
          signal: trialWatchdog.signal,
        });
      }
      // What the agent staged: a release, or the previous slot for a rollback command.
      const r = await agent.trial({ env: childEnv, signal: stop.signal });
      trialWatchdog.abort();
      Deno.removeSignalListener("SIGTERM", onStop);
      Deno.removeSignalListener("SIGINT", onStop);
      if (r.ok) {
        const child = r.child;
        const handed = notifier
          ? await notifier.notify(`${pingMs ? "WATCHDOG=1\n" : ""}MAINPID=${child.pid}`)
          : false;
        notifier?.close();
        log.info("handing over to the new version", { pid: child.pid, systemd: handed });
        if (handed) return EXIT_OK;
        // No systemd: become the new version (execve: same pid, same parent) once its trial
        // process is stopped, so that updates do not pile up a chain of supervisors.
        let canExec = true;
        try {
          checkExec();
        } catch (e) {
          canExec = false;
          log.warn("cannot exec the new version; staying its parent", {
            error: (e as Error).message,
          });
        }
        if (canExec) {
          const gone = { v: false };
          child.status.then(() => gone.v = true);
          await stopChild(child, () => gone.v);
          const path = `${agent.slots.root}/current/outpost`;
          log.info("no systemd: restarting as the new version in this process", { path });
          try {
            execInto(path, ["run", ...args], Deno.env.toObject());
          } catch (e) {
            log.error("exec of the new version failed; exiting for a restart", {
              path,
              error: (e as Error).message,
            });
            return EXIT_FAILURE;
          }
        }
        // Stay its parent so that it is not orphaned (a container would end with this process)
        // and pass signals on.
        const pass: [Deno.Signal, () => void][] = (
          ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR2"] as Deno.Signal[]
        ).map((sig) => [sig, () => {
          try {
            child.kill(sig);
          } catch { /* already gone */ }
        }]);
        for (const [sig, h] of pass) Deno.addSignalListener(sig, h);
        const st = await child.status;
        for (const [sig, h] of pass) Deno.removeSignalListener(sig, h);
        return st.signal ? EXIT_FAILURE : st.code;
      }
      notifier?.close();
      if (stop.signal.aborted) return EXIT_OK;
      log.warn("the previous version keeps running");
    }
  } finally {
    following.abort();
    unprovide();
  }
}

async function releaseCmd(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "keygen": {
      const { values } = parse("release", rest, { out: { type: "string" } });
      if (values.help) return help("release");
      if (!values.out) throw new UsageError(`keygen: missing --out DIR\n\n${HELP.release}`);
      const k = await keygen(values.out);
      console.log(`key id ${k.keyid}\nprivate key ${k.key} (mode 0600; keep it offline)`);
      console.log(`public key ${k.pub}:\n${(await Deno.readTextFile(k.pub)).trim()}`);
      return EXIT_OK;
    }
    case "publish": {
      const r = parseArgs({
        args: rest,
        options: {
          channel: { type: "string" },
          artifact: { type: "string" },
          version: { type: "string" },
          target: { type: "string" },
          key: { type: "string", multiple: true },
          expires: { type: "string" },
          rollout: { type: "string" },
          counter: { type: "string" },
          "channel-name": { type: "string" },
          hardware: { type: "string", multiple: true },
          "root-dir": { type: "string" },
          "timestamp-key": { type: "string", multiple: true },
          "timestamp-expires": { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
      });
      const v = r.values;
      if (v.help) return help("release");
      for (const k of ["channel", "artifact", "version", "target"] as const) {
        if (!v[k]) throw new UsageError(`publish: missing --${k}\n\n${HELP.release}`);
      }
      if (!v.key?.length && !v["root-dir"]) {
        throw new UsageError(`publish: missing --root-dir DIR or --key PRIV\n\n${HELP.release}`);
      }
      const rollout = v.rollout === undefined ? undefined : Number(v.rollout);
      if (rollout !== undefined && !(rollout >= 0 && rollout <= 100)) {
        throw new UsageError(`--rollout: expected a percentage 0–100, got "${v.rollout}"`);
      }
      const counter = v.counter === undefined ? undefined : Number(v.counter);
      if (
        counter !== undefined &&
        !(/^\d+$/.test(v.counter!) && Number.isSafeInteger(counter) && counter >= 0)
      ) {
        throw new UsageError(
          `--counter: expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got "${v.counter}"`,
        );
      }
      if (!parseVersion(v.version!)) {
        throw new UsageError(`--version: expected a semantic version, got "${v.version}"`);
      }
      if (!TARGET_RE.test(v.target!)) {
        throw new UsageError(
          `--target: expected a build target such as x86_64-unknown-linux-gnu, got "${v.target}"`,
        );
      }
      console.log(
        `artifact ok: ${await checkArtifact(v.artifact!, {
          version: v.version!,
          target: v.target!,
        })}`,
      );
      const m = await publish({
        channel: v.channel!,
        artifact: v.artifact!,
        version: v.version!,
        target: v.target!,
        keys: v.key ?? [],
        rootDir: v["root-dir"],
        timestampKeys: v["timestamp-key"],
        timestampExpiresInMs: v["timestamp-expires"]
          ? parseExpires(v["timestamp-expires"])
          : undefined,
        expiresInMs: v.expires ? parseExpires(v.expires) : undefined,
        rollout,
        counter,
        channelName: v["channel-name"],
        hardware: v.hardware,
      });
      console.log(
        `published ${m.signed.version} for ${v.target} on ${v.channel}: counter ${m.signed.counter}, expires ${m.signed.expires}, signed by ${
          m.signatures.map((s) => s.keyid).join(", ")
        }`,
      );
      return EXIT_OK;
    }
    case "init": {
      const r = parseArgs({
        args: rest,
        options: {
          out: { type: "string" },
          expires: { type: "string" },
          ...Object.fromEntries(
            ["root", "targets", "timestamp"].flatMap((role) => [
              [`${role}-keys`, { type: "string" as const }],
              [`${role}-threshold`, { type: "string" as const }],
            ]),
          ),
          help: { type: "boolean", short: "h" },
        },
        strict: true,
      });
      const v = r.values as Record<string, string | boolean | undefined>;
      if (v.help) return help("release");
      if (!v.out) throw new UsageError(`init: missing --out DIR\n\n${HELP.release}`);
      const int = (name: string, dflt: number) => {
        const text = v[name] as string | undefined;
        if (text === undefined) return dflt;
        if (!/^\d+$/.test(text)) {
          throw new UsageError(`--${name}: expected a whole number, got "${text}"`);
        }
        return Number(text);
      };
      const roles = Object.fromEntries(
        (["root", "targets", "timestamp"] as const).map((role) => [role, {
          keys: int(`${role}-keys`, 1),
          threshold: int(`${role}-threshold`, 1),
        }]),
      );
      const root = await initRelease(v.out as string, {
        roles,
        expiresInMs: v.expires ? parseExpires(v.expires as string) : undefined,
      });
      console.log(describeRoot(v.out as string, root.signed));
      return EXIT_OK;
    }
    case "rotate": {
      const r = parseArgs({
        args: rest,
        options: {
          dir: { type: "string" },
          role: { type: "string" },
          expires: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
      });
      if (r.values.help) return help("release");
      const role = r.values.role;
      if (!r.values.dir || (role !== "root" && role !== "targets" && role !== "timestamp")) {
        throw new UsageError(
          `rotate: needs --dir DIR and --role root|targets|timestamp\n\n${HELP.release}`,
        );
      }
      const root = await rotateRole(r.values.dir, role, {
        expiresInMs: r.values.expires ? parseExpires(r.values.expires) : undefined,
      });
      console.log(describeRoot(r.values.dir, root.signed));
      console.log(
        `publish again (release publish --root-dir ${r.values.dir}) to put root/${root.signed.version}.json on the channel`,
      );
      return EXIT_OK;
    }
    case "timestamp": {
      const r = parseArgs({
        args: rest,
        options: {
          channel: { type: "string" },
          "root-dir": { type: "string" },
          key: { type: "string", multiple: true },
          expires: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
      });
      if (r.values.help) return help("release");
      if (!r.values.channel || !r.values["root-dir"]) {
        throw new UsageError(
          `timestamp: needs --channel DIR and --root-dir DIR\n\n${HELP.release}`,
        );
      }
      const dir = r.values["root-dir"];
      const root = (await readRoot(dir)).signed;
      const keys = r.values.key?.length
        ? await Promise.all(r.values.key.map(readSigningKey))
        : await releaseRoleKeys(dir, root, "timestamp");
      const ts = await writeTimestamp(r.values.channel, root, keys, {
        expiresInMs: r.values.expires ? parseExpires(r.values.expires) : undefined,
      });
      console.log(
        `timestamp version ${ts.signed.version} for manifest counter ${ts.signed.manifest.counter}, expires ${ts.signed.expires}`,
      );
      return EXIT_OK;
    }
    case "verify": {
      const r = parseArgs({
        args: rest,
        options: {
          channel: { type: "string" },
          pubkey: { type: "string", multiple: true },
          root: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
      });
      if (r.values.help) return help("release");
      if (!r.values.channel || (!r.values.pubkey?.length && !r.values.root)) {
        throw new UsageError(
          `verify: needs --channel DIR and --root FILE (or --pubkey)\n\n${HELP.release}`,
        );
      }
      try {
        const lines = r.values.root
          ? await verifyChannelWithRoot(r.values.channel, r.values.root)
          : await verifyChannel(r.values.channel, await readPublicKeys(r.values.pubkey!));
        console.log(lines.join("\n"));
        return EXIT_OK;
      } catch (e) {
        if (e instanceof UpdateRefused) {
          printErr(`release verify: REFUSED (${e.code}): ${e.message}`);
          return EXIT_FAILURE;
        }
        throw e;
      }
    }
    default:
      throw new UsageError(
        `release: expected init, rotate, keygen, publish, timestamp or verify, got "${
          sub ?? ""
        }"\n\n${HELP.release}`,
      );
  }
}

async function updateCmd(args: string[], deps: CliDeps): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parse("update", rest, {
    config: { type: "string", short: "c" },
    "install-root": { type: "string" },
    artifact: { type: "string" },
    version: { type: "string" },
    reason: { type: "string" },
    root: { type: "string" },
  });
  if (values.help) return help("update");
  if (sub === "rollback" || sub === "pin" || sub === "unpin") {
    return await updateHold(sub, values, deps);
  }
  if (sub === "init") {
    if (!values["install-root"] || !values.artifact || !values.version) {
      throw new UsageError(
        `init: needs --install-root, --artifact and --version\n\n${HELP.update}`,
      );
    }
    if (!parseVersion(values.version)) {
      throw new UsageError(`--version: expected a semantic version, got "${values.version}"`);
    }
    await checkArtifact(values.artifact, {
      version: values.version,
      target: Deno.build.target,
    });
    const pinned = values.root ? await readRootFile(values.root) : undefined;
    const slots = new Slots(values["install-root"]);
    await slots.init(values.artifact, values.version);
    if (values.root) await Deno.copyFile(values.root, `${slots.root}/root.json`);
    if (pinned) console.log(`pinned root version ${pinned.version} (${values.root})`);
    console.log(`initialised ${values["install-root"]}: slot a = ${values.version}, committed`);
    return EXIT_OK;
  }
  if (sub !== "check" && sub !== "apply") {
    throw new UsageError(
      `update: expected check, apply, init, rollback, pin or unpin, got "${sub ?? ""}"`,
    );
  }
  if (!values.config) throw new UsageError(`${sub}: missing --config FILE\n\n${HELP.update}`);
  const config = loadGatewayConfig(values.config, deps);
  const uc = config.update as UpdateConfig | undefined;
  if (!uc) throw new UsageError(`${values.config}: has no update: section`);
  if (sub === "apply") {
    const client = localClient(config);
    const base = client.base;
    let pid: number;
    try {
      const res = await client.get("/status");
      if (!res.ok) throw new Error(`${base}/status answered ${res.status}: ${await res.text()}`);
      pid = (await res.json()).pid as number;
    } finally {
      client.close();
    }
    Deno.kill(pid, "SIGUSR2");
    console.log(`asked gateway pid ${pid} to check and apply now; watch ${base}/status (update)`);
    return EXIT_OK;
  }
  const log = createLogger({ level: "warn", format: "text" }).child("update");
  const updater = new Updater({ config: uc, gatewayId: config.gateway.id, log });
  try {
    // A look only: the replay counter is the running gateway's to advance.
    const r = await updater.check({ remember: false });
    if (r.kind === "none") {
      console.log(
        `${r.outcome.result}: ${r.outcome.version ?? ""}${
          r.outcome.reason ? ` (${r.outcome.reason})` : ""
        }`,
      );
    } else {
      console.log(
        `available: ${r.available.version} for ${r.available.target}, ${r.available.length} bytes from ${r.available.url}`,
      );
    }
    return EXIT_OK;
  } catch (e) {
    if (e instanceof UpdateRefused) {
      printErr(`update check: REFUSED (${e.code}): ${e.message}`);
      return EXIT_FAILURE;
    }
    throw e;
  }
}

/** `update rollback | pin | unpin`: the operator's hand on which version runs. */
async function updateHold(
  sub: "rollback" | "pin" | "unpin",
  values: Values,
  deps: CliDeps,
): Promise<number> {
  const config = values.config ? loadGatewayConfig(values.config, deps) : undefined;
  const root = values["install-root"] ??
    (config?.update as UpdateConfig | undefined)?.installRoot;
  if (!root || (sub === "rollback" && !config)) {
    throw new UsageError(
      `${sub}: needs --config FILE${
        sub === "rollback" ? "" : " or --install-root DIR"
      }\n\n${HELP.update}`,
    );
  }
  if (config && !config.update) throw new UsageError(`${values.config}: has no update: section`);
  const slots = new Slots(root);
  if (sub === "pin") {
    const p = await pinUpdates(slots, values.reason ?? "pinned with outpost update pin");
    console.log(`pinned at ${p.pinned!.version}: no release is installed until \`update unpin\``);
    return EXIT_OK;
  }
  if (sub === "unpin") {
    const allowed = await unpinUpdates(slots);
    console.log(
      `unpinned${
        allowed ? `; ${allowed} (rolled back before) may be installed again` : ""
      }: the next check installs what the channel offers`,
    );
    return EXIT_OK;
  }
  const health = config!.http.healthListen
    ? `http://${config!.http.healthListen}`
    : parseListenUrl(config!.http.listen);
  const running = await fetch(`${health}/healthz`, { signal: AbortSignal.timeout(2000) })
    .then(async (r) => (await r.body?.cancel(), true), () => false);
  if (running) {
    printErr(
      `update rollback: a gateway answers on ${health}; stop it first (systemctl stop outpost), ` +
        `or send it the \`rollback\` command`,
    );
    return EXIT_FAILURE;
  }
  const r = await rollbackByHand(slots, values.reason ?? "rolled back by hand (update rollback)");
  console.log(
    `rolled back from ${r.from} to ${r.to}; ${r.from} is not installed again until a newer release or \`update unpin\``,
  );
  return EXIT_OK;
}
