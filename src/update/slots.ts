import { SlotError } from "./errors.ts";

/** One of the two install slots. */
export type Slot = "a" | "b";

/** What the last check or apply concluded, as /status shows it. */
export interface UpdateOutcome {
  at: number;
  /** installed: committed after a healthy trial; current: nothing newer; refused/deferred: not
   * installed (with code and reason); rolled-back: the trial failed, or a rollback on request
   * succeeded (`version` is the one rolled back from); staged: verified, waiting; interrupted: a
   * restart or stop came before the version on trial was judged (an update is tried again, a
   * rollback on request is not). */
  result:
    | "installed"
    | "current"
    | "refused"
    | "deferred"
    | "rolled-back"
    | "staged"
    | "skipped"
    | "interrupted";
  version?: string;
  code?: string;
  reason?: string;
}

/** The device's update state, `state.json` under the install root. */
export interface UpdateState {
  /** committed: `current` is the committed slot. trial: `current` may point at the trial slot. */
  phase: "committed" | "trial";
  /** The committed slot and version. */
  committed: { slot: Slot; version: string };
  /** During a trial: the slot and version on trial and how many starts it has had;
   * `requireUplink`: healthy includes a connected uplink (it was connected when the trial began);
   * `rollback`: the trial is a rollback on request from version `from` (see `lastRollback`). */
  trial?: {
    slot: Slot;
    version: string;
    attempts: number;
    startedAt: number;
    requireUplink?: boolean;
    /** false: begun by a restart under systemd (no supervised start counted). */
    supervised?: boolean;
    rollback?: {
      from: string;
      reason: string;
      /** `lastRollback` before this rollback, put back should it fail. */
      prior?: UpdateState["lastRollback"];
    };
  };
  /** Highest manifest counter accepted (replay protection). */
  lastCounter?: number;
  /** SHA-256 of the signed part that carried `lastCounter`: that counter with other content is
   * refused. */
  lastDigest?: string;
  /** The newest timestamp seen (with a root): its version (replay floor) and expiry, ms (after
   * it, release metadata is stale). */
  lastTimestamp?: { version: number; expires: number };
  /** Latest `published` time of an accepted manifest, ms: the clock must not be before it. */
  trustedTime?: number;
  lastCheck?: UpdateOutcome;
  /** The version last rolled back from: the updater does not install it again. A rollback on
   * request writes it together with its trial, so that it holds whichever version concludes the
   * trial after a restart (also one built before `trial.rollback` existed). */
  lastRollback?: { at: number; version: string; reason: string };
  /** Most recent outcomes, newest first (at most 20). */
  history: UpdateOutcome[];
}

/** The other slot. */
export function otherSlot(slot: Slot): Slot {
  return slot === "a" ? "b" : "a";
}

/** Flushes the file or directory at `path` to disk. */
export async function fsyncPath(path: string): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

let tmpSeq = 0;

/** Writes a file atomically: temp file, fsync, rename over, fsync the directory. */
export async function writeFileAtomic(path: string, data: string, mode = 0o644): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  // Unique per write: two writes of one file at once in this process must not share it.
  const tmp = `${path}.tmp-${Deno.pid}-${++tmpSeq}`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode });
  try {
    const bytes = new TextEncoder().encode(data);
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } catch (e) {
    f.close();
    // A full disk must not leave half-written temp files behind.
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  await Deno.rename(tmp, path);
  await fsyncPath(dir);
}

/**
 * The A/B layout under an install root:
 * `slots/a/outpost`, `slots/b/outpost`, `current` → `slots/<x>` (symlink), `state.json`.
 */
export class Slots {
  /** The install root, e.g. /opt/outpost. */
  readonly root: string;
  constructor(root: string) {
    this.root = root.replace(/\/+$/, "");
  }

  /** `slots/<slot>` under the root. */
  dir(slot: Slot): string {
    return `${this.root}/slots/${slot}`;
  }
  /** The executable of a slot. */
  binary(slot: Slot): string {
    return `${this.dir(slot)}/outpost`;
  }
  /** The download in progress for a slot; never executable. */
  staging(slot: Slot): string {
    return `${this.dir(slot)}/outpost.staging`;
  }
  /** The `current` symlink. */
  get current(): string {
    return `${this.root}/current`;
  }
  /** The state file. */
  get stateFile(): string {
    return `${this.root}/state.json`;
  }

