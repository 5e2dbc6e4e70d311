/**
 * Opening a buffer file: corrupt files are moved aside (quarantine) and a fresh one started, a
 * full disk at start is met by releasing the reserve file, the owner row makes this process the
 * one writer of the file, and the in-memory mirror is loaded from what the file holds.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { BufferConfig } from "../config/gateway.ts";
import { type BufferOwner, currentOwner, heldByOther, parseOwner } from "./owner.ts";
import { ensureSeriesIndex, indexedUpTo } from "./series_index.ts";
import { BASE_SCHEMA, prepareSchema } from "./schema.ts";
import { BufferError, isDiskFull } from "./errors.ts";
import { type BufferOptions, COUNTERS, type SeqRange } from "./types.ts";
import type { Core } from "./_core.ts";
import { type Disk, nearlyFull, releaseReserve } from "./_disk.ts";
import { SeriesDict } from "./_series.ts";

/**
 * Page size of new buffer files. A commit of a few readings writes about two pages to the WAL
 * (the last leaf of `readings` and `meta`), so the page size is the wear per small commit: 2 KB
 * halves it against SQLite's 4 KB default at no cost to ingest (1 KB costs ingest ~40 %).
 */
const PAGE_SIZE = 2048;

function isCorruption(e: unknown): boolean {
  const msg = String((e as Error)?.message ?? e);
  return /malformed|not a database|corrupt|SQLITE_CORRUPT|SQLITE_NOTADB|file is not a database/i
    .test(msg);
}

function inUse(o: BufferOwner): string {
  let what = "";
  try {
    what = Deno.readTextFileSync(`/proc/${o.pid}/cmdline`).split("\0").filter(Boolean).join(" ");
  } catch { /* gone or hidden */ }
  return `in use by process ${o.pid}${
    what ? ` (${what.slice(0, 200)})` : ""
  }, which is still running; two gateways must not write one buffer. Stop that one first (systemctl stop outpost), or give this one its own buffer.path`;
}

function quarantine(path: string, now: number): string {
  const stamp = new Date(now).toISOString().replace(/[:.]/g, "-");
  const aside = `${path}.corrupt-${stamp}`;
  Deno.renameSync(path, aside);
  for (const suffix of ["-wal", "-shm"]) {
    try {
      Deno.renameSync(path + suffix, aside + suffix);
    } catch { /* absent */ }
  }
  return aside;
}

/** What {@linkcode openFile} hands the buffer it starts. */
export interface Opened {
  db: DatabaseSync;
  /** Files moved aside because they were corrupt. */
  quarantined: string[];
  /** The error that made the reserve go at start (the disk was full), if it did. */
  startedFull: string | undefined;
}

/**
 * Opens (or creates) `config.path` and calls `start` on it, which loads the file. A file SQLite
 * reports as corrupt is moved aside with a loud error and a fresh one started in its place; on a
 * full disk the reserve file is released once to make room for opening.
 */
export function openFile<T>(
  config: BufferConfig,
  opts: BufferOptions,
  start: (opened: Opened) => T,
): T {
  const path = config.path;
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (dir) Deno.mkdirSync(dir, { recursive: true });
  const quarantined: string[] = [];
  let startedFull: string | undefined;
  for (let attempt = 0;; attempt++) {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      return start({ db, quarantined, startedFull });
    } catch (e) {
      try {
        db?.close();
      } catch { /* already unusable */ }
      // Opening writes (owner row, WAL): on a full disk the reserve makes the room for it.
      if (
        startedFull === undefined && (isDiskFull(e) || nearlyFull(path, opts)) &&
        releaseReserve(path)
      ) {
        startedFull = (e as Error).message;
        opts.log.error("disk full at start: released the buffer's reserve file to open it", {
          file: path,
          error: startedFull,
        });
        attempt--;
        continue;
      }
      if (!isCorruption(e) || attempt > 0) {
        throw new BufferError(`Cannot open buffer "${path}": ${(e as Error).message}`, {
          cause: e,
        });
      }
      const aside = quarantine(path, opts.now?.() ?? Date.now());
      quarantined.push(aside);
      opts.log.error(
        "BUFFER FILE IS CORRUPT: moved aside, starting a fresh buffer; readings not yet forwarded from it are NOT in the new buffer",
        { file: path, movedTo: aside, reason: (e as Error).message },
      );
    }
  }
}

