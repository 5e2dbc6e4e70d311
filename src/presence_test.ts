import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { offlineAfter, Presence } from "./presence.ts";

const r = (device: string) => ({ device, metric: "t", value: 1, ts: 0 });

Deno.test("judge() shows a polled device offline after three missed polls, online again on a reading", () => {
  let now = 1_000_000;
  const p = new Presence({ pollIntervalMs: 5000 }, { now: () => now });
  p.arrived([r("pump-1"), r("pump-1")]);
  assertEquals(p.judge({})["pump-1"].state, "online");
  assertEquals(p.judge({})["pump-1"].lastSeen, 1_000_000);
  now += 15_001;
  const off = p.judge({})["pump-1"];
  assertEquals(off.state, "offline");
  assertEquals(off.offlineAfterMs, 15_000);
  assertEquals(off.reason, "no reading for 15 s (offline after 15 s)");
  p.arrived([r("pump-1")]);
  assertEquals(p.judge({})["pump-1"], {
    state: "online",
    since: now,
    lastSeen: now,
    offlineAfterMs: 15_000,
  });
});

Deno.test("judge() derives a pushing device's timeout from its usual interval", () => {
  let now = 0;
  const p = new Presence({}, { now: () => now });
  p.arrived([r("tag")]);
  assertEquals(p.judge({}).tag.offlineAfterMs, 5 * 60_000);
  for (let i = 0; i < 20; i++) {
    now += 60_000;
    p.arrived([r("tag")]);
  }
  assertEquals(p.judge({}).tag.offlineAfterMs, 180_000);
  now += 179_000;
  assertEquals(p.judge({}).tag.state, "online");
  now += 2000;
  assertEquals(p.judge({}).tag.state, "offline");
});

Deno.test("judge() keeps an adapter's own offline state and its reason; offlineAfter wins", () => {
  const now = 50_000;
  const p = new Presence({ offlineAfterMs: 2000, pollIntervalMs: 60_000 }, { now: () => now });
  p.arrived([r("a")]);
  const j = p.judge({
    a: { state: "unavailable", reason: "timeout", since: 40_000 },
    b: { state: "online", since: 1 },
  });
  assertEquals(j.a, {
    state: "unavailable",
    reason: "timeout",
    since: 40_000,
    lastSeen: 50_000,
    offlineAfterMs: 2000,
  });
  assertEquals(j.b, { state: "online", since: 1, lastSeen: null, offlineAfterMs: 2000 });
  assertEquals(offlineAfter({ pollIntervalMs: 1000 }), 10_000);
});

Deno.test("carry() keeps the arrivals across a config reload", () => {
  let now = 0;
  const a = new Presence({ pollIntervalMs: 1000 }, { now: () => now });
  a.arrived([r("x")]);
  now = 4000;
  const b = new Presence({ pollIntervalMs: 1000 }, { now: () => now }).carry(a);
  assertEquals(b.judge({}).x.lastSeen, 0);
  assertEquals(new Presence({}).carry(undefined).judge({}), {});
});
