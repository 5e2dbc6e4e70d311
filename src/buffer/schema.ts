/**
 * Versions of the buffer file's schema. The file carries the version it was last migrated to in
 * `PRAGMA user_version` and, in `meta`, the oldest schema version a build must know to use it
 * (`schema_compat`). Migrations are additive (new tables, columns with defaults, indexes), so an
 * A/B rollback to the previous build keeps reading and forwarding what the newer one stored; a
 * migration that older builds cannot live with raises `schema_compat`, and those builds then
 * refuse the file — before writing anything — instead of damaging it.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import { SERIES_INDEX_SQL } from "./series_index.ts";

/**
 * The base schema (version 1): created if missing on every open, so it stays idempotent. Later
 * steps are {@linkcode MIGRATIONS}.
 */
export const BASE_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS series(
  id INTEGER PRIMARY KEY, device TEXT NOT NULL, metric TEXT NOT NULL,
  unit TEXT NOT NULL, kind INTEGER NOT NULL, UNIQUE(device, metric, unit, kind)) STRICT;
CREATE TABLE IF NOT EXISTS readings(
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid INTEGER NOT NULL, value ANY) STRICT;
-- Readings stored but never forwarded, numbered from the same sequence as readings. A table of
-- their own keeps them out of the forwarder's reads and the acknowledged ranges entirely.
CREATE TABLE IF NOT EXISTS local_readings(
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid INTEGER NOT NULL, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS acked(lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS aside(
  lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL) STRICT;
`;

/** One step of the schema: `sql` brings a file from `version - 1` to `version`. */
export interface Migration {
  version: number;
  sql: string;
  /** The oldest schema version a build must know to use the file after this step; the
   * previous `compat` when absent (an additive step). */
  compat?: number;
}

/**
 * The steps after the base schema. Version 1 is the base schema itself (files written before
 * versioning have user_version 0 and the same tables).
 */
const MIGRATIONS: readonly Migration[] = [
  // 2: the block index by series (series_index.ts: chunks and chunk_sids); builds before it
  // ignore the tables.
  { version: 2, sql: SERIES_INDEX_SQL },
];

/**
 * TEST-ONLY: a build stamped by `build.ts --test-schema next` knows one additive step more, so
 * that the update tests can run a real newer release over the file and roll back from it.
 */
function testMigrations(): Migration[] {
  const mode = (globalThis as { __OUTPOST_TEST_SCHEMA__?: string }).__OUTPOST_TEST_SCHEMA__;
  if (mode !== "next") return [];
  return [{
    version: MIGRATIONS.length + 2,
    sql: `CREATE TABLE IF NOT EXISTS test_next_schema(k TEXT PRIMARY KEY, v ANY) STRICT;
ALTER TABLE series ADD COLUMN test_note TEXT;`,
  }];
}

function migrations(): Migration[] {
  return [...MIGRATIONS, ...testMigrations()];
}

/** The schema version this build migrates files to. */
export function schemaVersion(): number {
  return Math.max(1, ...migrations().map((m) => m.version));
}

/** A buffer file this build cannot use; nothing in it was changed. */
export class SchemaTooNewError extends Error {
  override name = "SchemaTooNewError";
}

/** The file's schema version and the oldest version a build must know to use it. */
export function readSchemaVersion(db: DatabaseSync): { version: number; compat: number } {
  const version = Number(
    (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
  );
  const hasMeta = db.prepare(
    "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
  ).get();
  const row = hasMeta
    ? db.prepare("SELECT value FROM meta WHERE key = 'schema_compat'").get()
    : undefined;
  return { version, compat: Number(row?.value ?? Math.min(version, 1)) };
}

/**
 * Brings an open buffer file to this build's schema in one transaction: refuses a file whose
 * `schema_compat` is above what this build knows (before writing anything), creates the base
 * tables (`base`, idempotent), runs the missing migrations, and stamps the version. A file from
 * a newer, compatible build keeps its higher version.
 */
export function prepareSchema(
  db: DatabaseSync,
  base: string,
  opts: { path: string; log: Logger },
): { from: number; to: number } {
  const ours = schemaVersion();
  const found = readSchemaVersion(db);
  if (found.compat > ours) {
    throw new SchemaTooNewError(
      `"${opts.path}" has buffer schema version ${found.version}, which needs a build that knows schema ${found.compat} or later; this build knows up to ${ours}. Nothing in the file was changed: run the newer release again (or a build with schema ${found.compat})`,
    );
  }
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(base);
    let compat = found.compat;
    for (const m of migrations()) {
      if (m.version <= found.version) continue;
      db.exec(m.sql);
      compat = Math.max(compat, m.compat ?? compat);
    }
    const to = Math.max(found.version, ours);
    if (to !== found.version) db.exec(`PRAGMA user_version = ${to}`);
    db.prepare(
      "INSERT INTO meta(key, value) VALUES ('schema_compat', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    ).run(Math.max(compat, 1));
    db.exec("COMMIT");
    if (found.version > ours) {
      opts.log.warn("buffer file has a newer schema (additive); using it as it is", {
        file: opts.path,
        fileSchema: found.version,
        buildSchema: ours,
      });
    } else if (to > found.version && found.version > 0) {
      opts.log.info("buffer schema migrated", { file: opts.path, from: found.version, to });
    }
    return { from: found.version, to };
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}
