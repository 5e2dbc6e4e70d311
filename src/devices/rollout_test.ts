import assert from "node:assert/strict";
import { applyReport, countStates, type DevicesState, plan, resume } from "./rollout.ts";

const A = { name: "esp32-boiler-v3", version: "1.1.0" };
const S = { batch: 2, failureThreshold: 1, reportTimeout: 60_000 };
const IDS = ["d1", "d2", "d3", "d4", "d5"];

function fresh(): DevicesState {
  const devices: DevicesState["devices"] = {};
  for (const id of IDS) devices[id] = { id, class: "c", state: "unknown" };
  return { devices, rollouts: {} };
}

Deno.test("plan() offers a batch, waits for each of its devices, then offers the next", () => {
  const st = fresh();
  assert.deepEqual(plan(st, "c", IDS, A, S, 0), ["d1", "d2"]);
  assert.deepEqual(plan(st, "c", IDS, A, S, 1), []);
  applyReport(st.devices.d1, { version: "1.1.0", state: "running" }, 2);
  // d2 is still in flight: no new batch.
  assert.deepEqual(plan(st, "c", IDS, A, S, 3), []);
  applyReport(st.devices.d2, { version: "1.0.0", state: "downloading" }, 4);
  assert.equal(st.devices.d2.state, "downloading");
  applyReport(st.devices.d2, { version: "1.1.0", state: "installed" }, 5);
  assert.equal(st.devices.d2.state, "installed");
  assert.deepEqual(plan(st, "c", IDS, A, S, 6), []);
  applyReport(st.devices.d2, { version: "1.1.0", state: "running" }, 7);
  assert.deepEqual(plan(st, "c", IDS, A, S, 8), ["d3", "d4"]);
  applyReport(st.devices.d3, { version: "1.1.0" }, 9);
  applyReport(st.devices.d4, { version: "1.1.0" }, 9);
  assert.deepEqual(plan(st, "c", IDS, A, S, 10), ["d5"]);
  applyReport(st.devices.d5, { version: "1.1.0" }, 11);
  assert.deepEqual(plan(st, "c", IDS, A, S, 12), []);
  assert.equal(st.rollouts.c.status, "done");
  assert.equal(countStates(st).c.current, 5);
});

Deno.test("plan() stops at the failure threshold and resume() lets it go on", () => {
  const st = fresh();
  const s = { ...S, batch: 1 };
  assert.deepEqual(plan(st, "c", IDS, A, s, 0), ["d1"]);
  applyReport(st.devices.d1, { version: "1.0.0", state: "rolled-back", error: "self-test" }, 1);
  assert.equal(st.devices.d1.state, "rolled-back");
  assert.deepEqual(plan(st, "c", IDS, A, s, 2), []);
  assert.equal(st.rollouts.c.status, "stopped");
  assert.match(st.rollouts.c.reason!, /1 device\(s\) failed esp32-boiler-v3 1\.1\.0/);
  assert.deepEqual(plan(st, "c", IDS, A, s, 3), []);
  assert.equal(resume(st, "c"), true);
  assert.equal(resume(st, "c"), false);
  assert.deepEqual(plan(st, "c", IDS, A, s, 4), ["d2"]);
  applyReport(st.devices.d2, { version: "1.0.0", state: "failed" }, 5);
  assert.deepEqual(plan(st, "c", IDS, A, s, 6), []);
  assert.equal(st.rollouts.c.status, "stopped");
  assert.equal(st.rollouts.c.failures, 2);
});

Deno.test("plan() counts a device silent past reportTimeout as failed", () => {
  const st = fresh();
  plan(st, "c", IDS, A, { ...S, batch: 1, failureThreshold: 2 }, 0);
  assert.deepEqual(plan(st, "c", IDS, A, { ...S, batch: 1, failureThreshold: 2 }, 60_001), ["d2"]);
  assert.equal(st.devices.d1.state, "failed");
  assert.match(st.devices.d1.error!, /no report within 60000 ms/);
});

Deno.test("plan() starts over for a new version and honours the artifact's device list", () => {
  const st = fresh();
  plan(st, "c", IDS, A, { ...S, batch: 0 }, 0);
  for (const id of IDS) applyReport(st.devices[id], { version: "1.1.0" }, 1);
  plan(st, "c", IDS, A, S, 2);
  const next = { ...A, version: "1.2.0", devices: ["d4"] };
  assert.deepEqual(plan(st, "c", IDS, next, S, 3), ["d4"]);
  assert.equal(st.rollouts.c.version, "1.2.0");
  assert.equal(st.devices.d1.state, "current");
});

Deno.test("applyReport() ignores unknown states and keeps an in-flight offer", () => {
  const st = fresh();
  plan(st, "c", IDS, A, S, 0);
  applyReport(st.devices.d1, { version: "1.0.0", state: "running" }, 1);
  assert.equal(st.devices.d1.state, "offered");
  applyReport(st.devices.d5, { version: "1.0.0" }, 1);
  assert.equal(st.devices.d5.state, "current");
  assert.equal(st.devices.d5.running, "1.0.0");
});
