/**
 * `outpost export` tells how far it is: rows done of the total and a percentage on stderr, at
 * most once a second, while stdout carries the CSV and nothing else.
 */
import assert from "node:assert/strict";
import { Buffer, countReadings } from "../src/buffer/mod.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("export --progress prints rows done of the total with a percentage to stderr; stdout stays the CSV", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-export-progress-" });
  try {
    const path = `${dir}/buffer.db`;
    const c = bufferSchema.check({ path }, new Ctx(), []);
    if (c === INVALID) throw new Error("bad config");
    const b = Buffer.open(c, { log: silentLogger() });
    const t0 = Date.UTC(2026, 10, 1);
    const rows = 600_000;
    for (let i = 0; i < rows; i += 10_000) {
      await b.append(
        Array.from({ length: 10_000 }, (_, k) => ({
          device: `pump-${(i + k) % 4}`,
          metric: "flow",
          value: i + k,
          unit: "l/min",
          ts: t0 + (i + k) * 1000,
        })),
      );
    }
    b.close();
    const want = countReadings(path, { device: "pump-1" });
    assert.equal(want, rows / 4);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "export", "--db", path, "--progress"],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, stderr);
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines[0], "seq,time,device,metric,value,unit,forwarded");
    assert.equal(lines.length, rows + 1, "stdout is the CSV alone");
    assert.ok(!stdout.includes("export:"));
    const progress = stderr.trimEnd().split("\n").filter((l) => l.startsWith("export: "));
    assert.equal(progress.at(-1), "export: 600,000 of 600,000 rows (100%)", stderr);
    assert.ok(progress.length >= 2, `a line a second while it runs:\n${stderr}`);
    let last = -1;
    for (const l of progress) {
      const m = /^export: ([\d,]+) of 600,000 rows \((\d+)%\)$/.exec(l);
      assert.ok(m, l);
      const done = Number(m[1].replaceAll(",", ""));
      assert.equal(Number(m[2]), Math.floor(done * 100 / rows));
      assert.ok(done > last);
      last = done;
    }
    // Without --progress and without a terminal: silent, as a pipe expects.
    const quiet = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "export",
        "--db",
        path,
        "--device",
        "pump-1",
        "--out",
        `${dir}/p.csv`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(quiet.code, 0);
    assert.equal(
      new TextDecoder().decode(quiet.stderr),
      `exported ${want} readings to ${dir}/p.csv\n`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
