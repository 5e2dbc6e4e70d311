import assert from "node:assert/strict";
import { type AlarmEvent, AlarmStore } from "./alarm_store.ts";

function ev(rule: string, state: "raised" | "cleared", ts: number, instance?: string): AlarmEvent {
  return {
    rule,
    ...(instance !== undefined ? { instance } : {}),
    state,
    severity: "warning",
    message: `${rule} ${state}`,
    ts,
    raisedAt: ts,
  };
}

Deno.test("recordAll: 250 transitions in one call keep their order in the outbox, and the last transition of an alarm decides whether it is active", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let store = AlarmStore.open(`${dir}/alarms.db`);
    store.recordAll([{ event: ev("old", "raised", 1), queue: false }]);
    const list: { event: AlarmEvent; queue: boolean }[] = [];
    for (let i = 0; i < 120; i++) list.push({ event: ev(`r${i}`, "raised", 10 + i), queue: true });
    // Raised and cleared within the same call: not active afterwards.
    for (let i = 0; i < 60; i++) list.push({ event: ev(`r${i}`, "cleared", 200 + i), queue: true });
    // Cleared and raised again: active, with the later event.
    list.push({ event: ev("old", "cleared", 300), queue: true });
    list.push({ event: ev("old", "raised", 301), queue: true });
    for (let i = 0; i < 68; i++) {
      list.push({ event: ev("glob", "raised", 400 + i, `dev-${i}`), queue: i % 2 === 0 });
    }
    store.recordAll(list);
    store.close();
    store = AlarmStore.open(`${dir}/alarms.db`);
    const active = store.active();
    assert.equal(active.size, 60 + 1 + 68);
    assert.equal(active.has("r0"), false);
    assert.equal(active.get("r60")?.ts, 70);
    assert.equal(active.get("old")?.ts, 301);
    assert.equal(active.get("glob[dev-3]")?.instance, "dev-3");
    const queued = store.pending(1000).map((p) => p.event.ts);
    const want = list.filter((l) => l.queue).map((l) => l.event.ts);
    assert.deepEqual(queued, want);
    store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
