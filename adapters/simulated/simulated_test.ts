import assert from "node:assert/strict";
import type { AdapterContext, DeviceState } from "../../src/adapter.ts";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { gatewaySchema } from "../../src/config/gateway.ts";
import { parseConfig } from "../../src/config/load.ts";
import { silentLogger } from "../../src/log.ts";
import type { Reading } from "../../src/reading.ts";
import { mulberry32 } from "../../src/rng.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { patternValue, simulated } from "./mod.ts";
import type { SimulatedConfig } from "./config.ts";

function checkConfig(raw: Record<string, unknown>): SimulatedConfig {
  const ctx = new Ctx();
  const config = simulated.schema.check(raw, ctx, []);
  assert.notEqual(config, INVALID, JSON.stringify(ctx.issues));
  return config as SimulatedConfig;
}

interface Run {
  batches: Reading[][];
  states: [string, DeviceState, string | undefined][];
  done: Promise<unknown>;
  stop(): Promise<unknown>;
}

/** Starts the adapter with `raw` config, collecting what it emits, until `stop()`. */
function start(raw: Record<string, unknown>): Run {
  const ac = new AbortController();
  const batches: Reading[][] = [];
  const states: Run["states"] = [];
  const ctx: AdapterContext<SimulatedConfig> = {
    name: "sim",
    config: checkConfig(raw),
    emit: (readings) => {
      batches.push(readings);
      return Promise.resolve({
        accepted: readings.length,
        rejected: 0,
        seqs: readings.map((_, i) => i),
      });
    },
    log: silentLogger(),
    signal: ac.signal,
    setDeviceState: (device, state, reason) => states.push([device, state, reason]),
    count: () => {},
    setWriter: () => {},
  };
  const done = simulated.start(ctx).then(() => "returned", (e: Error) => e);
  return {
    batches,
    states,
    done,
    stop: () => {
      ac.abort();
      return done;
    },
  };
}

const METRIC = { name: "m", unit: undefined, min: 10, max: 20, period: 1000, decimals: 2 };

Deno.test("defaults: three devices sim-1..3 with one temperature metric in C between 15 and 25", async () => {
  const run = start({ interval: 10 });
  try {
    await waitFor("a batch", () => run.batches.length > 0);
  } finally {
    assert.equal(await run.stop(), "returned", "stopping is aborting; start() returns");
  }
  const first = run.batches[0];
  assert.deepEqual(first.map((r) => r.device), ["sim-1", "sim-2", "sim-3"]);
  for (const r of first) {
    assert.equal(r.metric, "temperature");
    assert.equal(r.unit, "C");
    assert.ok(typeof r.value === "number" && r.value >= 15 && r.value <= 25, String(r.value));
    assert.ok(Math.abs(r.ts - Date.now()) < 10_000);
  }
});

Deno.test("each interval emits one batch with every metric of every device, rounded to decimals", async () => {
  const run = start({
    devices: 2,
    prefix: "pump",
    interval: 20,
    metrics: [
      { name: "p", pattern: "random-walk", min: 2, max: 6, decimals: 1 },
      { name: "open", pattern: "toggle", period: "1s" },
    ],
  });
  try {
    await waitFor("three batches", () => run.batches.length >= 3);
  } finally {
    await run.stop();
  }
  for (const batch of run.batches) {
    assert.deepEqual(
      batch.map((r) => `${r.device}/${r.metric}`),
      ["pump-1/p", "pump-1/open", "pump-2/p", "pump-2/open"],
    );
    for (const r of batch) {
      if (r.metric === "open") assert.equal(typeof r.value, "boolean");
      else {
        const v = r.value as number;
        assert.ok(v >= 2 && v <= 6, `${v} within min..max`);
        assert.equal(Math.round(v * 10) / 10, v, `${v} has one decimal`);
      }
    }
  }
});

