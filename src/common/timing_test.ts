import assert from "node:assert/strict";
import { backoffDelay, deadline, sleep, within } from "./timing.ts";

Deno.test("sleep() resolves after the time, or at once when the signal aborts", async () => {
  let t0 = performance.now();
  await sleep(30);
  assert.ok(performance.now() - t0 >= 25, "waited the time");

  const ac = new AbortController();
  t0 = performance.now();
  const waiting = sleep(60_000, ac.signal);
  setTimeout(() => ac.abort(), 10);
  await waiting;
  assert.ok(performance.now() - t0 < 5_000, "the abort ended the wait and its timer");

  t0 = performance.now();
  await sleep(60_000, AbortSignal.abort());
  assert.ok(performance.now() - t0 < 1_000, "an aborted signal does not wait at all");
});

Deno.test("within() says whether the promise resolved before the deadline and clears its timer", async () => {
  assert.equal(await within(Promise.resolve(1), 60_000), true);
  let resolveLate!: () => void;
  const late = new Promise<void>((r) => resolveLate = r);
  assert.equal(await within(late, 20), false);
  resolveLate();
  await assert.rejects(within(Promise.reject(new Error("boom")), 60_000), /boom/);
});

Deno.test("deadline() settles as the promise does, or rejects on time-out or abort with the given errors", async () => {
  const opts = { timeout: () => new Error("too slow") };
  assert.equal(await deadline(Promise.resolve(7), 60_000, opts), 7);
  await assert.rejects(deadline(Promise.reject(new Error("own")), 60_000, opts), /own/);
  await assert.rejects(deadline(new Promise(() => {}), 20, opts), /too slow/);

  const ac = new AbortController();
  const pending = deadline(new Promise(() => {}), 60_000, {
    ...opts,
    signal: ac.signal,
    aborted: () => new Error("stopped"),
  });
  ac.abort();
  await assert.rejects(pending, /stopped/);
  await assert.rejects(
    deadline(Promise.resolve(1), 60_000, { ...opts, signal: AbortSignal.abort(new Error("why")) }),
    /why/,
    "an aborted signal rejects at once, with its reason by default",
  );
});

Deno.test("backoffDelay() doubles from min, caps at max, and jitters as asked", () => {
  const b = { min: 100, max: 1000 };
  const none = [0, 1, 2, 3, 4, 10, 100].map((a) => backoffDelay(a, b, { jitter: "none" }));
  assert.deepEqual(none, [100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(backoffDelay(-1, b, { jitter: "none" }), 100, "a negative attempt is the first");

  const lo = () => 0;
  const hi = () => 0.999999;
  assert.equal(backoffDelay(3, b, { random: lo }), 100, "full jitter reaches down to min");
  assert.equal(backoffDelay(3, b, { random: hi }), 800);
  assert.equal(backoffDelay(0, b), 100, "the first delay of full jitter is min");
  assert.equal(backoffDelay(3, b, { jitter: "equal", random: lo }), 400);
  assert.equal(backoffDelay(3, b, { jitter: "equal", random: hi }), 800);

  for (let i = 0; i < 1000; i++) {
    const attempt = i % 12;
    const ceiling = Math.min(1000, 100 * 2 ** attempt);
    const full = backoffDelay(attempt, b);
    assert.ok(full >= 100 && full <= ceiling, `full ${full} in [100, ${ceiling}]`);
    const equal = backoffDelay(attempt, b, { jitter: "equal" });
    assert.ok(
      equal >= ceiling / 2 && equal <= ceiling,
      `equal ${equal} in [${ceiling / 2}, ${ceiling}]`,
    );
    assert.ok(Number.isInteger(full) && Number.isInteger(equal));
  }
});

Deno.test("backoffDelay() keeps to max when min is above it, and to 0 when min is 0", () => {
  assert.equal(backoffDelay(0, { min: 60_000, max: 30_000 }, { jitter: "none" }), 30_000);
  assert.equal(backoffDelay(0, { min: 60_000, max: 30_000 }), 30_000);
  assert.equal(backoffDelay(5, { min: 0, max: 30_000 }, { jitter: "none" }), 0);
  assert.equal(backoffDelay(1e9, { min: 1, max: 5 }, { jitter: "none" }), 5, "no overflow");
});
