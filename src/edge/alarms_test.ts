import assert from "node:assert/strict";
import { Ctx, INVALID } from "../config/schema.ts";
import { silentLogger } from "../log.ts";
import type { AlarmEvent } from "./alarm_store.ts";
import { ALARM_HISTORY_ROWS, AlarmStore } from "./alarm_store.ts";
import { type RuleConfig, ruleSchema } from "./config.ts";
import { AlarmNotFoundError, Edge } from "./mod.ts";

function rule(raw: Record<string, unknown>): RuleConfig {
  const ctx = new Ctx();
  const r = ruleSchema.check(raw, ctx, []);
  if (r === INVALID) throw new Error(JSON.stringify(ctx.issues));
  return r;
}

const RULES = [
  rule({
    name: "hot",
    severity: "critical",
    when: { device: "pump-1", metric: "pressure", above: 8, clearBelow: 7.5, for: "1s" },
  }),
  rule({ name: "wet", when: { device: "tank-*", metric: "level", above: 90 } }),
];

function start(dir: string, clock: { t: number }) {
  const events: AlarmEvent[] = [];
  const edge = Edge.start({
    config: { filters: [], aggregate: [], rules: RULES },
    bufferPath: `${dir}/buffer.db`,
    emit: () => Promise.resolve(),
    write: () => Promise.resolve(),
    uplink: undefined,
    log: silentLogger(),
    now: () => clock.t,
    onTransition: (_r, e) => events.push(e),
  });
  const feed = (device: string, metric: string, value: number) =>
    edge.stages[0].process([{ device, metric, value, ts: clock.t }], "test", []);
  return { edge, events, feed };
}

Deno.test("alarms: acknowledge keeps an alarm active, clear ends it, history keeps both with times and values, across a restart", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_700_000_000_000 };
  try {
    let h = start(dir, clock);
    h.feed("tank-2", "level", 95);
    h.feed("pump-1", "pressure", 9);
    clock.t += 1500;
    h.feed("pump-1", "pressure", 9.5);
    assert.deepEqual(h.edge.alarms().active.map((a) => a.key), ["hot", "wet[tank-2]"]);
    assert.deepEqual(h.edge.alarmSummary(), {
      active: 2,
      acknowledged: 0,
      list: [
        { key: "hot", severity: "critical", raisedAt: clock.t, acknowledged: false },
        { key: "wet[tank-2]", severity: "warning", raisedAt: clock.t - 1500, acknowledged: false },
      ],
      more: 0,
    });

    clock.t += 100;
    const acked = h.edge.acknowledge("hot", "page");
    assert.deepEqual(acked.acknowledged, { at: clock.t, by: "page" });
    assert.throws(() => h.edge.acknowledge("cold", "page"), AlarmNotFoundError);
    assert.equal(h.edge.alarmSummary().acknowledged, 1);
    assert.equal(h.edge.alarmSummary().active, 1);
    await h.edge.stop();

    // Acknowledgements and history survive a restart; the alarm is still active.
    h = start(dir, clock);
    const hot = h.edge.alarms().active.find((a) => a.key === "hot")!;
    assert.equal(hot.acknowledged?.by, "page");
    assert.equal(hot.value, 9.5);

    clock.t += 100;
    const cleared = h.edge.clear("hot", "alice");
    assert.equal(cleared.state, "cleared");
    assert.equal(cleared.by, "alice");
    assert.deepEqual(h.events.map((e) => [e.rule, e.state]), [["hot", "cleared"]]);
    assert.deepEqual(h.edge.alarms().active.map((a) => a.key), ["wet[tank-2]"]);
    // Cleared by hand, the rule starts afresh: a reading still above raises it again after `for:`.
    h.feed("pump-1", "pressure", 9.1);
    assert.equal(h.edge.alarms().active.length, 1);
    clock.t += 1100;
    h.feed("pump-1", "pressure", 9.2);
    const again = h.edge.alarms().active.find((a) => a.key === "hot")!;
    assert.equal(again.acknowledged, null, "a new raise is not acknowledged");

    const history = h.edge.alarms().history.map((e) => [e.key, e.to, e.value, e.by ?? null]);
    assert.deepEqual(history, [
      ["hot", "raised", 9.2, null],
      ["hot", "cleared", 9.5, "alice"],
      ["hot", "acknowledged", 9.5, "page"],
      ["hot", "raised", 9.5, null],
      ["wet[tank-2]", "raised", 95, null],
    ]);
    assert.ok(h.edge.alarms().history.every((e) => e.ts >= 1_700_000_000_000));
    const m = h.edge.metrics();
    assert.deepEqual(m.alarms, [
      { rule: "hot", instance: "", severity: "critical", active: true },
      { rule: "wet", instance: "tank-2", severity: "warning", active: true },
    ]);
    assert.equal(m.transitions.find((t) => t.rule === "hot" && t.to === "raised")?.count, 1);
    assert.equal(m.transitions.find((t) => t.rule === "hot" && t.to === "cleared")?.count, 1);
    assert.equal(m.transitions.find((t) => t.rule === "wet" && t.to === "acknowledged")?.count, 0);
    await h.edge.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alarm history is bounded: the newest entries stay", () => {
  const store = AlarmStore.open(":memory:");
  for (let i = 0; i < ALARM_HISTORY_ROWS + 50; i++) {
    store.recordAll([{
      event: {
        rule: "r",
        state: i % 2 ? "cleared" : "raised",
        severity: "info",
        message: "",
        ts: i,
        raisedAt: i,
      },
      queue: false,
    }]);
  }
  const h = store.history(10_000);
  assert.equal(h.length, ALARM_HISTORY_ROWS);
  assert.equal(h[0].ts, ALARM_HISTORY_ROWS + 49);
  store.close();
});
