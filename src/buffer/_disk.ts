/**
 * The disk under the buffer: free space checked at each commit, the reserve file kept beside the
 * buffer so a full disk never stops eviction and checkpoints, and the disk-full state (commits
 * refused for a second after one failed with SQLITE_FULL, recovered by a maintenance timer).
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { isDiskFull } from "./errors.ts";
import type { BufferOptions, BufferStats } from "./types.ts";
import type { Core } from "./_core.ts";

/** The reserve file's path beside the buffer file `path`. */
export function reservePath(path: string): string {
  return `${path}.reserve`;
}

/** Deletes the reserve file beside `path`; true when there was one. */
export function releaseReserve(path: string): boolean {
  try {
    Deno.removeSync(reservePath(path));
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the buffer's filesystem has less than 1 MB free. On a full disk SQLite may report
 * "disk I/O error" rather than SQLITE_FULL (its shared-memory file could not grow).
 */
export function nearlyFull(path: string, opts: BufferOptions): boolean {
  try {
    return (opts.freeDisk ?? defaultFreeDisk)(path) < 1024 * 1024;
  } catch {
    return false;
  }
}

function defaultFreeDisk(path: string): number {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const st = statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/** Free space, the reserve file and the disk-full state of one buffer. */
export class Disk {
  readonly #core: Core;
  readonly #freeDisk: (path: string) => number;
  readonly #persistAcks: () => void;
  #maintainTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while commits fail for want of disk space. */
  full: BufferStats["diskFull"] = null;
  /** While the disk is full, commits are tried again from this time on; until then refused. */
  retryAt = 0;
  reserve: BufferStats["reserve"] = "off";
  freeBytes: number | null = null;
  /** Below `minFreeDisk`, or the reserve is released: the cap shrinks to what is used. */
  low = false;

  /** `persistAcks` writes acknowledgements on their own (the maintenance timer calls it). */
  constructor(core: Core, opts: BufferOptions, persistAcks: () => void) {
    this.#core = core;
    this.#freeDisk = opts.freeDisk ?? defaultFreeDisk;
    this.#persistAcks = persistAcks;
  }

  /** The owner row could not be written at open for want of space. */
  startedFull(error: string): void {
    this.full = { since: this.#core.now(), error };
    this.retryAt = this.#core.now() + 1000;
  }

  /** Called once the file is open: the start-up state of the disk and the reserve file. */
  afterOpen(startedFull: string | undefined): void {
    const core = this.#core;
    if (startedFull !== undefined && !this.full) this.startedFull(startedFull);
    this.reserve = core.config.reserve > 0 ? "released" : "off";
    // Started on a full disk: the reserve makes the room the first commits need.
    if (this.full) releaseReserve(core.path);
    else this.#ensureReserve();
    if (this.reserve === "released" || this.full) this.#scheduleMaintain();
    this.check();
  }

  /** Whether commits are refused now (the disk was full less than a second ago). */
  refusing(): boolean {
    return this.full !== null && this.#core.now() < this.retryAt;
  }

  /** Logs and forgets the disk-full state after a commit succeeded. */
  recovered(): void {
    if (!this.full) return;
    this.#core.log.info("buffer takes readings again after the disk was full", {
      fullForMs: this.#core.now() - this.full.since,
    });
    this.full = null;
  }

  /** A failed commit: when for want of space, refuse commits for a second and free the reserve. */
  commitFailed(e: unknown, now: number): void {
    if (!isDiskFull(e)) return;
    const core = this.#core;
    const error = (e as Error)?.message ?? String(e);
    this.retryAt = now + 1000;
    if (!this.full) {
      this.full = { since: now, error };
      core.log.error(
        "DISK FULL: buffer commits fail; refusing new readings (senders are told to resend), forwarding and evicting go on",
        { file: core.path, error, reserve: this.reserve },
      );
    }
    if (this.reserve === "ready" && releaseReserve(core.path)) {
      this.reserve = "released";
      core.log.warn("released the buffer's reserve file so eviction and checkpoints can run", {
        file: reservePath(core.path),
        bytes: core.config.reserve,
      });
    }
    this.#scheduleMaintain();
  }

  /** Free space, at every commit (one statfs, ~2 µs): a floor checked now and then is overrun. */
  check(): void {
    const core = this.#core;
    // Space came back since the reserve went: take it back before deciding the disk is low.
    if (this.reserve === "released" && this.#ensureReserve()) {
      core.log.info("disk space is back: buffer reserve file recreated", {
        file: reservePath(core.path),
      });
    }
    try {
      this.freeBytes = this.#freeDisk(core.path);
    } catch {
      this.freeBytes = null;
    }
    this.low = (this.freeBytes !== null && this.freeBytes < core.config.minFreeDisk) ||
      this.reserve === "released";
  }

  /** Stops the maintenance timer. */
  close(): void {
    clearTimeout(this.#maintainTimer);
  }

  /**
   * Creates the reserve file when it is missing and the disk has room for it with at least
   * max(minFreeDisk, reserve) left over; true when the reserve is in place (or turned off).
   */
  #ensureReserve(): boolean {
    const core = this.#core;
    const size = core.config.reserve;
    if (size <= 0) {
      this.reserve = "off";
      return true;
    }
    const file = reservePath(core.path);
    try {
      if (Deno.statSync(file).size >= size) {
        this.reserve = "ready";
        return true;
      }
    } catch { /* missing */ }
    let free: number;
    try {
      free = this.#freeDisk(core.path);
    } catch {
      return false;
    }
    if (free < size + Math.max(core.config.minFreeDisk, size)) return false;
    const tmp = `${file}.tmp`;
    try {
      // Real bytes: a sparse file would reserve nothing.
      const f = Deno.openSync(tmp, { create: true, write: true, truncate: true });
      try {
        const chunk = new Uint8Array(Math.min(size, 1 << 20));
        for (let done = 0; done < size;) {
          done += f.writeSync(chunk.subarray(0, Math.min(chunk.length, size - done)));
        }
      } finally {
        f.close();
      }
      Deno.renameSync(tmp, file);
      this.reserve = "ready";
      return true;
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch { /* never created */ }
      return false;
    }
  }

  #scheduleMaintain(): void {
    if (this.#core.closed || this.#maintainTimer !== undefined) return;
    this.#maintainTimer = setTimeout(() => this.#maintain(), 1000);
  }

  /**
   * Once a second while the disk is full or the reserve is released: persists acknowledgements,
   * shrinks the WAL, and recreates the reserve when space came back.
   */
  #maintain(): void {
    const core = this.#core;
    this.#maintainTimer = undefined;
    if (core.closed) return;
    if (core.mirror.ackDirty) this.#persistAcks();
    if (this.full) {
      try {
        core.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch { /* a reader holds it, or no room yet: next time */ }
    }
    if (this.reserve === "released" && this.#ensureReserve()) {
      core.log.info("disk space is back: buffer reserve file recreated", {
        file: reservePath(core.path),
      });
    }
    if (this.full && this.reserve !== "released") {
      // Room again (the reserve is back, or there is none to wait for): a one-row commit tells.
      try {
        core.transaction(() => core.setMeta.run("next_seq", core.mirror.nextSeq));
        this.recovered();
      } catch { /* still full; commitFailed keeps this going */ }
    }
    if (this.reserve === "released" || this.full) this.#scheduleMaintain();
  }
}
