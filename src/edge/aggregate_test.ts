import assert from "node:assert/strict";
import { Ctx, INVALID } from "../config/schema.ts";
import type { Reading } from "../reading.ts";
import { AggregateStage } from "./aggregate.ts";
import { type AggregateConfig, aggregateSchema } from "./config.ts";

function spec(raw: Record<string, unknown>): AggregateConfig {
  const r = aggregateSchema.check(raw, new Ctx(), []);
  if (r === INVALID) throw new Error("bad spec");
  return r;
}

Deno.test("window results equal min/max/mean/last/count computed from the raw samples", () => {
  const T0 = 1_700_000_000_000; // a multiple of 10 s
  const clock = { t: T0 };
  const emitted: Reading[] = [];
  const stage = new AggregateStage(
    [spec({ device: "pump-*", metric: "temperature", window: "10s", raw: "drop" })],
    { emit: (rs) => emitted.push(...rs), now: () => clock.t },
  );
  const raw: Reading[] = [];
  let seed = 11;
  for (let i = 0; i < 1000; i++) {
    clock.t = T0 + i * 97;
    seed = (seed * 48271) % 2147483647;
    const r: Reading = {
      device: i % 3 ? "pump-1" : "pump-2",
      metric: "temperature",
      value: Math.round(seed / 2147483647 * 10000) / 100,
      unit: "C",
      ts: clock.t,
    };
    raw.push(r);
    const local: Reading[] = [];
    assert.deepEqual(stage.process([r], "modbus", local), [], "raw: drop keeps no raw sample");
    assert.deepEqual(local, [], "raw: drop stores no raw sample either");
  }
  // Silence: the timer closes the last windows.
  clock.t = T0 + 1000 * 97 + 10_000 + 2000;
  stage.tick();

  const expected = new Map<string, number>();
  const groups = Map.groupBy(raw, (r) => `${r.device}|${Math.floor(r.ts / 10_000) * 10_000}`);
  for (const [key, rs] of groups) {
    const [device, start] = key.split("|");
    const vs = rs.map((r) => r.value as number);
    const k = (fn: string) => `${device}|temperature.${fn}|${start}`;
    expected.set(k("min"), Math.min(...vs));
    expected.set(k("max"), Math.max(...vs));
    expected.set(k("mean"), vs.reduce((a, b) => a + b, 0) / vs.length);
    expected.set(k("last"), vs.at(-1)!);
    expected.set(k("count"), vs.length);
  }
  const got = new Map(emitted.map((r) => [`${r.device}|${r.metric}|${r.ts}`, r.value as number]));
  assert.equal(got.size, emitted.length, "each window emitted once");
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
  for (const [k, v] of expected) {
    assert.ok(Math.abs(got.get(k)! - v) < 1e-9, `${k}: ${got.get(k)} vs ${v}`);
  }
  assert.equal(emitted.find((r) => r.metric === "temperature.mean")?.unit, "C");
  assert.deepEqual(stage.stats(), { windows: groups.size, late: 0 });
});

Deno.test("raw: forward keeps raw samples; a late sample is counted, not merged", () => {
  const emitted: Reading[] = [];
  const clock = { t: 1_700_000_000_000 };
  const stage = new AggregateStage(
    [spec({ metric: "p", window: "1s", functions: ["count"], separator: "_", grace: 0 })],
    { emit: (rs) => emitted.push(...rs), now: () => clock.t },
  );
  const r = (ts: number, value: number | string): Reading => ({
    device: "d",
    metric: "p",
    value,
    ts,
  });
  const batch = [r(clock.t, 1), r(clock.t + 10, "text"), r(clock.t + 20, 2)];
  const local: Reading[] = [];
  assert.equal(stage.process(batch, "a", local), batch);
  assert.deepEqual(local, []);
  clock.t += 1000;
  stage.tick();
  assert.deepEqual(emitted, [{ device: "d", metric: "p_count", value: 2, ts: clock.t - 1000 }]);
  stage.process([r(clock.t - 500, 3)], "a", local);
  assert.equal(stage.stats().late, 1);
  assert.equal(stage.process([r(clock.t, 1)], "edge", local).length, 1, "own results pass");
});

Deno.test("raw: local moves raw samples to local storage; the strictest raw: of overlapping windows wins", () => {
  const T0 = 1_700_000_000_000;
  const clock = { t: T0 };
  const emitted: Reading[] = [];
  const stage = new AggregateStage([
    spec({ device: "pump-*", metric: "pressure", window: "1s", functions: ["mean"], raw: "local" }),
    spec({ device: "pump-9", metric: "pressure", window: "10s", functions: ["max"], raw: "drop" }),
    spec({ device: "fan-*", metric: "*", window: "1s", functions: ["count"] }),
  ], { emit: (rs) => emitted.push(...rs), now: () => clock.t });
  const r = (device: string, metric: string, value: number | string, dt = 0): Reading => ({
    device,
    metric,
    value,
    ts: T0 + dt,
  });
  const batch = [
    r("pump-1", "pressure", 4),
    r("pump-1", "mode", "auto"),
    r("fan-1", "speed", 900),
    r("pump-1", "pressure", 6, 10),
    r("pump-9", "pressure", 5),
    r("pump-1", "state", "text values are not aggregated"),
  ];
  const local: Reading[] = [];
  const kept = stage.process(batch, "modbus", local);
  assert.deepEqual(
    kept,
    [batch[1], batch[2], batch[5]],
    "forwarded: unaggregated and raw: forward",
  );
  assert.deepEqual(local, [batch[0], batch[3]], "stored locally: raw: local, in order");
  clock.t = T0 + 12_000;
  stage.tick();
  assert.deepEqual(
    emitted.map((e) => `${e.device} ${e.metric} ${e.value}`).sort(),
    [
      "fan-1 speed.count 1",
      "pump-1 pressure.mean 5",
      "pump-9 pressure.max 5",
      "pump-9 pressure.mean 5",
    ],
  );
});
