/**
 * `update-check`, `update-apply` and `rollback`, provided by the self-updater's supervisor
 * (`runWithUpdates`) through {@linkcode provideUpdateCommands}. Applying and rolling back stop the
 * gateway and run the other version on trial; the final reply then comes from whichever version
 * runs once the trial is decided ({@linkcode settleUpdate}).
 */
import type { Logger } from "../log.ts";
import type { UpdateAgent } from "../update/agent.ts";
import type { UpdateConfig } from "../update/config.ts";
import { UpdateRefused } from "../update/errors.ts";
import { otherSlot, recordOutcome, type Slot, Slots, writeFileAtomic } from "../update/slots.ts";
import { runTrial, type TrialResult } from "../update/trial.ts";
import {
  type CommandContext,
  type CommandEnv,
  CommandError,
  DEFERRED,
  provideCommand,
  type SettleResult,
} from "./commands.ts";
import type { PendingUpdate } from "./commands_state.ts";
import { ERROR_CODES } from "./protocol.ts";

/** Options of {@linkcode provideUpdateCommands}. */
export interface UpdateCommandsOptions {
  agent: UpdateAgent;
  config: UpdateConfig;
  configPath: string;
  /** Base URL of the gateway's local HTTP server (for the trial's health checks). */
  healthUrl: string;
  version: string;
  log: Logger;
  /** The handlers are removed when it aborts (the gateway run they serve is over). */
  signal: AbortSignal;
  /** Stops this gateway so that the supervisor runs the staged version on trial. */
  startTrial: () => void;
}

type Trial = (opts: { env: Record<string, string>; signal?: AbortSignal }) => Promise<TrialResult>;

let trialOverride: Trial | undefined;

/**
 * The trial a command asked for instead of the agent's staged version (a rollback), once: the
 * supervisor calls it in place of `agent.trial` after the gateway stopped.
 */
export function takeTrialOverride(): Trial | undefined {
  const t = trialOverride;
  trialOverride = undefined;
  return t;
}

/** Registers the update commands for as long as `opts.signal` is not aborted. */
export function provideUpdateCommands(opts: UpdateCommandsOptions): () => void {
  const offs = [
    provideCommand("update-check", (ctx) => updateCheck(ctx, opts)),
    provideCommand("update-apply", (ctx) => updateApply(ctx, opts), { exclusive: true }),
    provideCommand("rollback", (ctx) => rollback(ctx, opts), { exclusive: true }),
  ];
  const off = () => offs.forEach((f) => f());
  opts.signal.addEventListener("abort", off, { once: true });
  return off;
}

function noArgs(ctx: CommandContext, allowed: string[]): void {
  const unknown = Object.keys(ctx.args).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `unknown args ${unknown.join(", ")}${
        allowed.length ? `; expected ${allowed.join(", ")}` : "; this command takes none"
      }`,
    );
  }
}

async function check(ctx: CommandContext, o: UpdateCommandsOptions) {
  try {
    return await o.agent.updater.check({ signal: ctx.signal });
  } catch (e) {
    if (e instanceof UpdateRefused) {
      throw new CommandError(ERROR_CODES.failed, `refused (${e.code}): ${e.message}`, {
        result: { code: e.code },
      });
    }
    throw e;
  }
}

async function updateCheck(ctx: CommandContext, o: UpdateCommandsOptions): Promise<unknown> {
  noArgs(ctx, []);
  const r = await check(ctx, o);
  if (r.kind === "none") return { available: false, running: o.version, ...r.outcome };
  const a = r.available;
  return {
    available: true,
    running: o.version,
    version: a.version,
    target: a.target,
    length: a.length,
    url: a.url,
  };
}

