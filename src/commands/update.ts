/**
 * `update-check`, `update-apply` and `rollback`, handed by the self-updater's supervisor
 * (`runWithUpdates` in `src/app.ts`) to the command service it builds, from
 * {@linkcode updateCommands}. Applying and rolling back stage
 * the other version with the {@linkcode UpdateAgent} and stop the gateway, so that the supervisor
 * runs it on trial; the final reply then comes from whichever version runs once the trial is
 * decided ({@linkcode settleUpdate}).
 */
import {
  RollbackRefused,
  type RollbackTarget,
  Slots,
  type UpdateAgent,
  type UpdateConfig,
  UpdateRefused,
} from "../update/mod.ts";
import {
  type CommandContext,
  type CommandEnv,
  CommandError,
  DEFERRED,
  type ExtraHandlers,
  type SettleResult,
} from "./service.ts";
import { onlyArgs } from "./handler.ts";
import type { PendingUpdate } from "./state.ts";
import { ERROR_CODES } from "../protocol/mod.ts";

/** Options of {@linkcode updateCommands}. */
export interface UpdateCommandsOptions {
  agent: UpdateAgent;
  config: UpdateConfig;
  version: string;
  /** Stops this gateway so that the supervisor runs what the agent staged on trial. */
  startTrial: () => void;
}

/** The handlers of the update commands, for the command service of one gateway run. */
export function updateCommands(opts: UpdateCommandsOptions): ExtraHandlers {
  return {
    "update-check": { handler: (ctx) => updateCheck(ctx, opts) },
    "update-apply": { handler: (ctx) => updateApply(ctx, opts), exclusive: true },
    // A release being downloaded never keeps the operator from going back.
    rollback: {
      handler: (ctx) => rollback(ctx, opts),
      exclusive: true,
      preempts: ["update-apply"],
    },
  };
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
  onlyArgs(ctx, []);
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
  onlyArgs(ctx, ["version"]);
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
  const reporting = reportDownload(ctx, o.agent);
  let staged: boolean;
  try {
    staged = await o.agent.checkAndStage(ctx.signal);
  } finally {
    reporting.stop();
  }
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

/** How often a running download is reported to the operator, ms. */
export const DOWNLOAD_REPORT_MS = 1000;

/**
 * Sends the download's bytes so far as `progress` replies, at most once per
 * {@linkcode DOWNLOAD_REPORT_MS} and only when they moved, one reply in flight at a time.
 */
function reportDownload(ctx: CommandContext, agent: UpdateAgent): { stop(): void } {
  let last = 0;
  let sending = false;
  const timer = setInterval(() => {
    const p = agent.status().progress;
    if (sending || p?.step !== "downloading" || !p.total || p.done === undefined) return;
    if (p.done === last || p.done >= p.total) return;
    last = p.done;
    sending = true;
    const pct = Math.floor(p.done * 100 / p.total);
    ctx.reply("progress", {
      progress: { done: p.done, total: p.total, note: `downloading ${p.version}: ${pct}%` },
    }).catch(() => {}).finally(() => sending = false);
  }, DOWNLOAD_REPORT_MS);
  return { stop: () => clearInterval(timer) };
}

async function rollback(ctx: CommandContext, o: UpdateCommandsOptions): Promise<unknown> {
  onlyArgs(ctx, []);
  let target: RollbackTarget;
  try {
    target = await o.agent.stageRollback({
      requestedBy: `remote command ${ctx.id}`,
      signal: ctx.signal,
    });
  } catch (e) {
    if (e instanceof RollbackRefused) {
      throw new CommandError(
        e.code === "busy" ? ERROR_CODES.busy : ERROR_CODES.unavailable,
        e.message,
      );
    }
    throw e;
  }
  const { slot, version, from } = target;
  try {
    await ctx.reply("accepted", { result: { from, to: version, slot } });
    await ctx.reply("progress", {
      progress: {
        done: 0,
        note: `restarting into ${version} (slot ${slot}) on trial (${
          o.config.healthDeadline / 1000
        }s to become healthy)`,
      },
    });
    // Last: once recorded, the final reply is owed by whichever version runs after the trial.
    await ctx.defer({
      kind: "update",
      expectVersion: version,
      fromVersion: from,
      installRoot: o.agent.slots.root,
      until: Date.now() + o.config.healthDeadline + 120_000,
    });
  } catch (e) {
    // Without the replies and the pending record nobody would hear how it ended: no rollback.
    o.agent.unstage();
    throw e;
  }
  o.startTrial();
  return DEFERRED;
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
