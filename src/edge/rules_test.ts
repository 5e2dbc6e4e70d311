import assert from "node:assert/strict";
import { Ctx, INVALID } from "../config/schema.ts";
import type { Reading } from "../reading.ts";
import { type AlarmEvent, AlarmStore } from "./alarm_store.ts";
import { type RuleConfig, ruleSchema } from "./config.ts";
import { RuleEngine } from "./rules.ts";

function rule(raw: Record<string, unknown>): RuleConfig {
  const ctx = new Ctx();
  const r = ruleSchema.check(raw, ctx, []);
  if (r === INVALID) throw new Error(JSON.stringify(ctx.issues));
  return r;
}

function harness(rules: RuleConfig[], path?: string, t0 = 1_700_000_000_000) {
  const clock = { t: t0 };
  const store = AlarmStore.open(path ?? ":memory:");
  const events: AlarmEvent[] = [];
  const engine = new RuleEngine(rules, {
    store,
    now: () => clock.t,
    notify: (_r, e) => events.push(e),
  });
  const feed = (device: string, metric: string, value: number | boolean | string) => {
    const r: Reading = { device, metric, value, ts: clock.t };
    engine.process([r], "test");
  };
  return { clock, store, events, engine, feed };
}

/** A seeded noisy signal: `level` plus uniform noise of ±`amp`. */
function noise(seed: number) {
  let a = seed;
  return () => {
    a = (a * 1103515245 + 12345) & 0x7fffffff;
    return a / 0x7fffffff * 2 - 1;
  };
}

Deno.test("hysteresis: a noisy signal around the threshold raises once and does not flap", () => {
  const h = harness([rule({
    name: "hot",
    when: { device: "pump-1", metric: "pressure", above: 8, clearBelow: 7.5 },
  })]);
  const rnd = noise(7);
  for (let i = 0; i < 2000; i++) {
    h.clock.t += 100;
    h.feed("pump-1", "pressure", 7.9 + 0.2 * rnd()); // 7.7…8.1: crosses 8, never below 7.5
  }
  assert.deepEqual(h.events.map((e) => e.state), ["raised"]);
  h.clock.t += 100;
  h.feed("pump-1", "pressure", 7.4);
  assert.deepEqual(h.events.map((e) => e.state), ["raised", "cleared"]);
});

Deno.test("for-duration: raises only once the condition held for the whole duration", () => {
  const h = harness([rule({
    name: "hot",
    when: { device: "pump-1", metric: "pressure", above: 8, clearBelow: 7.5, for: "10s" },
  })]);
  const rnd = noise(3);
  // 60 s of noise that goes above 8 and dips below 7.5 at least every few seconds: never 10 s.
  for (let i = 0; i < 600; i++) {
    h.clock.t += 100;
    h.feed("pump-1", "pressure", i % 30 === 29 ? 7.0 : 8.2 + 0.1 * rnd());
    h.engine.tick();
  }
  assert.equal(h.events.length, 0);
  // Now steadily high: raises after 10 s, not before, with no further readings needed.
  h.feed("pump-1", "pressure", 9);
  const start = h.clock.t;
  while (h.events.length === 0 && h.clock.t - start < 20_000) {
    h.clock.t += 250;
    h.engine.tick();
  }
  assert.equal(h.events[0]?.state, "raised");
  assert.ok(h.clock.t - start >= 10_000 && h.clock.t - start < 10_500, `${h.clock.t - start}`);
});

Deno.test("rate of change, staleness and all/any combinations", () => {
  const h = harness([
    rule({
      name: "rising",
      when: { device: "t", metric: "temp", rate: { above: 0.5, per: "1s" } },
    }),
    rule({ name: "silent", when: { device: "t", metric: "temp", stale: "30s" } }),
    rule({
      name: "both",
      severity: "critical",
      when: {
        all: [
          { device: "a", metric: "x", above: 1 },
          { device: "b", metric: "y", equals: true },
        ],
      },
    }),
  ]);
  h.feed("t", "temp", 20);
  h.clock.t += 1000;
  h.feed("t", "temp", 21);
  assert.deepEqual(h.events.map((e) => `${e.rule} ${e.state}`), ["rising raised"]);
  h.clock.t += 1000;
  h.feed("t", "temp", 21.2);
  assert.equal(h.events.at(-1)?.state, "cleared");
  h.clock.t += 30_001;
  h.engine.tick();
  assert.equal(`${h.events.at(-1)?.rule} ${h.events.at(-1)?.state}`, "silent raised");
  h.feed("t", "temp", 21);
  assert.equal(`${h.events.at(-1)?.rule} ${h.events.at(-1)?.state}`, "silent cleared");
  const before = h.events.length;
  h.feed("a", "x", 2);
  assert.equal(h.events.length, before, "all: waits for b");
  h.feed("b", "y", true);
  assert.deepEqual(h.events.at(-1), {
    ...h.events.at(-1),
    rule: "both",
    state: "raised",
    severity: "critical",
  });
  h.feed("a", "x", 0);
  assert.equal(h.events.at(-1)?.state, "cleared");
});

