/**
 * `config-get` and `config-set`. A new config is validated with the loader `run` uses, written
 * atomically with the previous one kept as `<config>.prev`, applied the way SIGHUP applies one,
 * and watched: not healthy (every check passing and the uplink connected) within the deadline, and
 * the previous file is put back and applied again. The watch is recorded on disk, so a gateway
 * stopped meanwhile finishes it when it starts.
 */
import type { GatewayConfig } from "../config/gateway.ts";
import { ConfigError } from "../config/load.ts";
import { parseDuration } from "../config/schema.ts";
import { restartOnly } from "../config/restart.ts";
import { redactConfigText } from "../redact.ts";
import { writeFileAtomic } from "../update/mod.ts";
import {
  type CommandContext,
  type CommandEnv,
  CommandError,
  type SettleResult,
} from "./service.ts";
import { commandsOf } from "./config.ts";
import { protectedChanges } from "./trust.ts";
import type { PendingConfigSet } from "./state.ts";
import { type ConfigGetResult, ERROR_CODES, sha256Hex } from "../protocol/mod.ts";

/** The file behind the config path (a symlink is written through) and its `.prev`. */
async function configFiles(configPath: string): Promise<{ real: string; prev: string }> {
  const real = await Deno.realPath(configPath);
  return { real, prev: `${real}.prev` };
}

/** `config-get`: the config file's text and SHA-256, and that of `<config>.prev`. */
export async function configGet(env: CommandEnv): Promise<ConfigGetResult> {
  const { real, prev } = await configFiles(env.configPath);
  const yaml = await Deno.readTextFile(real);
  const prevText = await Deno.readTextFile(prev).catch(() => null);
  const bytes = new TextEncoder().encode(yaml).length;
  if (bytes > env.maxReplyBytes() - 2048) {
    throw new CommandError(
      ERROR_CODES.failed,
      `the config is ${bytes} bytes, too large for one reply (${env.maxReplyBytes()} bytes)`,
    );
  }
  return {
    path: env.configPath,
    yaml: redactConfigText(yaml),
    sha256: await sha256Hex(yaml),
    prevSha256: prevText === null ? null : await sha256Hex(prevText),
  };
}

function badArgs(message: string): CommandError {
  return new CommandError(ERROR_CODES.badArgs, message);
}

/** Validates config text; a ConfigError becomes `invalid-config` with each problem's line:col. */
function validate(env: CommandEnv, yaml: string): GatewayConfig {
  try {
    return env.parse(yaml);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const problems = e.problems.map(({ line, col, path, message }) => ({
      line,
      col,
      path,
      message,
    }));
    const first = problems[0];
    throw new CommandError(
      ERROR_CODES.invalidConfig,
      `config not valid (${problems.length} problem(s)); nothing changed: ${
        problems.map((p) => `${p.line}:${p.col} ${p.path ? p.path + ": " : ""}${p.message}`)
          .join("; ")
      }`,
      { result: { problems, line: first?.line, col: first?.col } },
    );
  }
}

