import assert from "node:assert/strict";
import { AdapterSupervisor } from "./supervisor.ts";
import { defineAdapter, type EmitResult } from "./adapter.ts";
import { s } from "./config/schema.ts";
import { silentLogger } from "./log.ts";
import type { Reading } from "./reading.ts";
import { waitFor } from "../test/helpers/ports.ts";

const emitted: Reading[] = [];
const emit = (rs: Reading[]): Promise<EmitResult> => {
  emitted.push(...rs);
  return Promise.resolve({ accepted: rs.length, rejected: 0, seqs: [] });
};

Deno.test("a failing adapter is restarted with backoff and counted; a healthy one keeps running", async () => {
  let starts = 0;
  const flaky = defineAdapter({
    type: "flaky",
    schema: s.object({}),
    start() {
      starts++;
      return Promise.reject(new Error(`boom ${starts}`));
    },
  });
  const steady = defineAdapter({
    type: "steady",
    schema: s.object({}),
    async start({ emit, signal }) {
      while (!signal.aborted) {
        await emit([{ device: "d", metric: "m", value: 1, ts: Date.now() }]);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  });
  const a = new AdapterSupervisor({
    name: "a",
    module: flaky,
    config: {},
    emit,
    log: silentLogger(),
    minBackoffMs: 20,
    maxBackoffMs: 80,
  });
  const b = new AdapterSupervisor({
    name: "b",
    module: steady,
    config: {},
    emit,
    log: silentLogger(),
  });
  a.start();
  b.start();
  try {
    const t0 = Date.now();
    await waitFor("four restarts", () => a.status().restarts >= 4);
    // Backoff doubles: 20, 40, 80, 80 ms (each between half and all of it).
    assert.ok(Date.now() - t0 >= 10 + 20 + 40, "restarts are spaced by a growing backoff");
    const st = a.status();
    assert.equal(st.errors, st.restarts);
    assert.match(st.lastError!, /^boom \d+$/);
    assert.equal(b.status().state, "running");
    assert.equal(b.status().restarts, 0);
    const before = emitted.length;
    await waitFor("the healthy adapter to keep emitting", () => emitted.length > before + 5);
  } finally {
    await a.stop();
    await b.stop();
  }
  assert.equal(a.status().state, "stopped");
});

Deno.test("an adapter that returns without being stopped counts as a failure", async () => {
  const quits = defineAdapter({
    type: "quits",
    schema: s.object({}),
    start: () => Promise.resolve(),
  });
  const sup = new AdapterSupervisor({
    name: "q",
    module: quits,
    config: {},
    emit,
    log: silentLogger(),
    minBackoffMs: 10,
  });
  sup.start();
  try {
    await waitFor("a restart", () => sup.status().restarts >= 1);
    assert.match(sup.status().lastError!, /returned without being stopped/);
  } finally {
    await sup.stop();
  }
});
