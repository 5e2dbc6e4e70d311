import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { AdapterContext } from "../../src/adapter.ts";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import type { Logger } from "../../src/log.ts";
import type { Reading } from "../../src/reading.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { type ExecConfig, execSchema } from "./config.ts";
import { exec } from "./mod.ts";
import { LineSplitter } from "./_lines.ts";
import { parseLine } from "./_parse.ts";

const EXAMPLE = new URL("./example_sensor.py", import.meta.url).pathname;

function config(raw: Record<string, unknown>): ExecConfig {
  const ctx = new Ctx();
  const v = execSchema.check(raw, ctx, []);
  assert.deepEqual(ctx.issues, []);
  assert.notEqual(v, INVALID);
  return v as ExecConfig;
}

interface Run {
  readings: Reading[];
  counters: Map<string, number>;
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
  /** Aborts and resolves once the adapter returned. */
  stop(): Promise<void>;
}

function run(cfg: ExecConfig): Run {
  const controller = new AbortController();
  const readings: Reading[] = [];
  const counters = new Map<string, number>();
  const logs: Run["logs"] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    logs.push({ level, msg, fields });
  const log: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => log,
  };
  const ctx: AdapterContext<ExecConfig> = {
    name: "ext",
    config: cfg,
    log,
    signal: controller.signal,
    emit: (rs) => {
      readings.push(...rs);
      return Promise.resolve({ accepted: rs.length, rejected: 0, seqs: [] });
    },
    setDeviceState: () => {},
    count: (n, by = 1) => counters.set(n, (counters.get(n) ?? 0) + by),
    setWriter: () => {},
  };
  const done = exec.start(ctx);
  return {
    readings,
    counters,
    logs,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

const sh = (script: string, extra: Record<string, unknown> = {}) =>
  config({ command: "sh", args: ["-c", script], restartDelay: "50ms", ...extra });

Deno.test("parseLine() takes objects and arrays, defaults ts, and refuses malformed lines", () => {
  const now = 1_800_000_000_000;
  assert.deepEqual(parseLine(`{"device":"d","metric":"m","value":1.5,"unit":"V"}`, now), {
    readings: [{ device: "d", metric: "m", value: 1.5, unit: "V", ts: now }],
  });
  assert.deepEqual(
    parseLine(
      `[{"device":"d","metric":"a","value":true,"ts":5},{"device":"d","metric":"b","value":"x","ts":"2027-01-01T00:00:00Z"}]`,
      now,
    ),
    {
      readings: [
        { device: "d", metric: "a", value: true, ts: 5 },
        { device: "d", metric: "b", value: "x", ts: Date.UTC(2027, 0, 1) },
      ],
    },
  );
  assert.deepEqual(parseLine("   ", now), { readings: [] });
  assert.deepEqual(parseLine("hello", now), { error: "not JSON" });
  assert.deepEqual(parseLine(`{"device":"d","metric":"m"}`, now), {
    error: `"value" must be a number, boolean or string`,
  });
  assert.deepEqual(
    parseLine(`[{"device":"d","metric":"m","value":1},{"metric":"m","value":1}]`, now),
    {
      error: `item 1: "device" must be a non-empty string`,
    },
  );
  assert.deepEqual(parseLine(`{"device":"d","metric":"m","value":1,"ts":"yesterday"}`, now), {
    error: `"ts" must be ms since the epoch or an ISO 8601 time`,
  });
});

Deno.test("LineSplitter skips over-long lines without buffering them", () => {
  const lines: string[] = [];
  const long: number[] = [];
  const s = new LineSplitter(16, { line: (t) => lines.push(t), tooLong: (n) => long.push(n) });
  const enc = new TextEncoder();
  s.push(enc.encode("short\r\nsp"));
  s.push(enc.encode("lit\n"));
  const huge = new Uint8Array(1024 * 1024).fill(0x78);
  for (let i = 0; i < 10; i++) s.push(huge);
  s.push(enc.encode("\nlast"));
  s.end();
  assert.deepEqual(lines, ["short", "split", "last"]);
  assert.deepEqual(long, [10 * 1024 * 1024]);
});

Deno.test("exec: valid lines arrive, garbage and over-long lines are counted and skipped, stderr is logged", async () => {
  const r = run(sh(
    `echo '{"device":"d1","metric":"t","value":1}'
     echo 'garbage'
     echo '{"device":"d1","metric":"t"}'
     head -c 200000 /dev/zero | tr '\\0' x; echo
     echo '[{"device":"d1","metric":"t","value":2},{"device":"d2","metric":"on","value":true,"unit":""}]'
     echo 'something went sideways' >&2
     exec sleep 30`,
  ));
  try {
    await waitFor("three readings", () => r.readings.length === 3);
    await waitFor("stderr logged", () => r.logs.some((l) => l.msg === "something went sideways"));
    assert.deepEqual(r.readings.map((x) => [x.device, x.metric, x.value]), [
      ["d1", "t", 1],
      ["d1", "t", 2],
      ["d2", "on", true],
    ]);
    assert.equal(r.counters.get("invalid_lines"), 3);
    const stderr = r.logs.find((l) => l.msg === "something went sideways");
    assert.deepEqual(stderr?.fields, { stream: "stderr" });
    assert.ok(r.logs.some((l) => l.level === "warn" && l.msg === "skipped stdout line"));
  } finally {
    await r.stop();
  }
  assert.equal(r.counters.get("kills") ?? 0, 0);
});

Deno.test("exec: a crashing program is restarted with growing delays", async () => {
  const r = run(
    sh(`echo '{"device":"d","metric":"run","value":1}'; exit 3`, {
      restartDelay: "20ms",
      maxRestartDelay: "160ms",
    }),
  );
  try {
    await waitFor("five runs", () => r.readings.length >= 5);
    const starts = r.logs.filter((l) => l.msg === "program started").length;
    assert.ok(starts >= 5);
    const delays = r.logs.filter((l) => l.msg.startsWith("program exited with code 3; restarting"))
      .map((l) => l.fields?.in);
    assert.deepEqual(delays.slice(0, 5), ["20ms", "40ms", "80ms", "160ms", "160ms"]);
  } finally {
    await r.stop();
  }
});

Deno.test("exec: a flood of output and over-long lines stays bounded and valid lines still arrive", async () => {
  const r = run(sh(
    `yes '{"device":"f","metric":"n","value":1}' | head -n 200000
     head -c 20000000 /dev/zero | tr '\\0' y
     echo
     yes 'noise' | head -n 50000 >&2
     echo '{"device":"f","metric":"end","value":true}'
     exec sleep 30`,
    { maxLineLength: "64KB", stderrLinesPerSecond: 100 },
  ));
  const before = Deno.memoryUsage().rss;
  try {
    await waitFor("the final reading", () => r.readings.some((x) => x.metric === "end"), 30_000);
    assert.equal(r.readings.filter((x) => x.metric === "n").length, 200_000);
    assert.equal(r.counters.get("invalid_lines"), 1);
    await waitFor("stderr flood dropped", () => (r.counters.get("stderr_dropped") ?? 0) >= 49_000);
    assert.ok(r.logs.filter((l) => l.msg === "noise").length <= 200);
    // 20 MB without a newline was never held: growth stays well under its size.
    const growth = Deno.memoryUsage().rss - before;
    assert.ok(growth < 150 * 1024 * 1024, `rss grew by ${growth} bytes`);
  } finally {
    await r.stop();
  }
});

Deno.test("exec: stopping sends SIGTERM, then SIGKILL to a program that ignores it", async () => {
  const r = run(
    sh(`trap '' TERM; echo '{"device":"d","metric":"m","value":1}'; while :; do sleep 0.05; done`, {
      stopTimeout: "300ms",
    }),
  );
  await waitFor("a reading", () => r.readings.length === 1);
  const pid = r.logs.find((l) => l.msg === "program started")?.fields?.pid as number;
  const t0 = Date.now();
  await r.stop();
  const took = Date.now() - t0;
  assert.equal(r.counters.get("kills"), 1);
  assert.ok(took >= 300 && took < 3000, `stop took ${took}ms`);
  assert.ok(r.logs.some((l) => l.msg === "program ignored SIGTERM; killing it"));
  // The whole process group is gone, including the `sleep` it started.
  const ps = new Deno.Command("ps", { args: ["-o", "pid=,stat=", "-g", String(pid)] }).outputSync();
  const alive = new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    l.trim() && !/ Z/.test(l)
  );
  assert.deepEqual(alive, []);

  const polite = run(config({ command: "python3", args: [EXAMPLE, "0.05"] }));
  await waitFor("example readings", () => polite.readings.length >= 3);
  const t1 = Date.now();
  await polite.stop();
  assert.equal(polite.counters.get("kills") ?? 0, 0);
  assert.ok(Date.now() - t1 < 2000);
  assert.deepEqual(new Set(polite.readings.map((x) => x.device)), new Set(["room-1", "room-2"]));
  assert.ok(polite.logs.some((l) => l.msg.startsWith("example sensor started")));
});

