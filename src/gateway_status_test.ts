import assert from "node:assert/strict";
import { adapters } from "../adapters/mod.ts";
import type { Buffer, BufferStats, WearMeter } from "./buffer/mod.ts";
import { gatewaySchema } from "./config/gateway.ts";
import { parseConfig } from "./config/load.ts";
import { summarizeDevices } from "./devices/mod.ts";
import { reportSummary } from "./doctor/mod.ts";
import type { DoctorReport } from "./doctor/mod.ts";
import { summarize } from "./edge/alarms.ts";
import type { ActiveAlarm, Edge } from "./edge/mod.ts";
import { statusMessage, type StatusParts } from "./gateway_status.ts";
import type { Pipeline } from "./pipeline.ts";
import type { AdapterSupervisor } from "./supervisor.ts";
import { STATUS_BUDGET_BYTES, STATUS_SCHEMA } from "./uplink/mod.ts";

const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;
const long = (prefix: string, n: number) => `${prefix}-${"x".repeat(n - prefix.length - 1)}`;

/** Status parts of a gateway whose every outside name is as long as config and devices allow. */
function parts(
  o: { alarms: number; classes: number; names: number; uplink?: string; site?: string },
): StatusParts {
  const gatewayId = long("gw", 128);
  const config = parseConfig(
    `gateway: { id: ${gatewayId}, site: ${JSON.stringify(o.site ?? "hall B")} }
buffer: { path: /tmp/unused.db }
${o.uplink ?? ""}`,
    gatewaySchema(adapters),
  );
  const now = Date.now();
  const active: ActiveAlarm[] = Array.from({ length: o.alarms }, (_, i) => {
    const rule = long(`rule${i}`, o.names);
    const instance = long(`device${i}`, o.names);
    return {
      key: `${rule}[${instance}]`,
      rule,
      instance,
      severity: "critical",
      message: "too high",
      raisedAt: now - i,
      acknowledged: i % 3 === 0 ? { by: "op", at: now } : null,
    } as ActiveAlarm;
  });
  const classes = Array.from({ length: o.classes }, (_, i) => long(`class${i}`, o.names));
  const checks = Array.from({ length: 30 }, (_, i) => ({
    id: long(`check${i}`, Math.min(o.names, 64)),
    verdict: i % 2 ? "fail" : "warn",
    reason: "",
  }));
  const doctor = reportSummary(
    {
      at: now,
      root: "/",
      ok: false,
      summary: { fail: 15, warn: 15 },
      checks,
    } as unknown as DoctorReport,
  );
  const deviceUpdates = summarizeDevices({
    counts: Object.fromEntries(classes.map((c) => [c, { current: 3, failed: 1 }])),
    rollouts: Object.fromEntries(
      classes.map((
        c,
      ) => [c, {
        name: long("rollout", o.names),
        version: "2.1.0",
        status: "running",
        failures: 1,
      }]),
    ),
  } as never);
  const stats = {
    pending: 1234,
    rows: 5000,
    oldestPendingTs: now - 60_000,
    droppedUnforwarded: 0,
    lastCommitError: { at: now, error: long("disk error", 300) },
    diskFull: null,
    freeDisk: 1,
    reserve: "ready",
  } as unknown as BufferStats;
  return {
    config,
    version: "1.2.3",
    startedAt: now - 3600_000,
    graceMs: 0,
    buffer: { stats: () => stats } as unknown as Buffer,
    wear: {} as WearMeter,
    pipeline: {} as Pipeline,
    supervisors: [{
      status: () => ({ name: long("adapter", 128), state: "failed", lastError: "gone" }),
    } as unknown as AdapterSupervisor],
    presence: new Map(),
    uplink: undefined,
    forwarder: undefined,
    edge: { alarmSummary: () => summarize(active) } as unknown as Edge,
    statusSections: undefined,
    announce: () => ({ doctor, deviceUpdates }),
  };
}

Deno.test("statusMessage() keeps a worst-case status within its budget, core fields intact and the shedding named", () => {
  const p = parts({ alarms: 40, classes: 20, names: 128, site: long("plant", 2000) });
  const msg = statusMessage(p, "online");
  const size = bytes(msg);
  console.log(`worst case: ${size} bytes (budget ${STATUS_BUDGET_BYTES})`);
  assert.ok(size <= STATUS_BUDGET_BYTES, `${size} bytes over ${STATUS_BUDGET_BYTES}`);
  assert.equal(msg.schema, STATUS_SCHEMA);
  assert.equal(msg.gatewayId, p.config.gateway.id);
  assert.equal(msg.state, "online");
  assert.equal(msg.version, "1.2.3");
  assert.equal(typeof msg.ts, "number");
  assert.equal(msg.backlog, 1234);
  assert.equal((msg.health as { ok: boolean }).ok, false);
  const alarms = msg.alarms as {
    active: number;
    acknowledged: number;
    list?: unknown[];
    more: number;
  };
  assert.deepEqual([alarms.active, alarms.acknowledged], [26, 14]);
  // Every active alarm is counted: in the list or in `more`.
  assert.equal((alarms.list?.length ?? 0) + alarms.more, 40);
  const truncated = msg.truncated as string[];
  assert.ok(truncated.includes("site"), truncated.join());
  assert.ok(truncated.includes("alarms.list"), truncated.join());
  assert.ok((msg.site as string).length <= 200);
});

Deno.test("statusMessage() fits the uplink's maxMessageBytes when it is below the budget", () => {
  const uplink = "uplink: { type: mqtt, url: mqtt://127.0.0.1:1, maxMessageBytes: 1KB }";
  const msg = statusMessage(
    parts({ alarms: 40, classes: 20, names: 128, uplink, site: long("plant", 2000) }),
    "offline",
    long("stopping", 1000),
  );
  assert.ok(bytes(msg) <= 1024, `${bytes(msg)} bytes over 1024`);
  assert.equal(msg.state, "offline");
  assert.equal(msg.backlog, 1234);
  assert.deepEqual((msg.alarms as { active: number }).active, 26);
  assert.ok((msg.reason as string).startsWith("stopping-"));
  const truncated = msg.truncated as string[];
  for (const gone of ["deviceUpdates", "doctor"]) {
    assert.equal(msg[gone], undefined, gone);
    assert.ok(truncated.includes(gone), truncated.join());
  }
  assert.equal((msg.alarms as { more: number }).more, 40);
});

Deno.test("statusMessage() leaves a status within the budget as it is", () => {
  const msg = statusMessage(parts({ alarms: 20, classes: 10, names: 24 }), "online");
  console.log(`typical full status: ${bytes(msg)} bytes`);
  assert.equal(msg.truncated, undefined);
  assert.equal((msg.alarms as { list: unknown[] }).list.length, 20);
  assert.equal((msg.deviceUpdates as { classes: unknown[] }).classes.length, 10);
  assert.equal((msg.doctor as { failing: unknown[] }).failing.length, 15);
  assert.equal(msg.site, "hall B");
});
