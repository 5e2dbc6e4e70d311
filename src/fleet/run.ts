/**
 * The bookkeeping of one command sent to one, some or all gateways: which gateway said what, who
 * is still expected to answer, who came back after a restart, and who timed out. No I/O: the
 * {@linkcode Fleet} feeds it replies and statuses, so it is tested on its own.
 */
import type { CommandReply } from "../protocol/mod.ts";

/** Where one gateway stands in a command run. */
export type TargetState =
  | "sent"
  | "accepted"
  | "progress"
  | "restarting"
  | "done"
  | "restarted"
  | "error"
  | "timeout"
  | "cancelled";

/** What the console knows of a gateway's process, from its retained status. */
export interface ProcessSeen {
  startedAt: number | null;
  version: string | null;
}

/** One gateway's part in a command run. */
export interface TargetResult {
  gatewayId: string;
  /** Id of the request this gateway answers (the same for every gateway of a fleet-wide run). */
  requestId: string;
  state: TargetState;
  /** True once nothing more is expected from this gateway. */
  finished: boolean;
  /** True when it finished well (`done` or `restarted`). */
  ok: boolean;
  sentAt: number;
  /** When it finished, ms since epoch. */
  finishedAt?: number;
  /** Replies received (duplicates included). */
  replies: number;
  /** `result` of the final reply (or of the last reply with one). */
  result?: unknown;
  error?: { code: string; message: string };
  progress?: CommandReply["progress"];
  /** The gateway's process as seen in status when the command was sent. */
  before: ProcessSeen;
  /** The process seen after a restart. */
  after?: ProcessSeen;
  /** A word for people: why it timed out, what it was waiting for. */
  note?: string;
  /** True when the gateway answered although it was not a target (fleet-wide runs). */
  unexpected?: boolean;
}

/** Totals of a run, for progress lines and exit codes. */
export interface RunSummary {
  id: string;
  cmd: string;
  total: number;
  finished: number;
  ok: number;
  failed: number;
  timedOut: number;
  /** Gateways that have replied at least once. */
  replied: number;
}

/** Options of {@linkcode CommandRun}. */
export interface CommandRunOptions {
  /** Run id (the request id of a fleet-wide run). */
  id: string;
  cmd: string;
  args?: Record<string, unknown>;
  /** Sent on the fleet-wide topic: gateways that were not targets may answer too. */
  fleetWide: boolean;
  /** Everything must be finished by then; the rest times out. */
  timeoutMs: number;
  /**
   * Called with a successful final reply: true when the gateway is expected to restart, and the
   * target finishes only once its status shows a new process (`restarted`).
   */
  followRestart?: (reply: CommandReply) => boolean;
  now?: () => number;
  signal?: AbortSignal;
}

/**
 * The state of one command across its targets. `done` resolves when every target finished or
 * the timeout passed; listeners hear every change.
 */
export class CommandRun {
  readonly id: string;
  readonly cmd: string;
  readonly args: Record<string, unknown>;
  readonly fleetWide: boolean;
  readonly startedAt: number;
  readonly timeoutMs: number;
  readonly done: Promise<RunSummary>;
  readonly #targets = new Map<string, TargetResult>();
  readonly #byRequest = new Map<string, string>();
  readonly #sawOffline = new Set<string>();
  readonly #restartSeen = new Map<string, ProcessSeen>();
  readonly #listeners = new Set<(t: TargetResult) => void>();
  readonly #followRestart?: (reply: CommandReply) => boolean;
  readonly #now: () => number;
  readonly #resolve: (s: RunSummary) => void;
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #onAbort: () => void;
  readonly #signal?: AbortSignal;
  #sealed = false;
  #settled = false;