Deno.test("exec: example.yaml validates and its program produces readings", async () => {
  const doc = parseYaml(await Deno.readTextFile(new URL("./example.yaml", import.meta.url)));
  const { type, name: _name, ...own } = doc.adapters[0];
  assert.equal(type, "exec");
  const cfg = config(own);
  // The example runs from the repository root; pin the path and speed it up for the test.
  const r = run({
    ...cfg,
    args: [EXAMPLE, "0.05"],
    cwd: new URL("../..", import.meta.url).pathname,
  });
  try {
    await waitFor(
      "readings of both rooms",
      () => new Set(r.readings.map((x) => x.device)).size === 2,
    );
    assert.ok(r.readings.every((x) => typeof x.ts === "number"));
  } finally {
    await r.stop();
  }
});

Deno.test("exec: a program that cannot start is retried, not fatal", async () => {
  const r = run(config({ command: "/nonexistent/adapter", restartDelay: "20ms" }));
  try {
    await waitFor("two failed starts", () => (r.counters.get("restarts") ?? 0) >= 2);
    assert.ok(
      r.logs.some((l) => /program failed: Cannot start "\/nonexistent\/adapter"/.test(l.msg)),
    );
  } finally {
    await r.stop();
  }
});

Deno.test("parseLine() refuses deep and wide JSON before parsing it, with the reason", () => {
  assert.deepEqual(parseLine("[".repeat(60_000), 0), {
    error: "JSON nested deeper than 32 levels",
    reason: "depth",
  });
  const wide = `[${'{"device":"d","metric":"m","value":1},'.repeat(4000)}1]`;
  assert.equal((parseLine(wide, 0) as { reason?: string }).reason, "values");
});
