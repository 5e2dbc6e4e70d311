/**
 * The command line of `outpost fleet`: its entry in the command table (options, help) and the
 * parse into a {@linkcode FleetInvocation}, checked before anything connects.
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
import { isLoopbackListen } from "../config/gateway.ts";
import { parseDuration } from "../config/schema.ts";
import { COMMAND_NAMES } from "../protocol/mod.ts";
import type { ConnectionFlags } from "./config.ts";
import { insecureListenMessage } from "./serve.ts";

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
  serve     the fleet page: live gateway list (health, alarms, site, link to each page),
            status/logs/config/query with whole results, restart/update buttons (disabled
            for offline gateways), CSV export. Protected by a token (printed at start, or kept in --token-file); a non-loopback --listen needs
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
      "statusTopic, key, clientId, pages {url, sites, gateways} (links on the fleet page)",
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

/** Bad `outpost fleet` usage: printed with a pointer to the help, exit status 2. */
export const FleetUsageError = UsageError;

/** A subcommand of `outpost fleet`. */
export type Sub = "list" | "send" | "restart" | "update" | "export" | "serve";
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
