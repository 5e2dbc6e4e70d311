import assert from "node:assert/strict";
import { RequestError } from "../common/http/mod.ts";
import type { Fleet } from "./client.ts";
import { gatewayPageUrl, resolveConnection } from "./config.ts";
import { formatFleetTable } from "./format.ts";
import { formatTime } from "./results.ts";
import { silentLogger } from "../log.ts";
import { CommandRun } from "./run.ts";
import { CommandJobs, refuseUnreachable } from "./serve_jobs.ts";
import { type FleetSnapshot, SnapshotDiff } from "./serve_live.ts";
import { gatewayView } from "./view.ts";

const NOW = Date.UTC(2026, 11, 3, 14, 5, 9);

function view(status: Record<string, unknown>, live = false) {
  return gatewayView(
    "gw-1",
    { gatewayId: "gw-1", state: "online", version: "1.2.0", ts: NOW - 10_000, ...status } as never,
    { receivedAt: NOW, live, now: NOW, staleAfterMs: 120_000 },
  );
}

Deno.test("formatTime() is one locale-independent 24 h UTC format", () => {
  assert.equal(formatTime(NOW), "2026-12-03 14:05:09 UTC");
  assert.equal(formatTime(Date.UTC(2026, 0, 2, 23, 59, 59, 999)), "2026-01-02 23:59:59 UTC");
  assert.equal(formatTime(null), "-");
});

Deno.test("gatewayView(): alarms, site, page and health read defensively from the status", () => {
  const old = view({});
  assert.deepEqual(
    [old.alarms, old.site, old.pageUrl, old.health, old.healthNote],
    [null, null, null, "ok", null],
    "a status without them: unknown, not zero",
  );
  const a = view({
    site: "plant 3",
    pageUrl: "https://gw-1.plant3.example:8080/",
    alarms: {
      active: 2,
      acknowledged: 1,
      list: [
        { rule: "high-temp", instance: "oven-1", state: "active" },
        { rule: "door", state: "acknowledged" },
        { rule: "low-flow", state: "active" },
      ],
    },
  });
  assert.deepEqual(a.alarms, {
    active: 2,
    acknowledged: 1,
    names: ["high-temp/oven-1", "low-flow"],
  });
  assert.equal(a.site, "plant 3");
  assert.equal(a.pageUrl, "https://gw-1.plant3.example:8080/");
  assert.deepEqual([a.health, a.healthNote], [
    "alarm",
    "2 active alarm(s): high-temp/oven-1, low-flow",
  ]);
  // Wrong shapes are unknown, never a wrong number; only http(s) links.
  for (const alarms of ["3", { active: "2" }, { active: -1 }, [1, 2]]) {
    assert.equal(view({ alarms }).alarms, null, JSON.stringify(alarms));
  }
  assert.equal(view({ alarms: { active: [{ rule: "x" }] } }).alarms?.active, 1);
  for (const pageUrl of ["javascript:alert(1)", "/relative", 42, "ftp://x/"]) {
    assert.equal(view({ pageUrl }).pageUrl, null, String(pageUrl));
  }
  assert.deepEqual(
    [view({ health: { ok: false, failing: ["disk", "uplink"] } }).health],
    ["failing"],
  );
  assert.equal(view({ health: { ok: false, failing: ["disk"] } }).healthNote, "failing: disk");
  const lagging = view({ backlog: 500, oldestPendingAgeMs: 20 * 60_000 });
  assert.deepEqual([lagging.health, lagging.oldestPendingSince], [
    "lagging",
    NOW - 10_000 - 20 * 60_000,
  ]);
  const off = gatewayView("gw-1", {
    gatewayId: "gw-1",
    state: "offline",
    version: "1",
    ts: NOW - 3600_000,
    reason: "connection lost (last will)",
  }, { receivedAt: NOW, live: true, now: NOW + 5000, staleAfterMs: 120_000 });
  assert.deepEqual([off.health, off.offlineSince], ["offline", NOW]);
});

