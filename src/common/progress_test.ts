import assert from "node:assert/strict";
import { ProgressLine } from "./progress.ts";

Deno.test("ProgressLine shows done of total with a percentage, at most once a second", () => {
  let now = 0;
  const out: string[] = [];
  const p = new ProgressLine({
    label: "export",
    unit: "rows",
    write: (t) => out.push(t),
    tty: false,
    now: () => now,
  });
  p.total = 6_500_000;
  for (let done = 0; done <= 6_500_000; done += 50_000) {
    now += 100;
    p.update(done);
  }
  p.finish(6_500_000);
  // 13 s of work: one line a second, and the last one.
  assert.equal(out.length, 14);
  assert.equal(out[0], "export: 450,000 of 6,500,000 rows (6%)\n");
  assert.equal(out.at(-1), "export: 6,500,000 of 6,500,000 rows (100%)\n");
});

Deno.test("ProgressLine redraws in place on a terminal and never shows more than 100 %", () => {
  const out: string[] = [];
  const p = new ProgressLine({ label: "x", unit: "rows", write: (t) => out.push(t), tty: true });
  p.total = 10;
  assert.equal(p.text(12), "x: 12 of 12 rows (100%)");
  p.finish(12);
  assert.deepEqual(out, ["\r\x1b[2Kx: 12 of 12 rows (100%)", "\n"]);
  p.total = null;
  assert.equal(p.text(3), "x: 3 rows");
});
