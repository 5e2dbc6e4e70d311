import assert from "node:assert/strict";
import type { GatewayStatus } from "../gateway.ts";
import type { LastValue } from "../pipeline.ts";
import { DRAIN_WINDOW_MS, estimateDrain, TrendHistory } from "./history.ts";

const lv = (value: LastValue["value"], ts: number): LastValue => ({ value, ts });
const counters = { accepted: 0, forwarded: 0 };

Deno.test("TrendHistory keeps the newest N points per series and only readings it has not seen", () => {
  const h = new TrendHistory({ points: 3 });
  for (let i = 1; i <= 5; i++) {
    h.sample({ pump: { p: lv(i * 10, 1000 + i) } }, counters);
    // A sample with no new reading adds nothing.
    h.sample({ pump: { p: lv(i * 10, 1000 + i) } }, counters);
  }
  assert.deepEqual(h.trends().pump.p, [[1003, 30], [1004, 40], [1005, 50]]);
  assert.equal(h.points, 3);
});

Deno.test("TrendHistory: booleans become 0/1, strings and non-finite values have no trend", () => {
  const h = new TrendHistory();
  h.sample({ d: { on: lv(true, 1), mode: lv("auto", 1), n: lv(2, 1) } }, counters);
  h.sample({ d: { on: lv(false, 2), mode: lv("manual", 2), n: lv(NaN, 2) } }, counters);
  assert.deepEqual(h.trends(), { d: { on: [[1, 1], [2, 0]], n: [[1, 2]] } });
});

Deno.test("TrendHistory bounds the number of series and counts the ones it leaves out", () => {
  const h = new TrendHistory({ maxSeries: 2 });
  h.sample({ a: { x: lv(1, 1), y: lv(1, 1) }, b: { x: lv(1, 1) } }, counters);
  h.sample({ a: { x: lv(2, 2), y: lv(2, 2) }, b: { x: lv(2, 2) }, c: { z: lv(1, 2) } }, counters);
  assert.deepEqual(Object.keys(h.trends()), ["a"]);
  assert.equal(h.untracked, 2);
});

Deno.test("trends(cursor) gives only the points taken after that sample", () => {
  const h = new TrendHistory();
  h.sample({ d: { m: lv(1, 100) } }, counters);
  const c1 = h.cursor;
  h.sample({ d: { m: lv(2, 200) }, e: { m: lv(5, 50) } }, counters);
  const c2 = h.cursor;
  assert.deepEqual(h.trends(c1), { d: { m: [[200, 2]] }, e: { m: [[50, 5]] } });
  assert.deepEqual(h.trends(c2), {});
  assert.deepEqual(h.trends(0).d.m, [[100, 1], [200, 2]]);
});

Deno.test("rates() are readings per second over the window and restart when counters go down", () => {
  const h = new TrendHistory({ rateWindowMs: 10_000 });
  assert.equal(h.rates().acceptedPerSecond, null);
  h.sample({}, { accepted: 0, forwarded: 0 }, 0);
  h.sample({}, { accepted: 100, forwarded: 50 }, 5000);
  h.sample({}, { accepted: 200, forwarded: 150 }, 10_000);
  assert.deepEqual(h.rates(), { acceptedPerSecond: 20, forwardedPerSecond: 15, windowSeconds: 10 });
  // Past the window, the oldest sample goes.
  h.sample({}, { accepted: 300, forwarded: 350 }, 15_000);
  assert.deepEqual(h.rates(), { acceptedPerSecond: 20, forwardedPerSecond: 30, windowSeconds: 10 });
  // A config reload restarts the forwarder's counters: no negative rate.
  h.sample({}, { accepted: 310, forwarded: 3 }, 16_000);
  assert.equal(h.rates().forwardedPerSecond, null);
  h.sample({}, { accepted: 320, forwarded: 13 }, 17_000);
  assert.equal(h.rates().forwardedPerSecond, 10);
  const none = new TrendHistory();
  none.sample({}, { accepted: 0, forwarded: null }, 0);
  none.sample({}, { accepted: 10, forwarded: null }, 1000);
  assert.deepEqual(none.rates(), {
    acceptedPerSecond: 10,
    forwardedPerSecond: null,
    windowSeconds: 1,
  });
});

Deno.test("estimateDrain(): empty, keeping up, draining with an estimate, growing, offline, no uplink", () => {
  const status = (pending: number, ageMs: number | null, connected: boolean | null) =>
    ({
      buffer: { pending, oldestPendingAgeMs: ageMs },
      uplink: connected === null ? null : { connected },
    }) as unknown as GatewayStatus;
  const rates = (acc: number, fwd: number | null) => ({
    acceptedPerSecond: acc,
    forwardedPerSecond: fwd,
    windowSeconds: 30,
  });
  assert.deepEqual(estimateDrain(status(0, null, true), rates(10, 10)), {
    state: "empty",
    seconds: 0,
  });
  assert.equal(estimateDrain(status(5, 300, true), rates(10, 10)).state, "current");
  assert.deepEqual(estimateDrain(status(6000, 600_000, true), rates(10, 40)), {
    state: "draining",
    seconds: 200,
  });
  assert.equal(estimateDrain(status(6000, 600_000, true), rates(40, 40)).state, "growing");
  assert.equal(estimateDrain(status(6000, 600_000, false), rates(10, 0)).state, "offline");
  assert.equal(estimateDrain(status(6000, 600_000, null), rates(10, null)).state, "no-uplink");
});

Deno.test("the drain estimate follows a reconnect within seconds and is within 20 % while draining", () => {
  // 60 s offline taking 1,000 readings/s, then a drain at 70,000/s: sampled every 2 s as the
  // server does. A 30 s average still counted the offline part and said "not shrinking", then
  // several times the real time.
  const h = new TrendHistory();
  const accepted = 1000;
  const drainRate = 70_000;
  let pending = 1_200_000;
  let acc = 0;
  let fwd = 0;
  let t = 0;
  for (; t <= 60_000; t += 2000) {
    h.sample({}, { accepted: acc, forwarded: fwd }, t);
    acc += accepted * 2;
    pending += accepted * 2;
  }
  const status = (p: number) =>
    ({
      buffer: { pending: p, oldestPendingAgeMs: 3_600_000 },
      uplink: { connected: true },
    }) as unknown as GatewayStatus;
  const checked: string[] = [];
  for (let k = 1; pending > 0 && k < 40; k++, t += 2000) {
    acc += accepted * 2;
    fwd += drainRate * 2;
    pending -= (drainRate - accepted) * 2;
    if (pending <= 0) break;
    h.sample({}, { accepted: acc, forwarded: fwd }, t);
    const d = estimateDrain(status(pending), h.rates(DRAIN_WINDOW_MS));
    const truth = pending / (drainRate - accepted);
    // Draining from the second sample after the reconnect (4 s), close to the truth once the
    // window holds only the drain (6 s).
    if (k >= 2) assert.equal(d.state, "draining", `${k * 2}s after the reconnect: ${d.state}`);
    if (k >= 3) {
      assert.ok(
        Math.abs(d.seconds! - truth) <= Math.max(1, truth * 0.2),
        `${k * 2}s after the reconnect: estimate ${d.seconds}s, truth ${truth.toFixed(1)}s`,
      );
      checked.push(`${d.seconds}/${truth.toFixed(0)}`);
    }
  }
  assert.ok(checked.length >= 5, `estimates checked: ${checked.join(" ")}`);
  // The long window is still what the page shows as "in / out".
  assert.ok(h.rates().forwardedPerSecond! < drainRate);
});