  constructor(opts: CommandRunOptions) {
    this.id = opts.id;
    this.cmd = opts.cmd;
    this.args = opts.args ?? {};
    this.fleetWide = opts.fleetWide;
    this.timeoutMs = opts.timeoutMs;
    this.#followRestart = opts.followRestart;
    this.#now = opts.now ?? Date.now;
    this.startedAt = this.#now();
    const { promise, resolve } = Promise.withResolvers<RunSummary>();
    this.done = promise;
    this.#resolve = resolve;
    this.#timer = setTimeout(() => this.expire(), opts.timeoutMs);
    this.#signal = opts.signal;
    this.#onAbort = () => this.#finishAll("cancelled", "cancelled by the operator");
    opts.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Adds a gateway the request was (or is about to be) sent to. */
  addTarget(gatewayId: string, requestId: string, before: ProcessSeen): TargetResult {
    const t: TargetResult = {
      gatewayId,
      requestId,
      state: "sent",
      finished: false,
      ok: false,
      sentAt: this.#now(),
      replies: 0,
      before,
    };
    this.#targets.set(gatewayId, t);
    this.#byRequest.set(requestId, gatewayId);
    this.#emit(t);
    return t;
  }

  /** No more targets will be added: `done` can resolve once the known ones finish. */
  seal(): void {
    this.#sealed = true;
    this.#checkDone();
  }

  /** Marks a target that could not be sent to (publish failed) as failed. */
  fail(gatewayId: string, message: string): void {
    const t = this.#targets.get(gatewayId);
    if (!t || t.finished) return;
    this.#finish(t, "error", { error: { code: "send-failed", message } });
  }

  /** Whether a reply belongs to this run. */
  owns(reply: Pick<CommandReply, "id">): boolean {
    return reply.id !== null && (reply.id === this.id || this.#byRequest.has(reply.id));
  }

  /** Takes a reply; returns false when it is not one of this run's. */
  handleReply(reply: CommandReply): boolean {
    if (!this.owns(reply)) return false;
    let t = this.#targets.get(reply.gatewayId);
    if (!t) {
      // Fleet-wide: a gateway without a status the console saw still answers. Count it.
      if (!this.fleetWide || this.#settled) return true;
      t = this.addTarget(reply.gatewayId, reply.id!, { startedAt: null, version: null });
      t.unexpected = true;
    }
    t.replies++;
    if (t.finished) return true;
    // A non-final reply speaks for itself only: a progress line must not repeat the result of the
    // `accepted` reply before it (or an earlier progress), nor a page's rows.
    if (!reply.final) {
      t.progress = reply.progress;
      t.result = reply.status === "page" ? undefined : reply.result;
    } else if (reply.result !== undefined) t.result = reply.result;
    if (reply.status === "error") {
      this.#finish(t, "error", {
        error: reply.error ?? { code: "failed", message: "error reply without details" },
      });
      return true;
    }
    if (!reply.final) {
      t.state = reply.status === "accepted" ? "accepted" : "progress";
      this.#emit(t);
      return true;
    }
    // A command whose final reply comes from the next start (restart, update-apply) often
    // arrives after the new status: then it has restarted whatever the result says.
    const seen = this.#followRestart ? this.#restartSeen.get(t.gatewayId) : undefined;
    if (seen) {
      this.#finish(t, "restarted", { after: seen });
      return true;
    }
    if (this.#followRestart?.(reply)) {
      t.state = "restarting";
      t.note = "waiting for it to come back";
      this.#emit(t);
      return true;
    }
    this.#finish(t, "done", {});
    return true;
  }

  /**
   * Takes a status seen for a gateway. A restart is a new `startedAt` while online, or online
   * again after an offline status, since the request was sent.
   */
  handleStatus(
    gatewayId: string,
    status: { state: string; startedAt: number | null; version: string | null },
  ): void {
    const t = this.#targets.get(gatewayId);
    if (!t || t.finished) return;
    if (status.state !== "online") {
      this.#sawOffline.add(gatewayId);
      return;
    }
    const restarted = this.#sawOffline.has(gatewayId) ||
      (status.startedAt !== null && t.before.startedAt !== null &&
        status.startedAt !== t.before.startedAt);
    if (!restarted) return;
    const after = { startedAt: status.startedAt, version: status.version };
    this.#restartSeen.set(gatewayId, after);
    if (t.state === "restarting") this.#finish(t, "restarted", { after });
  }

  /** Times out every target not finished yet. */
  expire(): void {
    for (const t of this.#targets.values()) {
      if (t.finished) continue;
      const note = t.state === "sent"
        ? `no reply within ${fmtMs(this.timeoutMs)}`
        : t.state === "restarting"
        ? `replied, but did not come back within ${fmtMs(this.timeoutMs)}`
        : `accepted, but no final reply within ${fmtMs(this.timeoutMs)}`;
      this.#finish(t, "timeout", { note });
    }
    this.#sealed = true;
    this.#checkDone();
  }

  #finishAll(state: TargetState, note: string): void {
    for (const t of this.#targets.values()) if (!t.finished) this.#finish(t, state, { note });
    this.#sealed = true;
    this.#checkDone();
  }

  #finish(t: TargetResult, state: TargetState, extra: Partial<TargetResult>): void {
    Object.assign(t, extra);
    t.state = state;
    t.finished = true;
    t.ok = state === "done" || state === "restarted";
    t.finishedAt = this.#now();
    t.note = extra.note;
    this.#emit(t);
    this.#checkDone();
  }

  #checkDone(): void {
    if (this.#settled || !this.#sealed) return;
    for (const t of this.#targets.values()) if (!t.finished) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#resolve(this.summary());
  }

  #emit(t: TargetResult): void {
    for (const l of this.#listeners) l(t);
  }

  /** Calls `listener` on every change of a target; returns the unsubscribe function. */
  onUpdate(listener: (t: TargetResult) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Every target, in the order they were added. */
  results(): TargetResult[] {
    return [...this.#targets.values()];
  }

  /** Whether every target finished (or the run timed out). */
  get settled(): boolean {
    return this.#settled;
  }

  /** Totals so far. */
  summary(): RunSummary {
    let finished = 0, ok = 0, failed = 0, timedOut = 0, replied = 0;
    for (const t of this.#targets.values()) {
      if (t.replies > 0) replied++;
      if (!t.finished) continue;
      finished++;
      if (t.ok) ok++;
      else if (t.state === "timeout") timedOut++;
      else failed++;
    }
    return {
      id: this.id,
      cmd: this.cmd,
      total: this.#targets.size,
      finished,
      ok,
      failed,
      timedOut,
      replied,
    };
  }
}

function fmtMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Whether a successful final reply means the gateway is about to restart: always for
 * `restart`; for `update-apply` and `rollback` when the result says a version was staged.
 */
export function expectsRestart(cmd: string): ((reply: CommandReply) => boolean) | undefined {
  if (cmd === "restart") return () => true;
  if (cmd === "update-apply" || cmd === "rollback") {
    return (reply) => {
      const r = reply.result as Record<string, unknown> | undefined;
      return r?.restart === true || r?.restarting === true || r?.staged === true;
    };
  }
  return undefined;
}
