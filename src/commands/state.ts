/**
 * What the command service keeps on disk beside the buffer (`commands-state.json`): ids of
 * time-stamped requests seen within the replay window, so a captured signed request cannot be
 * replayed after a restart, and the commands whose final reply is owed by the next start of the
 * gateway (restart, config-set under watch, update-apply and rollback).
 */
import { writeFileAtomic } from "../update/mod.ts";

/** What every pending command records of its request. */
interface PendingBase {
  id: string;
  cmd: string;
  /** Reply topic prefix of the request. */
  prefix: string;
  at: number;
  /** Operator key id, key name and target of the request (for the audit trail). */
  keyid?: string;
  key?: string;
  target?: string;
}

/** A restart in progress: the next gateway start replies `done` with its new `startedAt`. */
export interface PendingRestart extends PendingBase {
  kind: "restart";
  previousStartedAt: number;
  previousPid: number;
}

/** A config-set whose health verdict is not in: a start that finds it watches and decides. */
export interface PendingConfigSet extends PendingBase {
  kind: "config-set";
  deadlineMs: number;
  sha256: string;
  prevSha256: string;
}

/** An update or rollback on trial: settled by whichever version runs once the trial is over. */
export interface PendingUpdate extends PendingBase {
  kind: "update";
  /** The version that should be committed once the trial succeeds. */
  expectVersion: string;
  fromVersion: string;
  installRoot: string;
  /** Give up waiting for a verdict after this time (ms since epoch). */
  until: number;
}

/** A command whose final reply comes after the gateway stopped and started again. */
export type PendingOp = PendingRestart | PendingConfigSet | PendingUpdate;

interface StateFile {
  v: 1;
  /** Request id → when it may be forgotten (ms since epoch). */
  seen: Record<string, number>;
  pending: PendingOp[];
}

/** Most request ids remembered; the earliest to expire go first beyond it. */
const MAX_SEEN = 10_000;

/** Replay cache and pending commands, persisted atomically (temp file, fsync, rename). */
export class CommandState {
  readonly path: string | undefined;
  readonly #seen = new Map<string, { until: number; persist: boolean }>();
  #pending: PendingOp[] = [];
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string | undefined) {
    this.path = path;
  }

  /** Reads the file (a missing or unreadable one starts empty; the reason is returned). */
  load(now = Date.now()): string | undefined {
    if (!this.path) return undefined;
    let text: string;
    try {
      text = Deno.readTextFileSync(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      return `Cannot read "${this.path}": ${(e as Error).message}`;
    }
    try {
      const f = JSON.parse(text) as StateFile;
      for (const [id, until] of Object.entries(f.seen ?? {})) {
        if (typeof until === "number" && until > now) {
          const mine = this.#seen.get(id);
          if (!mine || mine.until < until) this.#seen.set(id, { until, persist: true });
        }
      }
      this.#pending = Array.isArray(f.pending) ? f.pending : [];
      return undefined;
    } catch (e) {
      return `"${this.path}" is not valid JSON (${(e as Error).message}); starting empty`;
    }
  }

  /** Whether request `id` was seen and is still remembered. */
  seen(id: string, now = Date.now()): boolean {
    const s = this.#seen.get(id);
    return s !== undefined && s.until > now;
  }

  /** Remembers `id` until `until`; `persist` keeps it across restarts. */
  async remember(id: string, until: number, persist: boolean, now = Date.now()): Promise<void> {
    this.#seen.set(id, { until, persist });
    for (const [k, v] of this.#seen) if (v.until <= now) this.#seen.delete(k);
    if (this.#seen.size > MAX_SEEN) {
      const byExpiry = [...this.#seen].sort((a, b) => a[1].until - b[1].until);
      for (const [k] of byExpiry.slice(0, this.#seen.size - MAX_SEEN)) this.#seen.delete(k);
    }
    if (persist) await this.#save();
  }

  /** Commands whose final reply is still owed. */
  pending(): readonly PendingOp[] {
    return this.#pending;
  }

  /** Records a pending command (replacing one with the same id). */
  async addPending(op: PendingOp): Promise<void> {
    this.#pending = [...this.#pending.filter((p) => p.id !== op.id), op];
    await this.#save();
  }

  /** Forgets a pending command. */
  async removePending(id: string): Promise<void> {
    const before = this.#pending.length;
    this.#pending = this.#pending.filter((p) => p.id !== id);
    if (this.#pending.length !== before) await this.#save();
  }

  /** Takes over the remembered ids and pending commands of another state (another file). */
  async adopt(other: CommandState): Promise<void> {
    for (const [id, v] of other.#seen) {
      const mine = this.#seen.get(id);
      if (!mine || mine.until < v.until) this.#seen.set(id, v);
    }
    const mine = new Set(this.#pending.map((p) => p.id));
    this.#pending = [...this.#pending, ...other.#pending.filter((p) => !mine.has(p.id))];
    other.#pending = [];
    await Promise.all([this.#save(), other.#save()]);
  }

  #save(): Promise<void> {
    const path = this.path;
    if (!path) return Promise.resolve();
    // One write at a time: they share the temp file name.
    this.#writing = this.#writing.catch(() => {}).then(() => {
      const seen: Record<string, number> = {};
      for (const [id, s] of this.#seen) if (s.persist) seen[id] = s.until;
      const file: StateFile = { v: 1, seen, pending: this.#pending };
      return writeFileAtomic(path, JSON.stringify(file) + "\n", 0o600);
    });
    return this.#writing;
  }
}