/** `config-set`: validate, write atomically keeping `.prev`, apply, watch, revert if unhealthy. */
export async function configSet(ctx: CommandContext, env: CommandEnv): Promise<unknown> {
  const a = ctx.args;
  const known = ["yaml", "expectSha256", "deadline"];
  const unknown = Object.keys(a).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw badArgs(`unknown args ${unknown.join(", ")}; expected ${known.join(", ")}`);
  }
  if (typeof a.yaml !== "string" || !a.yaml.trim()) {
    throw badArgs("args.yaml: expected the whole config file as a string");
  }
  if (
    a.expectSha256 !== undefined &&
    (typeof a.expectSha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(a.expectSha256))
  ) {
    throw badArgs("args.expectSha256: expected the SHA-256 (64 hex digits) config-get returned");
  }
  let deadlineMs = env.commands().configDeadline;
  if (a.deadline !== undefined) {
    const d = typeof a.deadline === "number"
      ? a.deadline
      : typeof a.deadline === "string"
      ? parseDuration(a.deadline)
      : undefined;
    if (d === undefined || !Number.isFinite(d) || d < 1000 || d > 3_600_000) {
      throw badArgs(
        `args.deadline: expected 1s–1h as ms or a duration such as "90s", got ${
          JSON.stringify(a.deadline)
        }`,
      );
    }
    deadlineMs = d;
  }
  const yaml = a.yaml;
  const files = await configFiles(env.configPath);
  const current = await Deno.readTextFile(files.real);
  const currentSha = await sha256Hex(current);
  if (a.expectSha256 !== undefined && a.expectSha256.toLowerCase() !== currentSha) {
    throw new CommandError(
      ERROR_CODES.conflict,
      `the config on the gateway changed (sha256 ${currentSha}, expected ${a.expectSha256}); nothing changed`,
      { result: { sha256: currentSha } },
    );
  }
  const changes = protectedChanges(current, yaml);
  if (changes.length) {
    throw new CommandError(
      ERROR_CODES.protectedConfig,
      `config-set may not change ${
        changes.map((c) => `${c.path} (${c.why})`).join("; ")
      }. Trust anchors change only in the file on the device; nothing changed`,
      { result: { paths: changes.map((c) => c.path) } },
    );
  }
  const next = validate(env, yaml);
  const was = env.config();
  if (next.gateway.id !== was.gateway.id) {
    throw new CommandError(
      ERROR_CODES.invalidConfig,
      `gateway.id cannot be changed remotely ("${was.gateway.id}" to "${next.gateway.id}"); nothing changed`,
    );
  }
  if (!commandsOf(next)) {
    throw new CommandError(
      ERROR_CODES.invalidConfig,
      "this config turns remote commands off (commands.enabled: false or no mqtt uplink), so it could not be reverted remotely; apply it on the device. Nothing changed",
    );
  }
  const sha256 = await sha256Hex(yaml);
  if (sha256 === currentSha) {
    return { changed: false, sha256, note: "the gateway already runs this config" };
  }
  await ctx.reply("accepted", { result: { stage: "validated", sha256 } });
  const op: Omit<PendingConfigSet, "id" | "cmd" | "prefix" | "at"> = {
    kind: "config-set",
    deadlineMs,
    sha256,
    prevSha256: currentSha,
  };
  // Recorded before the file changes: a gateway stopped from here on finishes the watch at start.
  await ctx.defer(op);
  try {
    return await writeApplyWatch(ctx, env, { ...op, id: ctx.id }, files, {
      was,
      next,
      current,
      yaml,
    });
  } catch (e) {
    // Interrupted (the gateway is stopping): the next start finishes it. Otherwise it is over.
    if (!ctx.signal.aborted) await env.state.removePending(ctx.id);
    throw e;
  }
}

async function writeApplyWatch(
  ctx: CommandContext,
  env: CommandEnv,
  op: Pick<PendingConfigSet, "id" | "deadlineMs" | "sha256" | "prevSha256">,
  files: { real: string; prev: string },
  c: { was: GatewayConfig; next: GatewayConfig; current: string; yaml: string },
): Promise<unknown> {
  const { was, next, current, yaml } = c;
  const { sha256, deadlineMs } = op;
  const mode = (await Deno.stat(files.real)).mode! & 0o777;
  await writeFileAtomic(files.prev, current, mode);
  await writeFileAtomic(files.real, yaml, mode);
  ctx.log.info("config written; previous kept", { file: files.real, prev: files.prev, sha256 });
  await ctx.reply("progress", {
    progress: { done: 1, total: 3, note: `written; the previous config is ${files.prev}` },
  });
  try {
    await env.apply(next);
  } catch (e) {
    const reason = `applying it failed: ${(e as Error).message}`;
    await revert(env, files, reason, ctx.log);
    throw new CommandError(ERROR_CODES.reverted, `${reason}; the previous config is back`, {
      result: { sha256: op.prevSha256, reason },
    });
  }
  // Not awaited: with a config that cannot reach the broker it would wait past the deadline.
  void ctx.reply("progress", {
    progress: {
      done: 2,
      total: 3,
      note: `applied; waiting up to ${deadlineMs / 1000}s for the gateway to be healthy`,
    },
  });
  const r = await watch(env, op, ctx.signal, ctx.log, {
    needsRestart: restartOnly(was, next),
  });
  if (r?.status === "error") {
    throw new CommandError(r.code, r.message, { result: r.result });
  }
  return r?.result;
}

