import { sleep } from "../common/timing.ts";
import type { Logger } from "../log.ts";
import { testHold } from "./_test_hooks.ts";

/** Options of {@linkcode runTrial}. */
export interface TrialOptions {
  /** The new slot's executable. */
  binary: string;
  configPath: string;
  /** Base URL of the new process's local HTTP server (same `http.listen` as the old one). */
  healthUrl: string;
  deadlineMs: number;
  /** Demand a connected uplink (the old version had one when the trial began). */
  requireUplink: boolean;
  env?: Record<string, string>;
  log: Logger;
  signal?: AbortSignal;
}

/** How a trial ended: healthy with its child still running, or failed with a reason. */
export type TrialResult = { ok: true; child: Deno.ChildProcess } | { ok: false; reason: string };

interface HealthBody {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

/**
 * Healthy for a trial: buffer and adapters checks pass, and — when required — the uplink is
 * connected (not merely in its start-up grace). Returns why not, or undefined when healthy.
 */
export function trialUnhealthy(h: HealthBody, requireUplink: boolean): string | undefined {
  const failing = Object.entries(h.checks).filter(([, c]) => !c.ok);
  if (failing.length) return failing.map(([k, c]) => `${k}: ${c.detail}`).join("; ");
  if (!h.checks.buffer) return "no buffer check in /healthz";
  if (requireUplink && h.checks.uplink && !/^connected/.test(h.checks.uplink.detail)) {
    return `uplink: ${h.checks.uplink.detail}`;
  }
  return undefined;
}

/**
 * Starts `binary run --config …` as a child and polls its /healthz until it is healthy or the
 * deadline passes. A failed child is stopped (SIGTERM, then SIGKILL after 3 s).
 */
export async function runTrial(opts: TrialOptions): Promise<TrialResult> {
  const child = new Deno.Command(opts.binary, {
    args: ["run", "--config", opts.configPath],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
    env: opts.env,
  }).spawn();
  opts.log.info("trial started", { binary: opts.binary, pid: child.pid });
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => exited = s);
  await testHold("trial");
  const started = Date.now();
  const deadline = started + opts.deadlineMs;
  let last: string | undefined;
  let answered = false;
  let reason: string;
  for (;;) {
    if (opts.signal?.aborted) {
      reason = "trial aborted (supervisor stopping)";
      break;
    }
    if (exited) {
      const ms = Date.now() - started;
      reason = `new version exited with ${
        exited.signal ? `signal ${exited.signal}` : `status ${exited.code}`
      } after ${ms}ms, before it was healthy`;
      break;
    }
    try {
      const res = await fetch(`${opts.healthUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      answered = true;
      const body = await res.json() as HealthBody;
      last = trialUnhealthy(body, opts.requireUplink);
      if (!last && res.ok) {
        opts.log.info("trial healthy", { pid: child.pid, afterMs: Date.now() - started });
        return { ok: true, child };
      }
    } catch (e) {
      if (answered) last = `/healthz failed: ${(e as Error).message}`;
    }
    if (Date.now() > deadline) {
      reason = answered
        ? `not healthy within ${opts.deadlineMs}ms: ${last ?? "no detail"}`
        : `no answer from /healthz within ${opts.deadlineMs}ms (hung or never served)`;
      break;
    }
    await sleep(250, opts.signal);
  }
  await stopChild(child, () => exited !== undefined);
  return { ok: false, reason };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(
  child: Deno.ChildProcess,
  gone: () => boolean,
  graceMs = 3000,
): Promise<void> {
  if (!gone()) {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }
  const t = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, graceMs);
  await child.status;
  clearTimeout(t);
}
