import { sleep } from "../common/timing.ts";
import type { Logger } from "../log.ts";
import type { UpdateConfig } from "./config.ts";
import { RollbackRefused, UpdateRefused } from "./errors.ts";
import {
  otherSlot,
  recordOutcome,
  type Slot,
  type Slots,
  type UpdateOutcome,
  type UpdateState,
  writeFileAtomic,
} from "./slots.ts";
import { runTrial, type TrialResult, trialUnhealthy } from "./trial.ts";
import { type Pin, readPin } from "./pin.ts";
import { reportedVersion } from "./probe.ts";
import { type DownloadProgress, Updater } from "./updater.ts";
import { initTestHooks, testHold } from "./_test_hooks.ts";

/** Options of {@linkcode UpdateAgent}. */
export interface UpdateAgentOptions {
  config: UpdateConfig;
  configPath: string;
  gatewayId: string;
  /** Base URL of this gateway's local HTTP server, e.g. http://127.0.0.1:8787. */
  healthUrl: string;
  version: string;
  log: Logger;
}

/** What /status shows under `update`. */
export interface UpdateStatus {
  version: string;
  /** The manifest target this device installs. */
  target: string;
  installRoot: string;
  channel: string;
  phase?: UpdateState["phase"];
  committed?: UpdateState["committed"];
  trial?: UpdateState["trial"];
  lastCounter?: number;
  lastCheck?: UpdateOutcome;
  lastRollback?: UpdateState["lastRollback"];
  /** When the newest verified timestamp expires (ms); absent without a pinned root. */
  metadataExpires?: number;
  /** Set once that time has passed: "release metadata stale since …". */
  metadataStale?: string;
  /** Set while the operator holds updates (`outpost update pin`). */
  pinned?: Pin["pinned"];
  /** The latest outcomes, newest first (installed, rolled back, interrupted…). */
  history?: UpdateOutcome[];
  staged?: { slot: Slot; version: string };
  /** What the updater is doing, in words: "checking the channel", "downloading 2.0.0: 45% (…)",
   * "staged 2.0.0 …", "trial of 2.0.0: 12s of 60s", "committed 2.0.0", "rolled back 2.0.0
   * because …", "refused …". */
  activity?: string;
  /** A check under way: fetching metadata, or downloading (bytes so far of the total). */
  progress?: { step: "checking" | "downloading" } & Partial<DownloadProgress>;
  error?: string;
}

/** What {@linkcode UpdateAgent.stageRollback} staged: the previous slot, its version, and the
 * committed version it replaces. */
export interface RollbackTarget {
  slot: Slot;
  version: string;
  from: string;
}

/** The next trial: a verified release in the inactive slot, or the previous version. */
interface Staged {
  slot: Slot;
  version: string;
  /** Healthy includes a connected uplink: it was connected when the trial was staged. */
  requireUplink: boolean;
  /** A rollback on request: why, for `lastRollback`. */
  rollback?: { reason: string };
}

/**
 * The device side of self-update in a running gateway: checks on a schedule, stages verified
 * artifacts (or, on request, the previous version), supervises the trial of the staged version and
 * commits or rolls back. Also finishes a trial that a restart interrupted (boot counting through
 * `trial-boots`, see outpost-guard.sh).
 */
export class UpdateAgent {
  readonly updater: Updater;
  readonly slots: Slots;
  readonly #o: UpdateAgentOptions;
  readonly #log: Logger;
  #state: UpdateState | undefined;
  #last: UpdateOutcome | undefined;
  #staged: Staged | undefined;
  /** The check under way: later requests join it; a rollback on request stops it. */
  #inflight: { done: Promise<boolean>; stop: AbortController } | undefined;
  #progress: UpdateStatus["progress"];
  #pin: Pin | undefined;
  /** A rollback on request is being staged. */
  #rollingBack = false;

  constructor(opts: UpdateAgentOptions) {
    this.#o = opts;
    this.#log = opts.log;
    this.updater = new Updater({ config: opts.config, gatewayId: opts.gatewayId, log: opts.log });
    this.slots = this.updater.slots;
    initTestHooks();
  }

  /**
   * For the version on trial (started by the supervisor): reads state.json now and every second
   * while it says `trial`, so that /status shows the trial and then its verdict.
   */
  async followTrial(signal: AbortSignal): Promise<void> {
    await this.#reload().catch(() => {});
    while (!signal.aborted && this.#state?.phase === "trial") {
      await sleep(1000, signal);
      await this.#reload().catch(() => {});
    }
  }

