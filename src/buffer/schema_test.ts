import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { Ctx, INVALID } from "../config/schema.ts";
import { bufferSchema } from "../config/gateway.ts";
import { silentLogger } from "../log.ts";
import { Buffer } from "./buffer.ts";
import { readSchemaVersion, schemaVersion } from "./schema.ts";

function open(path: string): Buffer {
  const c = bufferSchema.check({ path, minFreeDisk: 0 }, new Ctx(), []);
  if (c === INVALID) throw new Error("bad test config");
  return Buffer.open(c, { log: silentLogger() });
}

function versions(path: string) {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return readSchemaVersion(db);
  } finally {
    db.close();
  }
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

const reading = (i: number) => ({ device: "d", metric: "m", value: i, ts: 1_700_000_000_000 + i });

Deno.test("a new buffer file carries the schema version; a file from before versioning is stamped", async () => {
  const dir = await Deno.makeTempDir();
  const b = open(`${dir}/a.db`);
  await b.append([reading(1)]);
  b.close();
  assert.deepEqual(versions(`${dir}/a.db`), { version: schemaVersion(), compat: 1 });
  // A file written before versioning: the same tables, user_version 0, no schema_compat.
  const db = new DatabaseSync(`${dir}/a.db`);
  db.exec("PRAGMA user_version = 0; DELETE FROM meta WHERE key = 'schema_compat'");
  db.close();
  assert.deepEqual(versions(`${dir}/a.db`), { version: 0, compat: 0 });
  const again = open(`${dir}/a.db`);
  assert.equal(again.stats().rows, 1);
  again.close();
  assert.deepEqual(versions(`${dir}/a.db`), { version: schemaVersion(), compat: 1 });
});

Deno.test("a file from a newer additive schema is used as it is and keeps its version", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/b.db`;
  const b = open(path);
  await b.append([reading(1)]);
  b.close();
  // What a newer build with one additive step leaves behind.
  const db = new DatabaseSync(path);
  db.exec(`ALTER TABLE series ADD COLUMN note TEXT; PRAGMA user_version = ${schemaVersion() + 1}`);
  db.close();
  const older = open(path);
  await older.append([reading(2), { ...reading(3), device: "new-device" }]);
  assert.equal(older.stats().rows, 3);
  older.close();
  assert.deepEqual(versions(path), { version: schemaVersion() + 1, compat: 1 });
});

Deno.test("a file from a future incompatible schema is refused with a clear message and not changed", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.db`;
  const b = open(path);
  await b.append([reading(1), reading(2)]);
  b.close();
  const future = schemaVersion() + 5;
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA user_version = ${future}`);
  db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_compat'").run(future);
  db.close();
  const before = await sha256(path);
  assert.throws(
    () => open(path),
    new RegExp(
      `has buffer schema version ${future}, which needs a build that knows schema ${future} or later; this build knows up to ${schemaVersion()}\\. Nothing in the file was changed`,
    ),
  );
  assert.equal(await sha256(path), before);
  // Nothing was quarantined either: the newer build finds every reading where it left it.
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /corrupt/.test(n)),
    [],
  );
  const check = new DatabaseSync(path, { readOnly: true });
  assert.equal((check.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n, 2);
  check.close();
});
