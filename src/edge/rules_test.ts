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

function harness(rules: RuleConfig[], path?: string) {
  const clock = { t: 1_700_000_000_000 };
  const store = AlarmStore.open(path ?? ":memory:");
  const events: AlarmEvent[] = [];
  const engine = new RuleEngine(rules, {
    store,
    now: () => clock.t,
    notify: (_r, e) => events.push(e),
  });
  const feed = (device: string, metric: string, value: number | boolean) => {
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
