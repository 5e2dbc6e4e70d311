import assert from "node:assert/strict";
import { fitStatus, STATUS_BUDGET_BYTES, statusBudget } from "./status_budget.ts";
import type { StatusMessage } from "./uplink.ts";

const core = { schema: 1, gatewayId: "gw-1", state: "online", version: "1.0.0", ts: 1 } as const;
const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;

Deno.test("statusBudget() is 8 KB, or the uplink's maxMessageBytes when smaller", () => {
  assert.equal(statusBudget(), STATUS_BUDGET_BYTES);
  assert.equal(statusBudget(128 * 1024), 8192);
  assert.equal(statusBudget(2048), 2048);
});

Deno.test("fitStatus() drops sections it does not know before the ones it does, and names them", () => {
  const msg: StatusMessage = {
    ...core,
    backlog: 3,
    health: { ok: true, failing: [] },
    alarms: { active: 0, acknowledged: 0, list: [], more: 0 },
    doctor: { ok: true, failing: [] },
    futureSection: "y".repeat(3000),
  };
  const fitted = fitStatus(msg, 1024);
  assert.equal(fitted.futureSection, undefined);
  assert.deepEqual(fitted.doctor, { ok: true, failing: [] });
  assert.deepEqual(fitted.truncated, ["futureSection"]);
  assert.equal(msg.futureSection, "y".repeat(3000), "the original is left as it was");
});

Deno.test("fitStatus() never throws and keeps the core even when the core alone is over", () => {
  const msg: StatusMessage = {
    ...core,
    backlog: 0,
    health: { ok: false, failing: ["buffer", "disk"] },
    alarms: { active: 2, acknowledged: 1, list: [{ key: "a" }, { key: "b" }], more: 0 },
    site: "s".repeat(500),
  };
  const fitted = fitStatus(msg, 10);
  assert.deepEqual(
    [fitted.gatewayId, fitted.state, fitted.version, fitted.ts, fitted.backlog],
    ["gw-1", "online", "1.0.0", 1, 0],
  );
  assert.deepEqual(fitted.health, { ok: false, failingMore: 2 });
  assert.deepEqual(fitted.alarms, { active: 2, acknowledged: 1, more: 2 });
  assert.deepEqual(fitted.truncated, ["site", "alarms.list", "health.failing"]);
  assert.ok(bytes(fitted) > 10);
  assert.deepEqual(msg.health, { ok: false, failing: ["buffer", "disk"] }, "the original stays");
  assert.deepEqual(msg.alarms, {
    active: 2,
    acknowledged: 1,
    list: [{ key: "a" }, { key: "b" }],
    more: 0,
  });
});

Deno.test("fitStatus() drops a section JSON cannot write instead of throwing", () => {
  const loop: Record<string, unknown> = { n: 1 };
  loop.self = loop;
  const msg: StatusMessage = { ...core, doctor: { at: 10n }, deviceUpdates: loop };
  const fitted = fitStatus(msg, 8192);
  assert.deepEqual(fitted.truncated, ["deviceUpdates", "doctor"]);
  assert.equal(JSON.parse(JSON.stringify(fitted)).gatewayId, "gw-1");
});