Deno.test("gatewayView(): any status schema: none (older), this one, newer; shed detail is named", () => {
  const old = view({ alarms: { active: 1, acknowledged: 0, list: [], more: 0 } });
  assert.deepEqual([old.schema, old.truncated, old.statusNote], [null, [], null]);
  // A gateway's own alarm summary lists keys; acknowledged ones are not named as active.
  const alarms = {
    active: 1,
    acknowledged: 1,
    list: [
      { key: "pressure-high[pump-1]", severity: "critical", raisedAt: 1, acknowledged: false },
      { key: "door", severity: "warning", raisedAt: 2, acknowledged: true },
    ],
    more: 0,
  };
  const now = view({ schema: 1, alarms });
  assert.deepEqual([now.schema, now.statusNote], [1, null]);
  assert.deepEqual(now.alarms?.names, ["pressure-high[pump-1]"]);
  // Newer: what it knows is shown, what it does not is left alone, and the note says so.
  const newer = view({ schema: 7, alarms, backlog: 12, somethingNew: { x: [1, 2] } });
  assert.deepEqual([newer.schema, newer.backlog, newer.alarms?.active, newer.health], [
    7,
    12,
    1,
    "alarm",
  ]);
  assert.match(newer.statusNote ?? "", /schema 7 is newer than this console's \(1\)/);
  assert.match(
    newer.healthNote ?? "",
    /^1 active alarm\(s\): pressure-high\[pump-1\]; status schema 7/,
  );
  // Shed for size: sections it left out are unknown (not zero), and named.
  const shed = view({
    schema: 1,
    alarms: { active: 30, acknowledged: 0, more: 30 },
    truncated: ["alarms.list", "doctor", 5, "x".repeat(100)],
  });
  assert.deepEqual([shed.alarms?.active, shed.alarms?.names, shed.doctor], [30, [], null]);
  assert.deepEqual(shed.truncated, ["alarms.list", "doctor"]);
  assert.equal(shed.statusNote, "left out to fit the status size: alarms.list, doctor");
  assert.match(
    formatFleetTable([shed], NOW),
    /left out to fit the status size: alarms\.list, doctor/,
  );
});

Deno.test("gatewayView(): the host checklist's verdict read defensively from `doctor`", () => {
  assert.equal(view({}).doctor, null, "a gateway that does not publish it: unknown");
  const d = view({
    doctor: {
      at: NOW - 60_000,
      ok: false,
      summary: { pass: 9, warn: 1, fail: 2, skip: 1 },
      failing: ["uplink.tls", "net.ip_forward"],
      warning: ["time.sync"],
    },
  }).doctor;
  assert.deepEqual(d, {
    ok: false,
    failing: ["uplink.tls", "net.ip_forward"],
    warning: ["time.sync"],
    fail: 2,
    warn: 1,
    at: NOW - 60_000,
    label: "2 failing, 1 warning",
  });
  const ok = view({
    doctor: { ok: true, summary: { fail: 0, warn: 0 }, failing: [], warning: [] },
  });
  assert.equal(ok.doctor?.label, "ok");
  assert.equal(
    view({ doctor: { ok: true, summary: { warn: 2 }, failing: [], warning: ["a", "b"] } }).doctor
      ?.label,
    "ok, 2 warnings",
  );
  // Failing checks it names make it failing whatever `ok` says; junk ids are dropped.
  const odd = view({ doctor: { ok: true, failing: ["a", 7, "", "x".repeat(65), "b"] } }).doctor;
  assert.deepEqual([odd?.ok, odd?.failing, odd?.label], [false, ["a", "b"], "2 failing"]);
  for (const doctor of [true, "ok", 3, [], { summary: { fail: 1 } }, { ok: "no" }]) {
    assert.equal(view({ doctor }).doctor, null, JSON.stringify(doctor));
  }
  assert.equal(
    view({ doctor: { failing: Array.from({ length: 50 }, (_, i) => `c${i}`) } }).doctor?.failing
      .length,
    20,
  );
  // The health word does not move with it.
  assert.deepEqual([view({ doctor: { ok: false, failing: ["x"] } }).health], ["ok"]);
});

Deno.test("gatewayView(): device updates read defensively from `deviceUpdates`", () => {
  assert.equal(view({}).deviceUpdates, null);
  const states = (o: Record<string, number>) => ({
    unknown: 0,
    current: 0,
    waiting: 0,
    offered: 0,
    downloading: 0,
    installed: 0,
    failed: 0,
    "rolled-back": 0,
    ...o,
  });
  const u = view({
    deviceUpdates: {
      classes: [
        {
          class: "boiler",
          devices: 4,
          states: states({ current: 3, "rolled-back": 1 }),
          rollout: { name: "boiler-fw", version: "1.1.0", status: "stopped", failures: 1 },
        },
        {
          class: "cam",
          devices: 3,
          states: states({ current: 1, offered: 1, waiting: 1 }),
          rollout: { name: "yolo", version: "8", status: "running", failures: 0 },
        },
        { class: "meter", devices: 2, states: states({ current: 2 }), rollout: null },
      ],
      more: 0,
    },
  }).deviceUpdates;
  assert.deepEqual(u?.classes[0], {
    class: "boiler",
    devices: 4,
    current: 3,
    failed: 1,
    inFlight: 0,
    waiting: 0,
    rollout: { name: "boiler-fw", version: "1.1.0", status: "stopped", failures: 1 },
  });
  assert.equal(
    u?.label,
    "boiler: 3/4 current, stopped: 1 failed; cam: 1/3 current, 8 rolling out; meter: 2/2 current",
  );
  assert.equal(view({ deviceUpdates: { classes: [] } }).deviceUpdates?.label, "-");
  for (const deviceUpdates of [true, "x", [], { classes: "boiler" }, {}]) {
    assert.equal(view({ deviceUpdates }).deviceUpdates, null, JSON.stringify(deviceUpdates));
  }
  // Junk classes are skipped, wrong numbers count as 0, an unknown rollout status as none.
  const odd = view({
    deviceUpdates: {
      classes: [
        null,
        { class: 5 },
        {
          class: "x",
          devices: "4",
          states: { current: -1, failed: "2", waiting: 1 },
          rollout: { name: "n", version: "1", status: "exploded", failures: 1 },
        },
      ],
      more: 3,
    },
  }).deviceUpdates;
  assert.deepEqual(odd?.classes, [
    { class: "x", devices: 1, current: 0, failed: 0, inFlight: 0, waiting: 1, rollout: null },
  ]);
  assert.equal(odd?.label, "x: 0/1 current; 3 more class(es)");
  const many = view({
    deviceUpdates: {
      classes: Array.from({ length: 25 }, (_, i) => ({ class: `c${i}`, devices: 1 })),
    },
  }).deviceUpdates;
  assert.deepEqual([many?.classes.length, many?.more], [20, 5]);
});

Deno.test("gatewayPageUrl(): the status's own link, else per gateway, per site, the pattern", () => {
  const pages = {
    url: "https://{id}.fleet.example/",
    sites: { "plant 3": "https://p3.example/{site}/{id}" },
    gateways: { "gw-9": "http://10.0.0.9:8080/" },
  };
  const g = (id: string, site: string | null, pageUrl: string | null = null) => ({
    id,
    site,
    pageUrl,
  });
  assert.equal(gatewayPageUrl(g("gw-1", null, "https://own/"), pages), "https://own/");
  assert.equal(gatewayPageUrl(g("gw-9", "plant 3"), pages), "http://10.0.0.9:8080/");
  assert.equal(gatewayPageUrl(g("gw-2", "plant 3"), pages), "https://p3.example/plant%203/gw-2");
  assert.equal(gatewayPageUrl(g("gw-3", null), pages), "https://gw-3.fleet.example/");
  assert.equal(
    gatewayPageUrl(g("constructor", "toString"), pages),
    "https://constructor.fleet.example/",
  );
  assert.equal(gatewayPageUrl(g("gw-3", null), { url: "https://x/{site}/{id}" }), null);
  assert.equal(gatewayPageUrl(g("gw-3", null), undefined), null);
});

Deno.test("refuseUnreachable(): an offline or unknown gateway is refused with when and why", () => {
  const fleet = {
    gateway: (id: string) =>
      id === "up"
        ? { state: "online" }
        : id === "down"
        ? { state: "offline", offlineSince: NOW, reason: "connection lost (last will)" }
        : undefined,
  } as unknown as Fleet;
  refuseUnreachable(fleet, "restart", ["up"]);
  assert.throws(
    () => refuseUnreachable(fleet, "restart", ["up", "down", "ghost"]),
    (e: unknown) =>
      e instanceof RequestError && e.status === 409 &&
      e.message ===
        "restart not sent: down is offline since 2026-12-03 14:05:09 UTC (connection lost (last will)); ghost has published no status",
  );
});

Deno.test("SnapshotDiff: a patch carries only what changed; nothing changed, no patch", () => {
  const gw = (id: string, backlog: number) => ({ id, backlog }) as never;
  const snap = (gateways: unknown[], connected = true) =>
    ({
      now: NOW,
      broker: "mqtt://b",
      prefix: "gateways",
      keyid: null,
      connected,
      lastError: null,
      gateways,
      ops: [],
      exports: [],
    }) as unknown as FleetSnapshot;
  const d = new SnapshotDiff();
  const ids = Array.from({ length: 500 }, (_, i) => `gw-${i}`);
  d.reset(snap(ids.map((id) => gw(id, 0))));
  assert.equal(d.next(snap(ids.map((id) => gw(id, 0)))), undefined);
  const changed = d.next(snap(ids.map((id) => gw(id, id === "gw-123" ? 7 : 0))));
  assert.deepEqual(changed, { now: NOW, gateways: [{ id: "gw-123", backlog: 7 }] });
  const removed = d.next(
    snap(ids.filter((id) => id !== "gw-4").map((id) => gw(id, id === "gw-123" ? 7 : 0)), false),
  );
  assert.deepEqual(removed?.removed, ["gw-4"]);
  assert.equal(removed?.gateways, undefined);
  assert.equal(removed?.head?.connected, false);
});

Deno.test("resolveConnection(): the pages: of the connection file, as docs/operations.md shows it", async () => {
  const docs = await Deno.readTextFile(new URL("../../docs/operations.md", import.meta.url));
  const example = /```yaml\n(pages:\n[\s\S]*?)```/.exec(docs)?.[1];
  assert.ok(example, "the pages: example in docs/operations.md");
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, `url: mqtt://127.0.0.1:1883\n${example}`);
    const { pages } = resolveConnection({ connection: file }, () => undefined);
    const url = (id: string, site: string | null) =>
      gatewayPageUrl({ id, site, pageUrl: null }, pages);
    assert.equal(url("plant3-gw1", "plant3"), "https://10.3.0.5:8080/");
    assert.equal(url("plant3-gw2", "plant3"), "https://plant3.example.com/plant3-gw2/");
    assert.equal(url("gw-9", null), "https://gw-9.gateways.example.com:8080/");
    await Deno.writeTextFile(
      file,
      `url: mqtt://127.0.0.1:1883\npages: { url: "javascript:alert(1)" }\n`,
    );
    assert.throws(() => resolveConnection({ connection: file }, () => undefined), /pages\.url/);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("CommandJobs: the page's queries keep their rows, the last 5 only; a result names what it lost", async () => {
  let n = 0;
  const fleet = {
    gateway: () => ({ state: "online" }),
    gateways: () => [{ id: "g1", state: "online" }],
    send: (cmd: string, o: { args: Record<string, unknown> }) => {
      const run = new CommandRun({
        id: crypto.randomUUID(),
        cmd,
        args: o.args,
        fleetWide: false,
        timeoutMs: 60_000,
      });
      const rid = `r${++n}`;
      run.addTarget("g1", rid, { startedAt: null, version: null });
      run.seal();
      const reply = { id: rid, gatewayId: "g1", cmd, ts: NOW };
      run.handleReply({
        ...reply,
        status: "page",
        final: false,
        page: 0,
        result: { rows: [[n, NOW, "d", "m", 1, null, true]], lastSeq: n },
      });
      run.handleReply({
        ...reply,
        status: "done",
        final: true,
        result: { rows: 1, pages: 1, lastSeq: n, complete: true },
      });
      return run;
    },
  } as unknown as Fleet;
  const jobs = new CommandJobs({
    fleet,
    log: silentLogger(),
    signal: new AbortController().signal,
    changed: () => {},
  });
  const ops: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await jobs.start(
      new Request("http://x/api/commands", {
        method: "POST",
        body: JSON.stringify({ cmd: "query", targets: ["g1"], args: { device: "d" } }),
      }),
    );
    ops.push((await r.json()).op);
  }
  const newest = await jobs.result(ops[5], "g1").json();
  assert.deepEqual([newest.rows, newest.note], [[[6, NOW, "d", "m", 1, null, true]], null]);
  assert.deepEqual(newest.args, { device: "d", limit: 1000 });
  const oldest = await jobs.result(ops[0], "g1").json();
  assert.equal(oldest.rows, null);
  assert.match(oldest.note, /no longer kept \(the last 5 queries keep theirs\)/);
  assert.equal(oldest.result.rows, 1, "the summary stays");
  assert.equal(jobs.result(ops[0], "nope").status, 404);
});