Deno.test("patterns: sine, step, toggle and constant follow min, max and period", () => {
  const state = new Map<string, number>();
  const random = () => 0.5;
  const sine = { ...METRIC, pattern: "sine" as const };
  const values = Array.from(
    { length: 100 },
    (_, i) => patternValue(sine, i * 10, 0, state, random),
  );
  const nums = values as number[];
  assert.ok(Math.min(...nums) >= 10 && Math.max(...nums) <= 20);
  assert.ok(Math.max(...nums) - Math.min(...nums) > 9, "a full period covers min to max");
  assert.equal(patternValue({ ...METRIC, pattern: "constant" }, 1234, 3, state, random), 10);
  const step = { ...METRIC, pattern: "step" as const };
  assert.deepEqual(
    [0, 1000, 2000, 3000].map((t) => patternValue(step, t, 0, state, random)),
    [10, 20, 10, 20],
  );
  const toggle = { ...METRIC, pattern: "toggle" as const };
  assert.deepEqual(
    [0, 1000, 2000].map((t) => patternValue(toggle, t, 0, state, random)),
    [true, false, true],
  );
});

Deno.test("patterns: random-walk stays within min..max and counter only grows", () => {
  const state = new Map<string, number>();
  const random = mulberry32(7);
  const walk = { ...METRIC, name: "w", pattern: "random-walk" as const };
  const counter = { ...METRIC, name: "c", pattern: "counter" as const };
  let last = -Infinity;
  for (let i = 0; i < 5000; i++) {
    const w = patternValue(walk, i, 1, state, random) as number;
    assert.ok(w >= 10 && w <= 20, `walk ${w}`);
    const c = patternValue(counter, i, 1, state, random) as number;
    assert.ok(c >= last, `counter ${c} after ${last}`);
    last = c;
  }
});

Deno.test("a seed makes runs repeatable", async () => {
  const config = {
    devices: 3,
    interval: 5,
    seed: 42,
    metrics: [{ name: "w", pattern: "random-walk" }],
    spikes: { probability: 0.3, magnitude: 1000 },
  };
  const values: number[][] = [];
  for (let i = 0; i < 2; i++) {
    const run = start(config);
    try {
      await waitFor("five batches", () => run.batches.length >= 5);
    } finally {
      await run.stop();
    }
    values.push(run.batches.slice(0, 5).flat().map((r) => r.value as number));
  }
  assert.deepEqual(values[0], values[1]);
  assert.ok(values[0].some((v) => v > 100), "spikes add their magnitude");
});

Deno.test("gaps: a silent device is reported offline, then online when it reports again", async () => {
  const run = start({
    devices: 1,
    interval: 5,
    seed: 1,
    gaps: { probability: 0.5, duration: 20 },
  });
  try {
    await waitFor(
      "a gap and the return",
      () => run.states.some(([, s]) => s === "online"),
    );
  } finally {
    await run.stop();
  }
  assert.deepEqual(run.states[0], ["sim-1", "offline", "simulated gap"]);
  assert.deepEqual(run.states[1], ["sim-1", "online", undefined]);
});

Deno.test("failAfter: the adapter throws after running that long, naming the key", async () => {
  const run = start({ interval: 5, failAfter: 30 });
  const outcome = await run.done;
  assert.ok(outcome instanceof Error);
  assert.match(outcome.message, /simulated failure after 30ms \(failAfter\)/);
  assert.ok(run.batches.length >= 1, "it ran before failing");
});

Deno.test("config: bad values are named with their key", () => {
  const ctx = new Ctx();
  simulated.schema.check(
    { devices: 0, metrics: [{ name: "t", min: 5, max: 1 }], spikes: {} },
    ctx,
    [],
  );
  assert.deepEqual(ctx.issues.map((i) => `${i.path.join(".")}: ${i.message}`), [
    "devices: expected an integer 1–100000, got 0",
    "metrics.0.max: expected max ≥ min (5), got 1",
    'spikes: missing required key "probability"',
  ]);
});

Deno.test("example.yaml is a valid gateway config", () => {
  const text = Deno.readTextFileSync(new URL("./example.yaml", import.meta.url));
  const c = parseConfig(text, gatewaySchema({ simulated }), { displayName: "example.yaml" });
  assert.equal(c.adapters.length, 1);
  // The entry's config is typed from the registry: no cast.
  const { type, config } = c.adapters[0];
  assert.equal(type, "simulated");
  assert.equal(config.devices, 4);
  assert.deepEqual(config.metrics.map((m) => m.pattern), [
    "sine",
    "random-walk",
    "toggle",
    "counter",
  ]);
});
