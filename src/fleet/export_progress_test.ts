import assert from "node:assert/strict";
import { PageAssembler, percentOf } from "./export.ts";
import { formatProgress } from "./format.ts";
import { CommandRun } from "./run.ts";
import type { CommandReply } from "../protocol/mod.ts";
import { QUERY_COLUMNS } from "../protocol/mod.ts";

const reply = (r: Partial<CommandReply>): CommandReply => ({
  id: "q1",
  gatewayId: "gw-1",
  cmd: "query",
  status: "page",
  final: false,
  ts: 0,
  ...r,
});

Deno.test("PageAssembler takes the total the gateway counted; progress is rows of it, whatever the timestamps", () => {
  const asm = new PageAssembler({ device: "pump-1" });
  assert.equal(asm.total, null);
  asm.add(reply({ status: "accepted", result: { device: "pump-1", total: 4 } }));
  assert.equal(asm.total, 4);
  // Backfilled data: sequence order, timestamps going back in time.
  const rows = [[1, 9000, "pump-1", "p", 1, null, true], [2, 1000, "pump-1", "p", 2, null, true]];
  const got = asm.add(reply({
    page: 0,
    result: { columns: QUERY_COLUMNS, rows, lastSeq: 2 },
    progress: { done: 2, total: 4 },
  }));
  assert.equal(got.length, 2);
  assert.equal(percentOf(asm.rows, asm.total), 50);
  assert.equal(percentOf(5, 4), 100, "never past 100 %");
  assert.equal(percentOf(0, 0), 100);
  assert.equal(percentOf(3, null), null);
});

Deno.test("progress lines never repeat the accepted reply's result or an earlier progress", () => {
  const run = new CommandRun({ id: "r", cmd: "update-apply", fleetWide: false, timeoutMs: 60_000 });
  run.addTarget("gw-1", "r1", { startedAt: 1, version: "1.0.0" });
  run.seal();
  const lines: string[] = [];
  run.onUpdate((t) => lines.push(formatProgress(run.summary(), t)));
  const r = (x: Partial<CommandReply>) =>
    run.handleReply(reply({ id: "r1", cmd: "update-apply", ...x }));
  r({ status: "accepted", result: { running: "1.0.0" } });
  r({ status: "progress", progress: { done: 0, total: 1000, note: "downloading 1.1.0" } });
  r({ status: "progress", progress: { done: 500, total: 1000, note: "downloading 1.1.0" } });
  r({ status: "progress" });
  assert.match(lines[0], /gw-1 accepted \(\{"running":"1\.0\.0"\}\)$/);
  assert.match(lines[1], /gw-1 progress \(0\/1000 downloading 1\.1\.0\)$/);
  assert.match(lines[2], /gw-1 progress \(500\/1000 downloading 1\.1\.0\)$/);
  assert.match(lines[3], /gw-1 progress$/);
  run.expire();
});
