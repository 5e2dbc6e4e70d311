import assert from "node:assert/strict";
import { summarizeDevices, SUMMARY_CLASSES } from "./summary.ts";
import { countStates, type DevicesState } from "./rollout.ts";

Deno.test("summarizeDevices() gives per class the device counts and the rollout, bounded", () => {
  const state: DevicesState = {
    devices: {
      "b-1": { id: "b-1", class: "boiler", state: "current", running: "1.1.0" },
      "b-2": { id: "b-2", class: "boiler", state: "rolled-back", running: "1.0.0", error: "x" },
      "b-3": { id: "b-3", class: "boiler", state: "waiting" },
      "c-1": { id: "c-1", class: "cam", state: "unknown" },
    },
    rollouts: {
      boiler: {
        name: "fw",
        version: "1.1.0",
        status: "stopped",
        failures: 1,
        forgiven: 0,
        reason: "a long reason that stays out of the status message",
        startedAt: 1,
      },
      gone: { name: "m", version: "2", status: "done", failures: 0, forgiven: 0, startedAt: 1 },
    },
  };
  const s = summarizeDevices({ counts: countStates(state), rollouts: state.rollouts });
  assert.deepEqual(s.classes.map((c) => c.class), ["boiler", "cam", "gone"]);
  assert.deepEqual(s.classes[0], {
    class: "boiler",
    devices: 3,
    states: {
      unknown: 0,
      current: 1,
      waiting: 1,
      offered: 0,
      downloading: 0,
      installed: 0,
      failed: 0,
      "rolled-back": 1,
    },
    rollout: { name: "fw", version: "1.1.0", status: "stopped", failures: 1 },
  });
  assert.equal(s.classes[1].rollout, null);
  assert.equal(s.classes[2].devices, 0);
  assert.equal(s.more, 0);
  // Stable: the same state gives the same JSON.
  assert.equal(
    JSON.stringify(summarizeDevices({ counts: countStates(state), rollouts: state.rollouts })),
    JSON.stringify(s),
  );

  const many: DevicesState = { devices: {}, rollouts: {} };
  for (let i = 0; i < SUMMARY_CLASSES + 5; i++) {
    many.devices[`d${i}`] = {
      id: `d${i}`,
      class: `c${String(i).padStart(2, "0")}`,
      state: "current",
    };
  }
  const b = summarizeDevices({ counts: countStates(many), rollouts: {} });
  assert.equal(b.classes.length, SUMMARY_CLASSES);
  assert.equal(b.more, 5);
});