  #activity(): string | undefined {
    const p = this.#progress;
    if (p?.step === "downloading" && p.total) {
      return `downloading ${p.version}: ${Math.floor((p.done ?? 0) * 100 / p.total)}% (${
        p.done ?? 0
      } of ${p.total} bytes)`;
    }
    if (p) return "checking the release channel";
    if (this.#staged) {
      return `staged ${this.#staged.version} in slot ${this.#staged.slot}, about to run on trial`;
    }
    const s = this.#state;
    if (s?.phase === "trial" && s.trial) {
      const t = Math.round((Date.now() - s.trial.startedAt) / 1000);
      return `trial of ${s.trial.version}: ${t}s of ${
        Math.round(this.#o.config.healthDeadline / 1000)
      }s to become healthy (start ${s.trial.attempts} of ${this.#o.config.maxAttempts})`;
    }
    const last = this.#last ?? s?.lastCheck;
    switch (last?.result) {
      case "rolled-back":
        return `rolled back ${last.version} because ${last.reason}`;
      case "installed":
        return `committed ${last.version}`;
      case "refused":
      case "deferred":
        return `${last.result} (${last.code}): ${last.reason}`;
      case "skipped":
        return `skipped ${last.version}: ${last.reason}`;
      case "interrupted":
        return `interrupted ${last.version ?? ""}: ${last.reason}`.replace("  ", " ");
      default:
        return s ? `committed ${s.committed.version}` : undefined;
    }
  }

  /** For /status. */
  status(): UpdateStatus {
    const s = this.#state;
    return {
      version: this.#o.version,
      target: this.updater.target,
      installRoot: this.slots.root,
      channel: this.#o.config.channel,
      activity: this.#activity(),
      phase: s?.phase,
      committed: s?.committed,
      trial: s?.trial,
      lastCounter: s?.lastCounter,
      lastCheck: this.#last ?? s?.lastCheck,
      lastRollback: s?.lastRollback,
      ...(this.#pin?.pinned ? { pinned: this.#pin.pinned } : {}),
      ...(s?.lastTimestamp ? { metadataExpires: s.lastTimestamp.expires } : {}),
      ...(s?.lastTimestamp && Date.now() > s.lastTimestamp.expires
        ? {
          metadataStale: `release metadata stale since ${
            new Date(s.lastTimestamp.expires).toISOString()
          }`,
        }
        : {}),
      history: s?.history.slice(0, 5),
      ...(this.#staged
        ? { staged: { slot: this.#staged.slot, version: this.#staged.version } }
        : {}),
      ...(this.#progress ? { progress: { ...this.#progress } } : {}),
    };
  }

  /** Reads state.json; returns a copy to change, so /status never shows what is not written. */
  async #reload(): Promise<UpdateState> {
    this.#state = await this.slots.readState();
    this.#pin = await readPin(this.slots).catch(() => undefined);
    return structuredClone(this.#state);
  }

  async #save(state: UpdateState): Promise<void> {
    await this.slots.writeState(state);
    this.#state = state;
  }

  #record(outcome: UpdateOutcome): void {
    this.#last = outcome;
    const level = outcome.result === "refused"
      ? "warn"
      : outcome.result === "current" || outcome.result === "skipped"
      ? "debug"
      : "info";
    this.#log[level](`update check: ${outcome.result}`, {
      version: outcome.version,
      code: outcome.code,
      reason: outcome.reason,
    });
  }

  get #trialEnv(): string {
    return `${this.slots.root}/trial.env`;
  }
  get #bootsFile(): string {
    return `${this.slots.root}/trial-boots`;
  }

  /** Starts of the version on trial so far: the supervised one plus each guard-counted boot. */
  async trialAttempts(): Promise<number> {
    // A trial begun by a restart has no supervised start to count.
    const first = this.#state?.trial?.supervised === false ? 0 : 1;
    try {
      return first + (await Deno.stat(this.#bootsFile)).size;
    } catch {
      return first;
    }
  }

  async #guardArmed(): Promise<boolean> {
    try {
      await Deno.lstat(this.#trialEnv);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * At start-up, before the gateway runs: settles a trial a restart (power cut, crash, SIGKILL)
   * interrupted. Returns "self-trial" when this process is the version on trial (it must prove
   * itself healthy), "exit" when it rolled back to the previous slot and should exit for systemd
   * to start that one, "run" otherwise. Outside a trial nothing is counted: a restart of a
   * committed version never leads to a rollback.
   */
  async boot(): Promise<"run" | "self-trial" | "exit"> {
    let state: UpdateState;
    try {
      state = await this.#reload();
    } catch (e) {
      this.#log.error("update state unreadable; self-update disabled until fixed", {
        error: (e as Error).message,
      });
      return "run";
    }
    if (!(await Deno.lstat(`${this.slots.root}/root.json`).then(() => true, () => false))) {
      this.#log.warn(
        this.#o.config.trustedKeys.length
          ? "no pinned root: manifests are checked with update.trustedKeys alone (no timestamp, no freeze detection, no key rotation); pin one with outpost update init --root or by copying root.json into the install root"
          : "no pinned root and no update.trustedKeys: no release will be trusted",
        { root: `${this.slots.root}/root.json` },
      );
    }
    const leftovers = await this.slots.removeLeftovers();
    if (leftovers.length) {
      this.#log.info("removed leftovers of an interrupted write", { files: leftovers.join(" ") });
    }
    if (state.phase !== "trial" || !state.trial) {
      // A cut between writing `committed` and removing the trial files leaves them behind; the
      // guard ignores them (it checks the phase) and they go here.
      await this.#clearTrialFiles();
      return "run";
    }
    const active = await this.slots.active();
    const attempts = await this.trialAttempts();
    state.trial.attempts = attempts;
    if (active !== state.trial.slot) {
      if (await this.#guardArmed()) {
        // `current` never moved to the new slot: the new version has not run, so it is not
        // judged; the next check installs it again. (Also reached when the supervisor had moved
        // `current` back but not yet recorded why: that version then gets one more trial.)
        await this.#interrupted(state, `restarted before ${state.trial.version} ran on trial`);
        return "run";
      }
      await this.#rolledBack(
        state,
        `the guard restored slot ${state.committed.slot} after ${
          attempts - 1
        } start(s) of ${state.trial.version} without a healthy report`,
      );
      return "run";
    }
    if (attempts > this.#o.config.maxAttempts) {
      await this.slots.switchTo(state.committed.slot);
      await this.#rolledBack(
        state,
        `${state.trial.version} did not become healthy in ${attempts - 1} start(s)`,
      );
      return "exit";
    }
    await this.#save(state);
    this.#log.warn("this version is on trial after a restart; it must become healthy", {
      version: state.trial.version,
      attempt: attempts,
      deadlineMs: this.#o.config.healthDeadline,
    });
    return "self-trial";
  }

  /**
   * The version on trial watches its own /healthz; healthy in time commits, otherwise the
   * previous slot is restored and `onFail` is called (the process should exit).
   */
  async selfTrial(signal: AbortSignal, onFail: () => void): Promise<void> {
    await testHold("trial");
    const deadline = Date.now() + this.#o.config.healthDeadline;
    const requireUplink = this.#state?.trial?.requireUplink ?? false;
    let last = "no answer";
    while (!signal.aborted && Date.now() < deadline) {
      try {
        const res = await fetch(`${this.#o.healthUrl}/healthz`, {
          signal: AbortSignal.timeout(1000),
        });
        const why = trialUnhealthy(await res.json(), requireUplink);
        if (res.ok && !why) {
          const state = await this.#reload();
          if (state.phase === "trial" && state.trial) await this.#commit(state, state.trial.slot);
          return;
        }
        last = why ?? `HTTP ${res.status}`;
      } catch (e) {
        last = (e as Error).message;
      }
      await sleep(250, signal);
    }
    if (signal.aborted) return;
    const state = await this.#reload();
    if (state.phase !== "trial" || !state.trial) return;
    await this.slots.switchTo(state.committed.slot);
    await this.#rolledBack(state, `not healthy within ${this.#o.config.healthDeadline}ms: ${last}`);
    onFail();
  }

  /**
   * Checks every `checkInterval` (first check after `firstDelayMs`) and calls `onStaged` once a
   * verified artifact sits in the inactive slot. Stops with `signal`.
   */
  schedule(signal: AbortSignal, onStaged: () => void, firstDelayMs = 1000): void {
    const tick = async () => {
      if (signal.aborted) return;
      const staged = await this.checkAndStage(signal);
      if (staged && !signal.aborted) {
        onStaged();
        return;
      }
      timer = setTimeout(tick, this.#o.config.checkInterval);
    };
    let timer = setTimeout(tick, firstDelayMs);
    signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  }

  /**
   * One check; stages an accepted artifact. Returns true when one is staged for a trial. A check
   * asked for while another runs joins that one and returns its outcome.
   */
  checkAndStage(signal?: AbortSignal): Promise<boolean> {
    // A staged rollback is about to run: a release must not take its place.
    if (this.#rollingBack || this.#staged?.rollback) return Promise.resolve(false);
    if (this.#inflight) return this.#inflight.done;
    const stop = new AbortController();
    const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const done = this.#checkAndStage(both, stop.signal).finally(() => {
      this.#inflight = undefined;
      this.#progress = undefined;
    });
    this.#inflight = { done, stop };
    return done;
  }

  async #checkAndStage(signal: AbortSignal, stopped: AbortSignal): Promise<boolean> {
    try {
      this.#progress = { step: "checking" };
      const state = await this.#reload();
      if (state.phase === "trial") return false;
      const r = await this.updater.check({ signal });
      await this.#reload();
      if (r.kind === "none") {
        this.#record(r.outcome);
        return false;
      }
      const slot = await this.updater.stage(r.available, {
        signal,
        onProgress: (p) => this.#progress = { step: "downloading", ...p },
      });
      this.#staged = {
        slot,
        version: r.available.version,
        requireUplink: await this.#uplinkConnected(),
      };
      this.#record({ at: Date.now(), result: "staged", version: r.available.version });
      return true;
    } catch (e) {
      if (stopped.aborted) {
        this.#record({
          at: Date.now(),
          result: "interrupted",
          version: this.#progress?.version,
          reason: `check stopped: ${(stopped.reason as Error)?.message ?? stopped.reason}`,
        });
      } else if (e instanceof UpdateRefused) {
        this.#record({
          at: Date.now(),
          result: e.code === "clock-behind" ? "deferred" : "refused",
          code: e.code,
          reason: e.message,
        });
      } else {
        this.#record({
          at: Date.now(),
          result: "refused",
          code: "internal",
          reason: (e as Error).message,
        });
      }
      return false;
    }
  }

  /**
   * Stages a rollback on request while the gateway still runs: the next {@linkcode trial} runs
   * the previous slot's version with everything an update's trial has (state `trial`, the guard's
   * trial.env and boot counting, the health deadline, a power cut settled at the next start).
   * Once it is committed, `lastRollback` names the version rolled back from, so the updater does
   * not install it again; a failed rollback leaves the committed version running and `lastRollback`
   * as it was. Throws {@linkcode RollbackRefused} when a check, download or trial is under way, or
   * the other slot holds no version that runs.
   *
   * @example
   * ```ts ignore
   * const { version, from } = await agent.stageRollback({ requestedBy: "remote command 42" });
   * // stop the gateway, then:
   * const r = await agent.trial({ env: Deno.env.toObject() });
   * ```
   */
  async stageRollback(
    opts: { requestedBy: string; signal?: AbortSignal },
  ): Promise<RollbackTarget> {
    if (this.#rollingBack) throw new RollbackRefused("busy", "a rollback is being staged");
    if (this.#inflight) {
      // A release being fetched must not keep the operator from going back: stop it (a partial
      // download stays for a later resume) and wait for it to let go.
      this.#inflight.stop.abort(new Error("a rollback was requested"));
      await this.#inflight?.done;
    }
    if (this.#staged) {
      throw new RollbackRefused(
        "busy",
        `${this.#staged.version} is staged and about to run on trial`,
      );
    }
    this.#rollingBack = true;
    try {
      let state: UpdateState;
      try {
        state = await this.#reload();
      } catch (e) {
        throw new RollbackRefused("state-unreadable", (e as Error).message, { cause: e });
      }
      if (state.phase === "trial") {
        throw new RollbackRefused("busy", `a trial of ${state.trial?.version} is in progress`);
      }
      const slot = otherSlot(state.committed.slot);
      const binary = this.slots.binary(slot);
      try {
        await Deno.stat(binary);
      } catch {
        throw new RollbackRefused(
          "no-previous",
          `no previous version to roll back to: slot ${slot} has no executable (${binary})`,
        );
      }
      let version: string;
      try {
        version = await reportedVersion(binary, opts.signal);
      } catch (e) {
        throw new RollbackRefused(
          "no-previous",
          `the previous version in slot ${slot} does not run: ${(e as Error).message}`,
          { cause: e },
        );
      }
      this.#staged = {
        slot,
        version,
        requireUplink: await this.#uplinkConnected(),
        rollback: { reason: `rolled back to ${version} by ${opts.requestedBy}` },
      };
      return { slot, version, from: state.committed.version };
    } finally {
      this.#rollingBack = false;
    }
  }

  /** Forgets what is staged, for a trial that is not going to start after all. */
  unstage(): void {
    this.#staged = undefined;
  }

  async #uplinkConnected(): Promise<boolean> {
    try {
      const res = await fetch(`${this.#o.healthUrl}/healthz`, {
        signal: AbortSignal.timeout(1000),
      });
      const h = await res.json();
      return /^connected/.test(h.checks?.uplink?.detail ?? "");
    } catch {
      return false;
    }
  }

  /**
   * Under systemd: puts the staged version (a release, or the previous version for a rollback)
   * on trial and returns, so that the caller exits and systemd starts it; it then judges itself
   * ({@linkcode selfTrial}) and commits or restores the previous slot and exits. Only one gateway
   * process runs at a time, so a trial fits the unit's memory limit. Returns what was put on
   * trial, or undefined when nothing was staged.
   */
  async restartTrial(): Promise<{ slot: Slot; version: string } | undefined> {
    const staged = this.#staged;
    if (!staged) return undefined;
    this.#staged = undefined;
    await this.#beginTrial(staged, false);
    return { slot: staged.slot, version: staged.version };
  }

  /** State `trial`, the guard's trial.env, then `current` moved to the staged slot. */
  async #beginTrial(staged: Staged, supervised: boolean): Promise<void> {
    const state = await this.#reload();
    state.phase = "trial";
    state.trial = {
      slot: staged.slot,
      version: staged.version,
      attempts: supervised ? 1 : 0,
      startedAt: Date.now(),
      requireUplink: staged.requireUplink,
      ...(supervised ? {} : { supervised: false }),
    };
    if (staged.rollback) {
      const from = state.committed.version;
      const { reason } = staged.rollback;
      state.trial.rollback = { from, reason, prior: state.lastRollback };
      state.lastRollback = { at: Date.now(), version: from, reason };
    }
    // Order matters for a power cut at any point: the guard's file first (it ignores it unless
    // the state says trial), then the state, then `current`.
    await Deno.remove(this.#bootsFile).catch(() => {});
    await writeFileAtomic(
      this.#trialEnv,
      `PREVIOUS_SLOT=${state.committed.slot}\nTRIAL_SLOT=${staged.slot}\nTRIAL_VERSION=${staged.version}\nMAX_ATTEMPTS=${this.#o.config.maxAttempts}\nSUPERVISED=${
        supervised ? 1 : 0
      }\n`,
    );
    await this.#save(state);
    await testHold("switch");
    await this.slots.switchTo(staged.slot);
    await testHold("switched");
    this.#log[staged.rollback ? "warn" : "info"](
      staged.rollback
        ? `rolling back on request: ${
          supervised ? "starting" : "restarting into"
        } the previous version on trial`
        : `${supervised ? "starting" : "restarting into"} the new version on trial`,
      {
        version: staged.version,
        slot: staged.slot,
        deadlineMs: this.#o.config.healthDeadline,
        requireUplink: staged.requireUplink,
      },
    );
  }

  /**
   * Runs the staged version — a release, or the previous version for a rollback — on trial (the
   * gateway in this process must already be stopped): state `trial`, switch `current`, start it,
   * wait for health. Healthy: commit and return the child. Otherwise: stop it, restore the
   * previous slot, record why.
   */
  async trial(opts: { env: Record<string, string>; signal?: AbortSignal }): Promise<TrialResult> {
    const staged = this.#staged;
    if (!staged) return { ok: false, reason: "nothing staged" };
    this.#staged = undefined;
    await this.#beginTrial(staged, true);
    const r = await runTrial({
      binary: this.slots.binary(staged.slot),
      configPath: this.#o.configPath,
      healthUrl: this.#o.healthUrl,
      deadlineMs: this.#o.config.healthDeadline,
      requireUplink: staged.requireUplink,
      env: { ...opts.env, OUTPOST_TRIAL_CHILD: "1" },
      log: this.#log,
      signal: opts.signal,
    });
    const now = await this.#reload();
    if (r.ok) {
      await this.#commit(now, staged.slot);
    } else if (opts.signal?.aborted) {
      // Stopped from outside (systemctl stop, shutdown): the new version was not judged.
      await this.slots.switchTo(now.committed.slot);
      await this.#interrupted(now, r.reason);
    } else {
      await this.slots.switchTo(now.committed.slot);
      await this.#rolledBack(now, r.reason);
    }
    return r;
  }

  /** The version on trial is healthy: it becomes the committed one. */
  async #commit(state: UpdateState, slot: Slot): Promise<void> {
    const version = state.trial?.version ?? "?";
    const rollback = state.trial?.rollback;
    state.phase = "committed";
    state.committed = { slot, version };
    delete state.trial;
    const at = Date.now();
    if (rollback) {
      const { from, reason } = rollback;
      state.lastRollback = { at, version: from, reason };
      const outcome: UpdateOutcome = { at, result: "rolled-back", version: from, reason };
      recordOutcome(state, outcome);
      await this.#settle(state, outcome);
      this.#log.warn(`ROLLED BACK ${from} on request`, { running: version, slot });
      return;
    }
    const outcome: UpdateOutcome = { at, result: "installed", version };
    recordOutcome(state, outcome);
    await this.#settle(state, outcome);
    this.#log.info("new version healthy: committed", { version, slot });
  }

  /** The trial failed (`current` already points at the committed slot again). */
  async #rolledBack(state: UpdateState, reason: string): Promise<void> {
    const version = state.trial?.version ?? "?";
    const rollback = state.trial?.rollback;
    state.phase = "committed";
    delete state.trial;
    const at = Date.now();
    if (rollback) {
      restorePrior(state, rollback.prior);
      const outcome: UpdateOutcome = {
        at,
        result: "refused",
        code: "rollback-failed",
        version,
        reason: `rollback to ${version} failed: ${reason}`,
      };
      recordOutcome(state, outcome);
      await this.#settle(state, outcome);
      this.#log.error(`rollback to ${version} failed; ${state.committed.version} keeps running`, {
        reason,
      });
      return;
    }
    state.lastRollback = { at, version, reason };
    const outcome: UpdateOutcome = { at, result: "rolled-back", version, reason };
    recordOutcome(state, outcome);
    await this.#settle(state, outcome);
    this.#log.error(`ROLLED BACK ${version}: ${reason}`, { running: state.committed.version });
  }

  /** The version on trial was not judged (a restart before it ran, a stop during the trial). */
  async #interrupted(state: UpdateState, why: string): Promise<void> {
    const version = state.trial?.version ?? "?";
    const rollback = state.trial?.rollback;
    state.phase = "committed";
    delete state.trial;
    if (rollback) restorePrior(state, rollback.prior);
    const reason = rollback
      ? `rollback to ${version} interrupted: ${why}; ${state.committed.version} keeps running`
      : `${why}; it will be tried again`;
    const outcome: UpdateOutcome = { at: Date.now(), result: "interrupted", version, reason };
    recordOutcome(state, outcome);
    await this.#settle(state, outcome);
    this.#log.warn(`trial of ${version} interrupted: ${reason}`, {
      running: state.committed.version,
    });
  }

  /** Writes the concluded state, removes the trial files, and only then shows it in /status. */
  async #settle(state: UpdateState, outcome: UpdateOutcome): Promise<void> {
    await this.slots.writeState(state);
    await this.#clearTrialFiles();
    this.#state = state;
    this.#last = outcome;
  }

  async #clearTrialFiles(): Promise<void> {
    await Deno.remove(this.#trialEnv).catch(() => {});
    await Deno.remove(this.#bootsFile).catch(() => {});
  }
}

/** Puts back the `lastRollback` a failed or interrupted rollback on request replaced. */
function restorePrior(state: UpdateState, prior: UpdateState["lastRollback"]): void {
  if (prior) state.lastRollback = prior;
  else delete state.lastRollback;
}
