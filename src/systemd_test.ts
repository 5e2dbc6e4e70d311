import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { createLogger, type LogRecord } from "./log.ts";
import {
  BufferWriteProbe,
  notify,
  notifySocketPath,
  readyMessage,
  startWatchdog,
  SystemdNotifier,
  watchdogIntervalMs,
  watchdogProblem,
} from "./systemd.ts";
import { notifySocket } from "../test/helpers/notify_socket.ts";
import { waitFor } from "../test/helpers/ports.ts";

function env(vars: Record<string, string>) {
  return { get: (k: string) => vars[k] };
}

Deno.test("notifySocketPath() maps @names to abstract addresses and refuses relative paths", () => {
  assert.equal(notifySocketPath("@outpost/notify"), "\0outpost/notify");
  assert.equal(notifySocketPath("/run/systemd/notify"), "/run/systemd/notify");
  assert.throws(() => notifySocketPath("run/notify"), /absolute path or an @abstract name/);
});

Deno.test("notify() is a no-op without NOTIFY_SOCKET and reaches path and abstract sockets", async () => {
  assert.equal(await notify("READY=1", { env: env({}) }), false);
  const dir = await Deno.makeTempDir();
  const file = notifySocket(`${dir}/notify`);
  const name = `outpost-test-${crypto.randomUUID()}`;
  const abstract = notifySocket(`\0${name}`);
  try {
    assert.equal(await notify("READY=1", { env: env({ NOTIFY_SOCKET: `${dir}/notify` }) }), true);
    assert.equal(await notify("STOPPING=1", { env: env({ NOTIFY_SOCKET: `@${name}` }) }), true);
    await waitFor("both datagrams", () => file.got.length === 1 && abstract.got.length === 1);
    assert.deepEqual(file.got.map((d) => d.text), ["READY=1"]);
    assert.deepEqual(abstract.got.map((d) => d.text), ["STOPPING=1"]);
  } finally {
    await file.close();
    await abstract.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SystemdNotifier logs an unreachable socket once and resolves false", async () => {
  const log = createLogger({ sink: () => {} });
  const n = new SystemdNotifier("/nonexistent/notify", log.child("systemd"));
  try {
    assert.equal(await n.notify("WATCHDOG=1"), false);
    assert.equal(await n.notify("WATCHDOG=1"), false);
    const warned = log.recent().filter((r: LogRecord) => r.msg === "cannot notify systemd");
    assert.equal(warned.length, 1);
  } finally {
    n.close();
  }
});

Deno.test("watchdogIntervalMs() is half of WATCHDOG_USEC and honours WATCHDOG_PID", () => {
  assert.equal(watchdogIntervalMs(env({}), 10), undefined);
  assert.equal(watchdogIntervalMs(env({ WATCHDOG_USEC: "30000000" }), 10), 15_000);
  assert.equal(watchdogIntervalMs(env({ WATCHDOG_USEC: "400000", WATCHDOG_PID: "10" }), 10), 200);
  assert.equal(
    watchdogIntervalMs(env({ WATCHDOG_USEC: "400000", WATCHDOG_PID: "11" }), 10),
    undefined,
  );
  assert.equal(watchdogIntervalMs(env({ WATCHDOG_USEC: "garbage" }), 10), undefined);
});

Deno.test("startWatchdog() pings with STATUS, withholds pings while unhealthy and resumes", async () => {
  const sent: string[] = [];
  let problem: string | undefined;
  const ac = new AbortController();
  const log = createLogger({ sink: () => {} });
  startWatchdog({
    notifier: { notify: (s) => Promise.resolve(sent.push(s) > 0) },
    intervalMs: 20,
    ping: true,
    check: () => problem,
    status: () => "3 pending; no uplink",
    log,
    signal: ac.signal,
  });
  try {
    await waitFor("two pings", () => sent.length >= 2);
    assert.equal(sent[0], "WATCHDOG=1\nSTATUS=3 pending; no uplink");
    problem = "buffer not writable";
    const mark = sent.length;
    await waitFor("a withheld tick", () => sent.slice(mark).some((s) => !s.includes("WATCHDOG")));
    const withheld = sent.slice(mark).filter((s) => !s.includes("WATCHDOG"));
    assert.equal(withheld[0], "STATUS=unhealthy: buffer not writable");
    assert.equal(log.recent().filter((r) => r.msg.startsWith("withholding")).length, 1);
    problem = undefined;
    const mark2 = sent.length;
    await waitFor("pings again", () => sent.slice(mark2).some((s) => s.startsWith("WATCHDOG=1")));
  } finally {
    ac.abort();
  }
  const n = sent.length;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(sent.length, n, "no ticks after abort");
});

Deno.test("startWatchdog() keeps pinging when its status line throws (a status section that fails)", async () => {
  const sent: string[] = [];
  const ac = new AbortController();
  const log = createLogger({ sink: () => {} });
  startWatchdog({
    notifier: { notify: (s) => Promise.resolve(sent.push(s) > 0) },
    intervalMs: 20,
    ping: true,
    check: () => undefined,
    status: () => {
      throw new Error("device status broke");
    },
    log,
    signal: ac.signal,
  });
  try {
    await waitFor("two pings", () => sent.length >= 2);
    assert.equal(sent[0], "WATCHDOG=1\nSTATUS=status unavailable: device status broke");
    assert.equal(log.recent().filter((r) => r.msg.startsWith("cannot build the status")).length, 1);
  } finally {
    ac.abort();
  }
});

Deno.test("startWatchdog() sends nothing while the event loop is blocked and reports the stall", async () => {
  const at: number[] = [];
  const ac = new AbortController();
  const log = createLogger({ sink: () => {} });
  startWatchdog({
    notifier: { notify: () => Promise.resolve(at.push(Date.now()) > 0) },
    intervalMs: 20,
    ping: true,
    log,
    signal: ac.signal,
  });
  try {
    await waitFor("a first ping", () => at.length >= 1);
    const blockedFrom = Date.now();
    while (Date.now() - blockedFrom < 300) { /* a hung handler */ }
    const blockedTo = Date.now();
    await waitFor("a ping after the stall", () => at.some((t) => t >= blockedTo));
    assert.equal(at.filter((t) => t > blockedFrom && t < blockedTo).length, 0);
    assert.equal(at.filter((t) => t >= blockedTo && t < blockedTo + 15).length <= 1, true);
    assert.ok(log.recent().some((r) => r.msg.includes("event loop was blocked")));
  } finally {
    ac.abort();
  }
});

Deno.test("BufferWriteProbe passes on a writable file and fails on a locked or missing one", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/buffer.db`;
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY)");
  const probe = new BufferWriteProbe(path);
  try {
    assert.equal(probe.check(), undefined);
    // Something else holding the write lock for good (a wedged transaction).
    db.exec("BEGIN IMMEDIATE");
    assert.match(probe.check() ?? "", /not writable: .*locked/);
    db.exec("ROLLBACK");
    assert.equal(probe.check(), undefined);
    const missing = new BufferWriteProbe(`${dir}/gone.db`);
    assert.match(missing.check() ?? "", /gone\.db" is not writable/);
    missing.close();
    await assert.rejects(Deno.stat(`${dir}/gone.db`), Deno.errors.NotFound);
  } finally {
    probe.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchdogProblem(): failing commits or a failing probe withhold the ping; a full disk does not", () => {
  const health = (checks: Record<string, { ok: boolean; detail: string }>) => ({
    ok: Object.values(checks).every((c) => c.ok),
    checks,
  });
  const fine = { probe: () => undefined };
  const full = { probe: () => ({ error: "database or disk is full", diskFull: true }) };
  const broken = { probe: () => ({ error: "disk I/O error", diskFull: false }) };
  const ok = { buffer: { ok: true, detail: "" }, disk: { ok: true, detail: "" } };
  assert.equal(watchdogProblem(health(ok), fine), undefined);
  assert.equal(
    watchdogProblem(health({ ...ok, buffer: { ok: false, detail: "commits fail" } }), fine),
    "buffer: commits fail",
  );
  assert.equal(watchdogProblem(health(ok), broken), "disk I/O error");
  // A restart frees no disk space: the disk check shows in STATUS=, the ping goes on.
  assert.equal(
    watchdogProblem(health({ ...ok, disk: { ok: false, detail: "full since …" } }), full),
    undefined,
  );
});

Deno.test("readyMessage(): READY=1 with the status line, or with why there is none when a status section throws", () => {
  assert.match(
    readyMessage(() => {
      throw new Error("doctor summary broke\nsecond line");
    }),
    /^READY=1\nSTATUS=status unavailable: doctor summary broke second line$/,
  );
});