/** Takes the file for this process, or throws naming the running process that holds it. */
function claim(core: Core, disk: Disk): void {
  const db = core.db;
  const self = currentOwner();
  db.exec("BEGIN IMMEDIATE");
  try {
    const row = db.prepare("SELECT value FROM meta WHERE key = 'owner'").get();
    const held = parseOwner(row?.value);
    if (held && heldByOther(held, self)) throw new BufferError(inUse(held));
    core.owner = JSON.stringify(self);
    db.prepare(
      "INSERT INTO meta(key, value) VALUES ('owner', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    ).run(core.owner);
    db.exec("COMMIT");
  } catch (e) {
    // SQLite ends a transaction itself on some errors (SQLITE_FULL): a ROLLBACK then would
    // throw "no transaction is active" and hide the real error.
    if (db.isTransaction) db.exec("ROLLBACK");
    if (!isDiskFull(e)) throw e;
    // No other live holder (checked above) and no room to say so: the row is written with the
    // first commit that succeeds. Until then nothing is written, so nothing can clash.
    core.ownerUnwritten = true;
    disk.startedFull((e as Error).message);
  }
}

/**
 * Sets the file up (pragmas, optional integrity check, schema), claims it, and loads the mirror
 * and the series dictionary from it. `pending` is left to the acknowledgement part to count.
 */
export function loadFile(core: Core, disk: Disk): void {
  const db = core.db;
  db.exec("PRAGMA busy_timeout = 5000");
  // A new file only (an existing one keeps its page size): see PAGE_SIZE.
  db.exec(`PRAGMA page_size = ${PAGE_SIZE}`);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  if (core.config.integrityCheck) {
    const row = db.prepare("PRAGMA quick_check(1)").get() as Record<string, unknown>;
    const verdict = String(Object.values(row ?? {})[0]);
    if (verdict !== "ok") throw new BufferError(`database disk image is malformed: ${verdict}`);
  }
  prepareSchema(db, BASE_SCHEMA, { path: core.path, log: core.log });
  ensureSeriesIndex(db);
  claim(core, disk);
  const meta = new Map<string, unknown>();
  for (const r of db.prepare("SELECT key, value FROM meta").all()) {
    meta.set(String(r.key), r.value);
  }
  core.setMeta = db.prepare(
    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  );
  if (!meta.has("epoch")) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    core.epoch = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    core.setMeta.run("epoch", core.epoch);
    core.setMeta.run("created", core.now());
  } else core.epoch = String(meta.get("epoch"));
  const m = core.mirror;
  const maxSeq = Number(
    (db.prepare(
      "SELECT max(m) AS m FROM (SELECT max(seq) AS m FROM readings UNION ALL SELECT max(seq) FROM local_readings)",
    ).get() as { m: number | null }).m ?? 0,
  );
  m.nextSeq = Math.max(Number(meta.get("next_seq") ?? 1), maxSeq + 1);
  m.floor = Number(meta.get("ack_floor") ?? 0);
  for (const c of COUNTERS) m.counters[c] = Number(meta.get(c) ?? 0);
  m.acked = (db.prepare("SELECT lo, hi FROM acked ORDER BY lo").all() as {
    lo: number;
    hi: number;
  }[]).map((r) => [r.lo, r.hi] as SeqRange).filter(([, hi]) => hi > m.floor);
  core.series = new SeriesDict(db, core.fault);
  m.localRows = Number(
    (db.prepare("SELECT count(*) AS n FROM local_readings").get() as { n: number }).n,
  );
  m.rows = m.localRows + Number(
    (db.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n,
  );
  m.indexedHi = indexedUpTo(db);
}