async function updateApply(ctx: CommandContext, o: UpdateCommandsOptions): Promise<unknown> {
  noArgs(ctx, ["version"]);
  const want = ctx.args.version;
  if (want !== undefined && (typeof want !== "string" || !want)) {
    throw new CommandError(ERROR_CODES.badArgs, "args.version: expected a version such as 1.2.0");
  }
  await ctx.reply("accepted", { result: { running: o.version } });
  const r = await check(ctx, o);
  if (r.kind === "none") {
    if (want) {
      throw new CommandError(
        ERROR_CODES.failed,
        `the channel does not offer ${want} to this gateway (${r.outcome.result}${
          r.outcome.version ? ` ${r.outcome.version}` : ""
        }${r.outcome.reason ? `: ${r.outcome.reason}` : ""})`,
        { result: r.outcome },
      );
    }
    return { applied: false, running: o.version, ...r.outcome };
  }
  const a = r.available;
  if (want && a.version !== want) {
    throw new CommandError(
      ERROR_CODES.failed,
      `the channel offers ${a.version}, not ${want}; nothing changed`,
      { result: { available: a.version } },
    );
  }
  await ctx.reply("progress", {
    progress: { done: 0, total: a.length, note: `downloading ${a.version}` },
  });
  const staged = await o.agent.checkAndStage(ctx.signal);
  const st = o.agent.status();
  if (!staged || !st.staged) {
    const last = st.lastCheck;
    throw new CommandError(
      ERROR_CODES.failed,
      `${a.version} was not staged: ${last?.result ?? "unknown"}${
        last?.code ? ` (${last.code})` : ""
      }${last?.reason ? `: ${last.reason}` : ""}`,
      { result: last },
    );
  }
  await ctx.defer({
    kind: "update",
    expectVersion: st.staged.version,
    fromVersion: o.version,
    installRoot: o.agent.slots.root,
    until: Date.now() + o.config.healthDeadline + 120_000,
  });
  await ctx.reply("progress", {
    progress: {
      done: a.length,
      total: a.length,
      note: `staged ${st.staged.version} in slot ${st.staged.slot}; restarting into it on trial (${
        o.config.healthDeadline / 1000
      }s to become healthy)`,
    },
  });
  o.startTrial();
  return DEFERRED;
}