/**
 * Waits for the gateway to be healthy with the config now on disk: every /healthz check passing,
 * the uplink connected, and both holding for a settling time. Unhealthy at the deadline: revert.
 */
async function watch(
  env: CommandEnv,
  op: Pick<PendingConfigSet, "id" | "deadlineMs" | "sha256" | "prevSha256">,
  signal: AbortSignal,
  log: CommandContext["log"],
  extra: Record<string, unknown> = {},
): Promise<SettleResult> {
  const started = Date.now();
  const settleMs = Math.min(5000, op.deadlineMs / 3);
  let okSince: number | undefined;
  let last = "no health check yet";
  for (;;) {
    if (signal.aborted) {
      throw new CommandError(ERROR_CODES.interrupted, "the gateway stopped during the watch");
    }
    const gw = env.gateway();
    const h = gw?.health();
    const now = Date.now();
    if (h?.ok && gw?.uplink?.connected) {
      okSince ??= now;
      if (now - okSince >= settleMs) break;
    } else {
      okSince = undefined;
      last = !h
        ? "gateway not running"
        : h.ok
        ? "uplink not connected"
        : Object.entries(h.checks).filter(([, c]) => !c.ok).map(([k, c]) => `${k}: ${c.detail}`)
          .join("; ");
    }
    if (now - started >= op.deadlineMs) {
      const reason = `not healthy within ${op.deadlineMs / 1000}s (${last})`;
      const files = await configFiles(env.configPath);
      await revert(env, files, reason, log);
      await env.state.removePending(op.id);
      return {
        status: "error",
        code: ERROR_CODES.reverted,
        message: `${reason}; the previous config is back`,
        result: { sha256: op.prevSha256, reason },
      };
    }
    await delay(250, signal);
  }
  await env.state.removePending(op.id);
  log.info("new config healthy: kept", { sha256: op.sha256 });
  return {
    status: "done",
    result: {
      changed: true,
      sha256: op.sha256,
      prevSha256: op.prevSha256,
      healthyAfterMs: Date.now() - started,
      ...extra,
    },
  };
}

/** Puts `.prev` back in place and applies it. */
async function revert(
  env: CommandEnv,
  files: { real: string; prev: string },
  reason: string,
  log: CommandContext["log"],
): Promise<void> {
  log.error("REVERTING CONFIG: the new config is not healthy", { reason });
  const prev = await Deno.readTextFile(files.prev);
  const mode = (await Deno.stat(files.real)).mode! & 0o777;
  await writeFileAtomic(files.real, prev, mode);
  let config: GatewayConfig;
  try {
    config = env.parse(prev);
  } catch (e) {
    throw new CommandError(
      ERROR_CODES.failed,
      `restored ${files.prev} but it does not validate any more: ${(e as Error).message}`,
    );
  }
  await env.apply(config);
  log.warn("previous config restored and applied", { file: files.real });
}

/**
 * At start: a config-set whose verdict was not in when the gateway stopped. Its config still on
 * disk is watched again for the full deadline; otherwise there is nothing left to decide.
 */
export async function settleConfigSet(
  op: PendingConfigSet,
  env: CommandEnv,
  signal: AbortSignal,
): Promise<SettleResult> {
  const files = await configFiles(env.configPath);
  const sha = await sha256Hex(await Deno.readTextFile(files.real));
  const log = env.logger().child("commands");
  if (sha !== op.sha256) {
    await env.state.removePending(op.id);
    return {
      status: "error",
      code: ERROR_CODES.interrupted,
      message: "the gateway stopped before the new config was judged, and it is not in place",
      result: { sha256: sha },
    };
  }
  log.warn("a config-set was not judged before the gateway stopped; watching it again", {
    id: op.id,
    deadlineMs: op.deadlineMs,
  });
  return await watch(env, op, signal, log, { resumed: true });
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
