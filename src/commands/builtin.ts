/**
 * The commands every gateway answers itself (ping, status, logs, restart, config-get, config-set,
 * query) and {@linkcode createCommandService}, which wires them into a {@linkcode CommandService}.
 */
import { jsonLogObject, type LogLevel } from "../log.ts";
import {
  type CommandContext,
  type CommandEnv,
  CommandError,
  CommandService,
  type CommandServiceOptions,
  DEFERRED,
  type SettleResult,
} from "./service.ts";
import { onlyArgs } from "./handler.ts";
import { configGet, configSet, settleConfigSet } from "./config_file.ts";
import { runQuery } from "./query.ts";
import { alarmCommands } from "./alarms.ts";
import { type DeviceRollouts, devicesResume } from "./devices.ts";
import type { PendingConfigSet, PendingRestart, PendingUpdate } from "./state.ts";
import { settleUpdate } from "./update.ts";
import type { AdapterModule } from "../adapter.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { ConfigError, formatProblem, parseConfig } from "../config/load.ts";
import { ERROR_CODES } from "../protocol/mod.ts";

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

function bytesOf(v: unknown): number {
  return new TextEncoder().encode(JSON.stringify(v)).length;
}

function ping(ctx: CommandContext, env: CommandEnv): Promise<unknown> {
  onlyArgs(ctx, []);
  const s = ctx.gateway.status();
  return Promise.resolve({
    pong: true,
    version: env.version,
    pid: s.pid,
    startedAt: s.startedAt,
    uptimeMs: s.uptimeMs,
    // What this gateway grants the key that signed the request (null: unsigned).
    operator: ctx.operator ?? null,
  });
}

function status(ctx: CommandContext, env: CommandEnv): Promise<unknown> {
  onlyArgs(ctx, []);
  const s = ctx.gateway.status() as unknown as Record<string, unknown>;
  // Thousands of devices' last values can outgrow a message: keep the rest, say so.
  if (bytesOf(s) > env.maxReplyBytes() - 2048) {
    const devices = Object.keys((s.devices ?? {}) as object).length;
    return Promise.resolve({ ...s, devices: undefined, devicesOmitted: devices });
  }
  return Promise.resolve(s);
}

function logs(ctx: CommandContext, env: CommandEnv): Promise<unknown> {
  onlyArgs(ctx, ["lines", "level", "audit"]);
  const { lines = 100, level, audit } = ctx.args as {
    lines?: unknown;
    level?: unknown;
    audit?: unknown;
  };
  if (audit !== undefined && typeof audit !== "boolean") {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `args.audit: expected true or false, got ${JSON.stringify(audit)}`,
    );
  }
  if (typeof lines !== "number" || !Number.isInteger(lines) || lines < 1 || lines > 500) {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `args.lines: expected an integer 1–500, got ${JSON.stringify(lines)}`,
    );
  }
  if (level !== undefined && !LEVELS.includes(level as LogLevel)) {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `args.level: expected one of ${LEVELS.join(", ")}, got ${JSON.stringify(level)}`,
    );
  }
  if (audit) {
    if (level !== undefined) {
      throw new CommandError(ERROR_CODES.badArgs, "args.level: not with audit: true");
    }
    let entries = env.audit(lines);
    let truncated = false;
    while (entries.length > 1 && bytesOf(entries) > env.maxReplyBytes() - 2048) {
      entries = entries.slice(Math.ceil(entries.length / 10));
      truncated = true;
    }
    return Promise.resolve({ audit: entries, truncated });
  }
  const min = level === undefined ? 0 : LEVELS.indexOf(level as LogLevel);
  // The shape of stdout's JSON lines and of /logs: ISO ts, fields flat beside msg.
  let out = env.logger().recent().filter((r) => LEVELS.indexOf(r.level) >= min).slice(-lines)
    .map(jsonLogObject);
  const budget = env.maxReplyBytes() - 2048;
  let truncated = false;
  // Oldest lines go first when the answer would not fit in one message.
  while (out.length > 1 && bytesOf(out) > budget) {
    out = out.slice(Math.ceil(out.length / 10));
    truncated = true;
  }
  return Promise.resolve({ lines: out, truncated });
}

async function restart(ctx: CommandContext, env: CommandEnv): Promise<unknown> {
  onlyArgs(ctx, []);
  let text: string;
  try {
    text = await Deno.readTextFile(env.configPath);
  } catch (e) {
    throw new CommandError(ERROR_CODES.failed, `cannot read the config: ${(e as Error).message}`);
  }
  let next;
  try {
    next = env.parse(text);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new CommandError(
      ERROR_CODES.invalidConfig,
      `the config file does not validate, so the gateway keeps running: ${
        e.problems.map(formatProblem).join("; ")
      }`,
      { result: { problems: e.problems } },
    );
  }
  const s = ctx.gateway.status();
  await ctx.defer({ kind: "restart", previousStartedAt: s.startedAt, previousPid: s.pid });
  await ctx.reply("accepted", { result: { startedAt: s.startedAt, pid: s.pid } });
  env.restart(next);
  return DEFERRED;
}

/** The restart is over once a gateway started after the request is attached. */
function settleRestart(op: PendingRestart, env: CommandEnv): Promise<SettleResult> {
  const gw = env.gateway();
  if (!gw) return Promise.resolve(undefined);
  const s = gw.status();
  if (s.startedAt === op.previousStartedAt && s.pid === op.previousPid) {
    return Promise.resolve(undefined);
  }
  return Promise.resolve({
    status: "done",
    result: {
      startedAt: s.startedAt,
      pid: s.pid,
      version: env.version,
      previousStartedAt: op.previousStartedAt,
      previousPid: op.previousPid,
      restartMs: s.startedAt - op.at,
    },
  });
}

/** Options of {@linkcode createCommandService}. */
export interface CreateCommandServiceOptions extends Omit<CommandServiceOptions, "parse"> {
  /** The adapters the binary embeds: config-set and restart validate with the same schema. */
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
  /** The gateway's device service, for devices-resume; undefined without `devices:`. */
  devices?: () => DeviceRollouts | undefined;
}

/** A command service with the built-in commands; attach it to each gateway `run` starts. */
export function createCommandService(opts: CreateCommandServiceOptions): CommandService {
  const { adapters, devices, ...rest } = opts;
  const parse = (text: string) =>
    parseConfig(text, gatewaySchema(adapters), { displayName: opts.configPath });
  return new CommandService({ ...rest, parse }, {
    handlers: {
      ping: { handler: ping },
      status: { handler: status },
      logs: { handler: logs },
      ...alarmCommands,
      "devices-resume": { handler: (ctx) => devicesResume(ctx, devices?.()) },
      restart: { handler: restart, exclusive: true },
      "config-get": {
        handler: (ctx, env) => {
          onlyArgs(ctx, []);
          return configGet(env);
        },
      },
      "config-set": { handler: configSet, exclusive: true },
      query: {
        handler: (ctx, env) =>
          runQuery(ctx, ctx.gateway.buffer, env.commands().query, env.maxReplyBytes()),
      },
    },
    settlers: {
      restart: { settle: (op, env) => settleRestart(op as PendingRestart, env), exclusive: false },
      "config-set": {
        settle: (op, env, signal) => settleConfigSet(op as PendingConfigSet, env, signal),
        exclusive: true,
      },
      update: {
        settle: (op, env, signal) => settleUpdate(op as PendingUpdate, env, signal),
        exclusive: true,
      },
    },
  });
}