  /** The slot `current` points at. */
  async active(): Promise<Slot> {
    let target: string;
    try {
      target = await Deno.readLink(this.current);
    } catch (e) {
      throw new SlotError(`Cannot read symlink "${this.current}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    const m = /(?:^|\/)slots\/([ab])\/?$/.exec(target);
    if (!m) {
      throw new SlotError(`"${this.current}" points at "${target}", not at slots/a or slots/b`);
    }
    return m[1] as Slot;
  }

  /**
   * Points `current` at `slot` atomically: a symlink under a temporary name renamed over
   * `current` (rename(2) replaces it in one step; there is no moment without `current`).
   */
  async switchTo(slot: Slot): Promise<void> {
    const tmp = `${this.current}.tmp-${Deno.pid}`;
    await Deno.remove(tmp).catch(() => {});
    await Deno.symlink(`slots/${slot}`, tmp);
    await Deno.rename(tmp, this.current);
    await fsyncPath(this.root);
  }

  /** Reads state.json; throws SlotError when missing or unreadable. */
  async readState(): Promise<UpdateState> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.stateFile);
    } catch (e) {
      throw new SlotError(`Cannot read update state "${this.stateFile}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    try {
      const s = JSON.parse(text) as UpdateState;
      s.history ??= [];
      return s;
    } catch (e) {
      throw new SlotError(`Update state "${this.stateFile}" is not JSON: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Writes state.json atomically. */
  async writeState(state: UpdateState): Promise<void> {
    await writeFileAtomic(this.stateFile, JSON.stringify(state, null, 2) + "\n");
  }

  /**
   * Removes what an interrupted atomic write can leave under the root (`*.tmp-<pid>` files, the
   * guard's temporary symlink, a half-copied slot binary). Never touches a slot's `outpost` or
   * `outpost.staging` (a partial download is resumed).
   */
  async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    const sweep = async (dir: string, match: (name: string) => boolean) => {
      try {
        for await (const e of Deno.readDir(dir)) {
          if (!match(e.name)) continue;
          await Deno.remove(`${dir}/${e.name}`).catch(() => {});
          removed.push(`${dir}/${e.name}`);
        }
      } catch { /* no such directory */ }
    };
    await sweep(
      this.root,
      (n) =>
        /^(state\.json|current|trial\.env|root\.json|pin\.json)\.tmp-\d+(-\d+)?$/.test(n) ||
        n === "current.guard-tmp",
    );
    for (const s of ["a", "b"] as const) {
      await sweep(this.dir(s), (n) => n === "outpost.tmp" || /^outpost\.tmp-\d+-\d+$/.test(n));
    }
    return removed;
  }

  /**
   * Moves a verified staging file into place as the slot's executable: chmod +x (only now),
   * fsync, rename over `slots/<slot>/outpost`, fsync the slot directory.
   */
  async promoteStaging(slot: Slot): Promise<void> {
    const staging = this.staging(slot);
    await Deno.chmod(staging, 0o755);
    await fsyncPath(staging);
    await Deno.rename(staging, this.binary(slot));
    await fsyncPath(this.dir(slot));
  }

  /**
   * Sets up a fresh install root with `artifact` (a file) as version `version` in slot a,
   * committed. Refuses to touch a root that already has state.
   */
  async init(artifact: string, version: string): Promise<void> {
    try {
      await Deno.lstat(this.stateFile);
      throw new SlotError(`"${this.root}" already has update state; not re-initialising`);
    } catch (e) {
      if (e instanceof SlotError) throw e;
    }
    for (const s of ["a", "b"] as const) await Deno.mkdir(this.dir(s), { recursive: true });
    await Deno.copyFile(artifact, `${this.binary("a")}.tmp`);
    await Deno.chmod(`${this.binary("a")}.tmp`, 0o755);
    await fsyncPath(`${this.binary("a")}.tmp`);
    await Deno.rename(`${this.binary("a")}.tmp`, this.binary("a"));
    await fsyncPath(this.dir("a"));
    await this.switchTo("a");
    await this.writeState({ phase: "committed", committed: { slot: "a", version }, history: [] });
  }
}

/** Records an outcome as the last check and at the head of the history. */
export function recordOutcome(state: UpdateState, outcome: UpdateOutcome): void {
  state.lastCheck = outcome;
  state.history = [outcome, ...state.history].slice(0, 20);
}