/** Asks a slot's executable for its version (`outpost version --json`). */
async function slotVersion(binary: string): Promise<string> {
  const out = await new Deno.Command(binary, {
    args: ["version", "--json"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `exited with status ${out.code}: ${
        new TextDecoder().decode(out.stderr).trim().slice(0, 300)
      }`,
    );
  }
  const v = JSON.parse(text).version;
  if (typeof v !== "string") throw new Error(`no version in ${JSON.stringify(text)}`);
  return v;
}

async function rollback(ctx: CommandContext, o: UpdateCommandsOptions): Promise<unknown> {
  noArgs(ctx, []);
  const slots = o.agent.slots;
  const state = await slots.readState().catch((e) => {
    throw new CommandError(ERROR_CODES.unavailable, (e as Error).message);
  });
  if (state.phase === "trial") {
    throw new CommandError(ERROR_CODES.busy, `a trial of ${state.trial?.version} is in progress`);
  }
  const slot = otherSlot(state.committed.slot);
  const binary = slots.binary(slot);
  try {
    await Deno.stat(binary);
  } catch {
    throw new CommandError(
      ERROR_CODES.unavailable,
      `no previous version to roll back to: slot ${slot} has no executable (${binary})`,
    );
  }
  let version: string;
  try {
    version = await slotVersion(binary);
  } catch (e) {
    throw new CommandError(
      ERROR_CODES.unavailable,
      `the previous version in slot ${slot} does not run: ${(e as Error).message}`,
    );
  }
  const from = state.committed.version;
  await ctx.reply("accepted", { result: { from, to: version, slot } });
  await ctx.defer({
    kind: "update",
    expectVersion: version,
    fromVersion: from,
    installRoot: slots.root,
    until: Date.now() + o.config.healthDeadline + 120_000,
  });
  trialOverride = (t) => rollbackTrial(o, { slot, version, from, requestId: ctx.id }, t);
  await ctx.reply("progress", {
    progress: {
      done: 0,
      note: `restarting into ${version} (slot ${slot}) on trial (${
        o.config.healthDeadline / 1000
      }s to become healthy)`,
    },
  });
  o.startTrial();
  return DEFERRED;
}

/**
 * Runs the previous slot on trial, as the agent runs a new release: state `trial` (with
 * trial.env, so the boot guard restores the current slot should the box lose power), `current`
 * switched, the child started and watched. Healthy: committed, and the version rolled back from
 * is recorded as `lastRollback` so the updater does not install it again. Otherwise `current`
 * points back and nothing else changes.
 */
async function rollbackTrial(
  o: UpdateCommandsOptions,
  target: { slot: Slot; version: string; from: string; requestId: string },
  t: { env: Record<string, string>; signal?: AbortSignal },
): Promise<TrialResult> {
  const slots = o.agent.slots;
  const state = await slots.readState();
  const previous = state.committed;
  state.phase = "trial";
  state.trial = { slot: target.slot, version: target.version, attempts: 1, startedAt: Date.now() };
  await Deno.remove(`${slots.root}/trial-boots`).catch(() => {});
  await writeFileAtomic(
    `${slots.root}/trial.env`,
    `PREVIOUS_SLOT=${previous.slot}\nTRIAL_SLOT=${target.slot}\nTRIAL_VERSION=${target.version}\n`,
  );
  await slots.writeState(state);
  await slots.switchTo(target.slot);
  o.log.warn("rolling back on request: starting the previous version on trial", {
    version: target.version,
    slot: target.slot,
    request: target.requestId,
  });
  const r = await runTrial({
    binary: slots.binary(target.slot),
    configPath: o.configPath,
    healthUrl: o.healthUrl,
    deadlineMs: o.config.healthDeadline,
    requireUplink: true,
    env: { ...t.env, OUTPOST_TRIAL_CHILD: "1" },
    log: o.log,
    signal: t.signal,
  });
  const now = await slots.readState();
  now.phase = "committed";
  delete now.trial;
  const at = Date.now();
  if (r.ok) {
    now.committed = { slot: target.slot, version: target.version };
    const reason = `rolled back to ${target.version} by remote command ${target.requestId}`;
    now.lastRollback = { at, version: target.from, reason };
    recordOutcome(now, { at, result: "rolled-back", version: target.from, reason });
    o.log.warn(`ROLLED BACK ${target.from} on request`, { running: target.version });
  } else {
    await slots.switchTo(previous.slot);
    recordOutcome(now, {
      at,
      result: "refused",
      code: "rollback-failed",
      version: target.version,
      reason: `rollback to ${target.version} failed: ${r.reason}`,
    });
    o.log.error(`rollback to ${target.version} failed; ${previous.version} keeps running`, {
      reason: r.reason,
    });
  }
  await slots.writeState(now);
  await Deno.remove(`${slots.root}/trial.env`).catch(() => {});
  await Deno.remove(`${slots.root}/trial-boots`).catch(() => {});
  return r;
}

/**
 * At start: an update or rollback whose trial was under way. The version that runs once the
 * trial is decided replies: `done` when it is the expected one and committed, an error when the
 * previous version is back. Any other process leaves it (undefined) until the deadline.
 */
export async function settleUpdate(
  op: PendingUpdate,
  env: CommandEnv,
  signal: AbortSignal,
): Promise<SettleResult> {
  const slots = new Slots(op.installRoot);
  for (;;) {
    const state = await slots.readState();
    if (state.phase === "committed" && state.committed.version === env.version) {
      if (env.version === op.expectVersion) {
        return {
          status: "done",
          result: { version: env.version, slot: state.committed.slot, from: op.fromVersion },
        };
      }
      const why = state.lastRollback?.version === op.expectVersion
        ? state.lastRollback.reason
        : state.lastCheck?.reason ?? `${env.version} is still running`;
      return {
        status: "error",
        code: op.cmd === "rollback" ? ERROR_CODES.failed : ERROR_CODES.rolledBack,
        message: `${op.expectVersion} did not take over: ${why}; ${env.version} runs`,
        result: { version: env.version, expected: op.expectVersion },
      };
    }
    if (Date.now() > op.until) {
      return {
        status: "error",
        code: ERROR_CODES.failed,
        message: `no verdict on ${op.expectVersion} by ${new Date(op.until).toISOString()}`,
        result: { phase: state.phase, committed: state.committed },
      };
    }
    if (state.phase === "committed") return undefined;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 500);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
    if (signal.aborted) {
      throw new CommandError(ERROR_CODES.interrupted, "the gateway stopped while waiting");
    }
  }
}
