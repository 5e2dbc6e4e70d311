import assert from "node:assert/strict";
import { type AuditEntry, AuditTrail, readAuditFile } from "./audit.ts";

const entry = (i: number): AuditEntry => ({
  ts: 1_700_000_000_000 + i,
  id: `r${i}`,
  cmd: "status",
  target: "gw",
  keyid: i % 2 ? "abcd" : null,
  verified: i % 2 === 1,
  result: i % 2 ? "done" : "unsigned",
});

Deno.test("AuditTrail keeps the newest maxRows in memory and on disk (mode 0600), across a reload", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/commands-audit.jsonl`;
  const t = new AuditTrail(path, { maxRows: 10 });
  assert.equal(t.load(), undefined);
  await Promise.all(Array.from({ length: 35 }, (_, i) => t.record(entry(i))));
  assert.deepEqual(t.recent(3).map((e) => e.id), ["r32", "r33", "r34"]);
  assert.equal(t.recent().length, 10);
  const lines = (await Deno.readTextFile(path)).trim().split("\n");
  assert.ok(lines.length <= 12, `${lines.length} rows on disk`);
  assert.equal(JSON.parse(lines.at(-1)!).id, "r34");
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  assert.deepEqual((await readAuditFile(path, 2)).map((e) => e.id), ["r33", "r34"]);
  // A torn last line (a crash mid-append) is skipped.
  await Deno.writeTextFile(path, '{"ts":1,"cmd":"pi', { append: true });
  const again = new AuditTrail(path, { maxRows: 10 });
  assert.equal(again.load(), undefined);
  assert.equal(again.recent().at(-1)!.id, "r34");
  assert.deepEqual(await readAuditFile(`${dir}/none.jsonl`), []);
  await Deno.remove(dir, { recursive: true });
});