Deno.test("restart with an active alarm: no second raise, the clear still comes", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/alarms.db`;
  const rules = [rule({
    name: "hot",
    when: { device: "p", metric: "pressure", above: 8, clearBelow: 7.5, for: "1s" },
  })];
  const a = harness(rules, path);
  a.feed("p", "pressure", 9);
  a.clock.t += 1000;
  a.engine.tick();
  assert.deepEqual(a.events.map((e) => e.state), ["raised"]);
  a.store.close();

  const b = harness(rules, path);
  assert.deepEqual(Object.keys(b.engine.active()), ["hot"]);
  for (const v of [9, 7.8, 9.5, 7.6]) {
    b.clock.t += 2000;
    b.feed("p", "pressure", v);
    b.engine.tick();
  }
  assert.equal(b.events.length, 0, "no duplicate raise after the restart");
  b.feed("p", "pressure", 7);
  assert.deepEqual(b.events.map((e) => e.state), ["cleared"]);
  assert.deepEqual(b.store.pending(10).map((p) => p.event.state), ["raised", "cleared"]);
  b.store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an active alarm of a rule removed from the config is cleared at start", () => {
  const store = AlarmStore.open(":memory:");
  store.record({
    rule: "gone",
    state: "raised",
    severity: "warning",
    message: "",
    ts: 1,
    raisedAt: 1,
  }, false);
  new RuleEngine([], { store, notify: () => {} });
  assert.equal(store.active().size, 0);
  assert.equal(store.pending(10)[0].event.state, "cleared");
});

Deno.test("a device glob gives one alarm instance per matching device, each raised and cleared on its own", () => {
  const h = harness([rule({
    name: "hot",
    message: "{instance}: {device} {metric} {value}",
    when: { device: "pump-?", metric: "pressure", above: 8, clearBelow: 7.5, for: "1s" },
  })]);
  h.feed("pump-1", "pressure", 9);
  h.feed("pump-2", "pressure", 9.5);
  h.feed("pump-10", "pressure", 9); // ? is one character
  h.feed("fan-1", "pressure", 9);
  h.clock.t += 500;
  h.feed("pump-2", "pressure", 7); // pump-2 dips: its for: restarts, pump-1's does not
  h.clock.t += 500;
  h.engine.tick();
  assert.deepEqual(h.events.map((e) => [e.rule, e.instance, e.state, e.device, e.message]), [
    ["hot", "pump-1", "raised", "pump-1", "pump-1: pump-1 pressure 9"],
  ]);
  h.feed("pump-2", "pressure", 9);
  h.clock.t += 1000;
  h.engine.tick();
  assert.deepEqual(Object.keys(h.engine.active()), ["hot[pump-1]", "hot[pump-2]"]);
  h.feed("pump-1", "pressure", 7.8); // inside the band: stays
  h.feed("pump-1", "pressure", 7);
  assert.deepEqual(h.events.map((e) => `${e.instance} ${e.state}`), [
    "pump-1 raised",
    "pump-2 raised",
    "pump-1 cleared",
  ]);
  assert.deepEqual(Object.keys(h.engine.active()), ["hot[pump-2]"]);
  assert.deepEqual(
    [...h.store.active().keys()],
    ["hot[pump-2]"],
    "persisted per instance",
  );
});

Deno.test("a metric glob gives one instance per device/metric pair", () => {
  const h = harness([rule({
    name: "overheat",
    when: { device: "*", metric: "temp-*", above: 80 },
  })]);
  h.feed("m1", "temp-bearing", 85);
  h.feed("m1", "temp-winding", 70);
  h.feed("m2", "temp-bearing", 90);
  h.feed("m2", "speed", 90);
  assert.deepEqual(h.events.map((e) => [e.instance, e.device, e.metric, e.value, e.message]), [
    [
      "m1/temp-bearing",
      "m1",
      "temp-bearing",
      85,
      "overheat[m1/temp-bearing] raised (m1 temp-bearing = 85)",
    ],
    [
      "m2/temp-bearing",
      "m2",
      "temp-bearing",
      90,
      "overheat[m2/temp-bearing] raised (m2 temp-bearing = 90)",
    ],
  ]);
});

Deno.test("all: with a device glob binds each instance to one device; exact leaves are shared", () => {
  const h = harness([
    rule({
      name: "dry-run",
      when: {
        all: [
          { device: "pump-*", metric: "running", equals: true },
          { device: "pump-*", metric: "flow", below: 1 },
          { device: "plant", metric: "mode", equals: "auto" },
        ],
      },
    }),
    rule({ name: "pump-3-flow", when: { device: "pump-3", metric: "flow", below: 1 } }),
  ]);
  const at = (dt: number, device: string, metric: string, value: number | boolean | string) => {
    h.clock.t += dt;
    h.feed(device, metric, value);
  };
  at(0, "plant", "mode", "auto");
  at(10, "pump-1", "running", true);
  at(10, "pump-2", "flow", 0.5); // pump-2 is not running: no alarm
  at(10, "pump-1", "flow", 0.2);
  at(10, "pump-3", "running", true);
  at(10, "pump-3", "flow", 0.1); // also the exact rule's device/metric
  assert.deepEqual(h.events.map((e) => `${e.rule} ${e.instance} ${e.state} ${e.device}`), [
    "dry-run pump-1 raised pump-1",
    "pump-3-flow undefined raised pump-3",
    "dry-run pump-3 raised pump-3",
  ]);
  h.events.length = 0;
  at(10, "plant", "mode", "manual");
  assert.deepEqual(
    h.events.map((e) => `${e.rule} ${e.instance} ${e.state} ${e.device} ${e.metric}`),
    [
      "dry-run pump-1 cleared pump-1 flow",
      "dry-run pump-3 cleared pump-3 flow",
    ],
    "a shared leaf clears every instance; each event names its own device",
  );
});

Deno.test("restart with glob instances: active ones are neither raised again nor forgotten, silence is still watched", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/alarms.db`;
  const rules = [
    rule({
      name: "hot",
      when: { device: "pump-*", metric: "pressure", above: 8, clearBelow: 7.5 },
    }),
    rule({ name: "silent", when: { device: "pump-*", metric: "pressure", stale: "30s" } }),
  ];
  const a = harness(rules, path);
  for (const d of ["pump-1", "pump-2", "pump-3"]) a.feed(d, "pressure", d === "pump-1" ? 9 : 5);
  a.clock.t += 20_000;
  a.feed("pump-1", "pressure", 9);
  a.feed("pump-2", "pressure", 5);
  a.clock.t += 11_000;
  a.engine.tick(); // pump-3 silent for 31 s
  assert.deepEqual(Object.keys(a.engine.active()).sort(), ["hot[pump-1]", "silent[pump-3]"]);
  a.store.close();

  const b = harness(rules, path, a.clock.t + 5000);
  assert.deepEqual(Object.keys(b.engine.active()).sort(), ["hot[pump-1]", "silent[pump-3]"]);
  b.feed("pump-1", "pressure", 7.8); // inside the hysteresis band
  b.clock.t += 25_000;
  b.feed("pump-1", "pressure", 8.5);
  b.engine.tick();
  assert.equal(b.events.length, 0, "no duplicate raise, and pump-3 still counts as silent");
  b.clock.t += 10_000;
  b.engine.tick(); // pump-2 has not spoken since the restart, 35 s ago
  assert.deepEqual(b.events.map((e) => `${e.rule} ${e.instance} ${e.state}`), [
    "silent pump-2 raised",
  ]);
  b.feed("pump-3", "pressure", 5);
  b.feed("pump-1", "pressure", 7);
  assert.deepEqual(b.events.map((e) => `${e.rule} ${e.instance} ${e.state}`).slice(1), [
    "silent pump-3 cleared",
    "hot pump-1 cleared",
  ]);
  b.store.close();

  // A rule narrowed so that an active instance no longer matches: cleared at start, and the
  // instances remembered for the old pattern are forgotten.
  const c = harness([
    rule({ name: "hot", when: { device: "pump-9", metric: "pressure", above: 8 } }),
    rule({ name: "silent", when: { device: "fan-*", metric: "pressure", stale: "30s" } }),
  ], path);
  const cleared = c.store.pending(100).map((p) => p.event).filter((e) => e.state === "cleared");
  assert.deepEqual(cleared.at(-1)?.instance, "pump-2");
  assert.match(cleared.at(-1)!.message, /no longer matches/);
  assert.deepEqual(c.store.active().size, 0);
  assert.deepEqual(c.store.instances(), []);
  c.store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a batch's transitions are dispatched before their write and recorded before `recorded`", () => {
  const store = AlarmStore.open(":memory:");
  const seen: string[] = [];
  const engine = new RuleEngine(
    [
      rule({ name: "hot", when: { device: "d", metric: "t", above: 50 } }),
      rule({ name: "wet", when: { device: "d", metric: "h", above: 90 } }),
    ],
    {
      store,
      now: () => 1_700_000_000_000,
      // The action does not wait for the SQLite write: nothing of its batch is stored yet.
      notify: (_r, e) => seen.push(`${e.rule} ${e.state} stored=${store.active().size}`),
      // The alarm lane is woken once the whole batch is durable.
      recorded: () =>
        seen.push(`recorded ${store.active().size} pending=${store.pending(10).length}`),
    },
  );
  engine.process([
    { device: "d", metric: "t", value: 60, ts: 1 },
    { device: "d", metric: "h", value: 95, ts: 1 },
  ], "test");
  assert.deepEqual(seen, [
    "hot raised stored=0",
    "wet raised stored=0",
    "recorded 2 pending=2",
  ]);
});
