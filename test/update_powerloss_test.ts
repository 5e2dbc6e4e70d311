/**
 * Power loss during a self-update: the gateway's whole process group is SIGKILLed at each step — download, verify, either side of the `current`
 * switch, trial — then started again the way systemd does (the guard as ExecStartPre, then
 * `current/outpost run`). Real bundled artifacts, a real channel server, a real Mosquitto. The
 * updater is stopped exactly at a step by the test-hooks build's hold points (or by a channel
 * server that stalls mid-download), never by timing.
 */
import assert from "node:assert/strict";
import { type Broker, startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import {
  artifacts,
  assertFlowing,
  bufferContents,
  type ChannelServer,
  channelServer,
  type Device,
  device,
  publish,
  releaseDir,
  TARGET,
} from "./helpers/update.ts";
import type { Subscriber } from "./helpers/subscriber.ts";

interface Ctx {
  broker: Broker;
  key: { key: string; pub: string };
  tmp: string;
}

interface Rig {
  channel: string;
  srv: ChannelServer;
  dev: Device;
  sub: Subscriber;
  hold: string;
}

async function setup(): Promise<Ctx> {
  const tmp = await Deno.makeTempDir({ prefix: "outpost-powerloss-" });
  const [broker, key] = await Promise.all([
    startMosquitto(),
    releaseDir(`${tmp}/keys`),
    artifacts(),
  ]);
  return { broker, key, tmp };
}

/** A device on 1.1.0 forwarding to the broker, with its own channel; `hold` set for this boot. */
async function rig(
  ctx: Ctx,
  step?: string,
  opts: { startTimeoutMs?: number; healthDeadline?: string } = {},
): Promise<Rig> {
  const channel = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "channel-" });
  const hold = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "hold-" });
  const srv = channelServer(channel);
  const dev = await device({
    channelUrl: srv.url,
    pubkeys: [ctx.key.pub],
    broker: ctx.broker.url,
    ...opts,
  });
  const sub = await dev.subscriber();
  await dev.boot(step ? { OUTPOST_TEST_HOLD: `${step}:${hold}` } : {});
  await dev.waitStatus(
    "1.1.0 healthy and connected",
    (s) => s.version === "1.1.0" && s.health.ok && !!s.uplink?.connected,
  );
  return { channel, srv, dev, sub, hold };
}

async function close(r: Rig | undefined) {
  await r?.dev.close();
  await r?.srv.close();
}

const held = (r: Rig, step: string) =>
  waitFor(`${r.dev.id} to hold at "${step}"`, () => Deno.stat(`${r.hold}/held-${step}`), 60_000, 50)
    .catch(async (e) => {
      throw new Error(`${e.message}\n--- log ---\n${await Deno.readTextFile(r.dev.log)}`);
    });

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Power cut; returns what the buffer file holds afterwards (checked against the last status). */
async function cut(r: Rig, rowsBefore: number): Promise<Map<number, string>> {
  await r.dev.powerCut();
  const contents = bufferContents(r.dev.buffer);
  assert.ok(
    contents.size >= rowsBefore,
    `buffer holds ${contents.size} readings after the cut, status showed ${rowsBefore} before`,
  );
  return contents;
}

const committedOn =
  (version: string) =>
  (s: { version: string; update: { phase?: string; committed: { version: string } } }) =>
    s.version === version && s.update.phase === "committed" &&
    s.update.committed.version === version;

const artifactPath = `/artifacts/2.0.0/${TARGET}/outpost`;

/** Killed mid-download: the old version runs on; the next check resumes the partial file. */
async function downloadCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx);
    const { dev, srv } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    const stall = srv.stallNext();
    await publish(r.channel, a.good, "2.0.0", [ctx.key.key]);
    const half = await stall.sent;
    await waitFor(
      "half the artifact in the staging file",
      async () => (await Deno.stat(dev.slots.staging("b")).catch(() => undefined))?.size === half,
      30_000,
    );
    const before = await cut(r, rows);
    stall.cut();
    const st = await dev.slots.readState();
    assert.equal(st.phase, "committed");
    assert.equal(await dev.slots.active(), "a");
    assert.equal(await exists(dev.slots.binary("b")), false);
    assert.equal((await Deno.stat(dev.slots.staging("b"))).mode! & 0o777, 0o600);
    // Boot with the channel busy: the committed version must come up and forward by itself.
    srv.holdManifest = true;
    await dev.boot();
    await dev.waitStatus(
      "1.1.0 back, forwarding, its check refused while the channel is busy",
      (s) =>
        committedOn("1.1.0")(s) && !!s.uplink?.connected &&
        s.update.lastCheck?.code === "manifest-unreachable",
    );
    assert.equal(await exists(`${dev.slots.root}/trial-boots`), false, "nothing counted");
    assert.equal((await Deno.stat(dev.slots.staging("b"))).size, half, "partial file kept");
    srv.holdManifest = false;
    const s = await dev.waitStatus("2.0.0 committed", committedOn("2.0.0"));
    assert.equal(s.update.committed.slot, "b");
    assert.equal(s.update.lastRollback, undefined);
    assert.ok(
      srv.requests.includes(`${artifactPath} bytes=${half}-`),
      `resumed with Range: ${srv.requests.join(", ")}`,
    );
    assert.match(await Deno.readTextFile(dev.log), /resuming download/);
    await assertFlowing(dev, r.sub, before);
  } finally {
    await close(r);
  }
}

/** Killed after the download, before the hash check: the kept file is verified, not fetched again. */
async function verifyCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx, "verify");
    const { dev, srv } = r;
    const a = await artifacts();
    await publish(r.channel, a.good, "2.0.0", [ctx.key.key]);
    await held(r, "verify");
    // Staging happens beside the running gateway: it still serves.
    const s0 = await dev.status();
    assert.equal(s0.version, "1.1.0");
    const before = await cut(r, s0.buffer.rows);
    assert.equal((await Deno.stat(dev.slots.staging("b"))).size, (await Deno.stat(a.good)).size);
    assert.equal((await Deno.stat(dev.slots.staging("b"))).mode! & 0o111, 0, "never executable");
    assert.equal(await exists(dev.slots.binary("b")), false);
    assert.equal((await dev.slots.readState()).phase, "committed");
    const downloads = srv.requests.filter((q) => q.startsWith(artifactPath)).length;
    srv.holdManifest = true;
    await dev.boot();
    await dev.waitStatus(
      "1.1.0 back and forwarding",
      (s) => committedOn("1.1.0")(s) && !!s.uplink?.connected,
    );
    srv.holdManifest = false;
    await dev.waitStatus("2.0.0 committed", committedOn("2.0.0"));
    assert.equal(
      srv.requests.filter((q) => q.startsWith(artifactPath)).length,
      downloads,
      "the complete staging file was verified and used, not downloaded again",
    );
    await assertFlowing(dev, r.sub, before);
  } finally {
    await close(r);
  }
}

/** Killed with state `trial` written but `current` not yet moved: the new version never ran, so
 * it is not judged; the old version records the interruption and the update is installed again. */
async function switchCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx, "switch");
    const { dev, srv } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    await publish(r.channel, a.good, "2.0.0", [ctx.key.key]);
    await held(r, "switch");
    const before = await cut(r, rows);
    const st = await dev.slots.readState();
    assert.equal(st.phase, "trial");
    assert.equal(st.trial?.version, "2.0.0");
    assert.equal(await dev.slots.active(), "a");
    assert.ok(await exists(`${dev.slots.root}/trial.env`));
    srv.holdManifest = true;
    await dev.boot();
    const back = await dev.waitStatus(
      "1.1.0 back and forwarding",
      (s) => committedOn("1.1.0")(s) && !!s.uplink?.connected,
    );
    const interrupted = back.update.history?.find((h) => h.result === "interrupted");
    assert.equal(interrupted?.version, "2.0.0");
    assert.match(
      interrupted!.reason!,
      /restarted before 2\.0\.0 ran on trial; it will be tried again/,
    );
    assert.equal(back.update.lastRollback, undefined, "not a rollback: 2.0.0 never ran");
    assert.equal((await dev.slots.readState()).history[0].result, "interrupted");
    srv.holdManifest = false;
    const s = await dev.waitStatus("2.0.0 committed", committedOn("2.0.0"));
    assert.equal(s.update.lastRollback, undefined);
    await assertFlowing(dev, r.sub, before);
  } finally {
    await close(r);
  }
}

/**
 * Killed with `current` moved but the new version not started: systemd starts the new version,
 * which finds itself on trial, proves itself healthy and commits. Then power cuts during normal
 * boots of the committed version — more than maxAttempts, at several moments of the boot, with a
 * stale trial.env left as by a cut just after a commit — change nothing.
 */
async function switchedCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx, "switched");
    const { dev } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    await publish(r.channel, a.good, "2.0.0", [ctx.key.key]);
    await held(r, "switched");
    const before = await cut(r, rows);
    assert.equal((await dev.slots.readState()).phase, "trial");
    assert.equal(await dev.slots.active(), "b");
    await dev.boot();
    const s = await dev.waitStatus("2.0.0 committed after its own trial", committedOn("2.0.0"));
    assert.equal(s.update.lastRollback, undefined);
    const log = await Deno.readTextFile(dev.log);
    assert.match(log, /this version is on trial after a restart; it must become healthy/);
    // The trial began with a restart (under systemd): this boot is its first start.
    assert.match(log, /outpost-guard: start 1 of at most 3 of the version on trial/);
    assert.equal(await exists(`${dev.slots.root}/trial.env`), false);
    assert.equal(await exists(`${dev.slots.root}/trial-boots`), false);
    await assertFlowing(dev, r.sub, before);

    // Normal boots: power cuts at several moments never lead back to slot a.
    const unit = dev.unit;
    await dev.powerCut();
    await Deno.writeTextFile(`${dev.slots.root}/trial.env`, "PREVIOUS_SLOT=a\nMAX_ATTEMPTS=3\n");
    const moments: [string, () => Promise<unknown>][] = [
      ["right after exec", () => Promise.resolve(true)],
      [
        "after READY=1",
        () => waitFor("READY=1", () => unit.events.some((e) => e.kind === "ready" && e.at >= t0)),
      ],
      ["once serving", () => dev.status()],
      ["right after exec, again", () => Promise.resolve(true)],
      ["once forwarding", () => dev.waitStatus("connected", (x) => !!x.uplink?.connected)],
    ];
    let t0 = 0;
    for (const [, reach] of moments) {
      t0 = Date.now();
      await dev.boot();
      await waitFor("the boot to reach its moment", reach, 30_000, 20);
      await dev.powerCut();
      assert.equal(await dev.slots.active(), "b");
    }
    const c = bufferContents(dev.buffer);
    await dev.boot();
    const s2 = await dev.waitStatus("2.0.0 after the cuts", committedOn("2.0.0"));
    assert.equal(s2.update.lastRollback, undefined);
    assert.equal(await dev.slots.active(), "b");
    assert.equal(await exists(`${dev.slots.root}/trial.env`), false, "stale trial.env removed");
    assert.equal(await exists(`${dev.slots.root}/trial-boots`), false, "no boot was counted");
    await assertFlowing(dev, r.sub, c);
  } finally {
    await close(r);
  }
}

/** Killed while the new version runs on trial (held before its first health poll): the trial
 * resumes after the restart and the healthy version commits. */
async function trialCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx, "trial");
    const { dev } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    await publish(r.channel, a.good, "2.0.0", [ctx.key.key]);
    await held(r, "trial");
    // The trial child serves; nobody has judged it yet.
    await dev.waitStatus("the trial child serving", (s) => s.version === "2.0.0");
    assert.equal((await dev.slots.readState()).phase, "trial");
    const before = await cut(r, rows);
    await dev.boot();
    await dev.waitStatus("2.0.0 committed after a resumed trial", committedOn("2.0.0"));
    const st = await dev.slots.readState();
    assert.equal(st.history[0].result, "installed");
    assert.equal(st.lastRollback, undefined);
    await assertFlowing(dev, r.sub, before);
  } finally {
    await close(r);
  }
}

/** Killed during the trial of a version that never becomes healthy: after the restart it has
 * its own trial, fails it, restores slot a and exits; systemd starts 1.1.0 again. */
async function trialUnhealthyCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx, "trial", { healthDeadline: "8s" });
    const { dev } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    await publish(r.channel, a.unhealthy, "1.3.0", [ctx.key.key]);
    await held(r, "trial");
    await dev.waitStatus("the trial child serving", (s) => s.version === "1.3.0");
    const before = await cut(r, rows);
    await dev.boot();
    const s = await dev.waitStatus(
      "1.3.0 rolled back, 1.1.0 running",
      (s) => committedOn("1.1.0")(s) && s.update.lastRollback?.version === "1.3.0",
    );
    assert.match(s.update.lastRollback!.reason, /not healthy within 8000ms: test: TEST-ONLY/);
    assert.equal(await dev.slots.active(), "a");
    assert.ok(dev.unit.events.some((e) => e.kind === "exit"), "1.3.0 exited after its trial");
    await assertFlowing(dev, r.sub, before);
    // A rolled-back version is not tried again.
    await dev.waitStatus("1.3.0 skipped", (s) => s.update.lastCheck?.result === "skipped");
    assert.equal((await dev.status()).version, "1.1.0");
  } finally {
    await close(r);
  }
}

/** The trial of a version that dies before its own code runs (the trial begins with a restart
 * under systemd): only the guard can act. It counts the starts, across a power cut after the
 * first, and after maxAttempts (3) restores slot a. */
async function trialCrashCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx);
    const { dev } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    await publish(r.channel, a.exit, "1.2.0", [ctx.key.key]);
    await firstTrialStart(r);
    const before = await cut(r, rows);
    const boots = dev.unit.events.length;
    await dev.boot();
    const s = await dev.waitStatus(
      "the guard to restore 1.1.0",
      (s) => committedOn("1.1.0")(s) && s.update.lastRollback?.version === "1.2.0",
    );
    assert.match(
      s.update.lastRollback!.reason,
      /the guard restored slot a after 3 start\(s\) of 1\.2\.0 without a healthy report/,
    );
    const starts = dev.unit.events.slice(boots).filter((e) => e.kind === "start").length;
    assert.equal(starts, 3, "1.2.0 twice more (3 starts with the one before the cut), then 1.1.0");
    assert.match(
      await Deno.readTextFile(dev.log),
      /outpost-guard: the version on trial had 3 starts without committing; restored slots\/a/,
    );
    await assertFlowing(dev, r.sub, before);
  } finally {
    await close(r);
  }
}

/** Waits until the guard has let the version on trial start once. */
async function firstTrialStart(r: Rig): Promise<void> {
  await waitFor(
    `${r.dev.id}: the first start of the version on trial`,
    async () =>
      /outpost-guard: start 1 of at most 3 of the version on trial/.test(
        await Deno.readTextFile(r.dev.log),
      ),
    60_000,
    50,
  );
}

/** The trial of a version that hangs before its own code runs: it never sends READY=1, so
 * systemd's start timeout (TimeoutStartSec=, 12 s here) kills it and the guard counts each start,
 * across a power cut after the first, until it restores slot a. */
async function trialHangCase(ctx: Ctx) {
  let r: Rig | undefined;
  try {
    r = await rig(ctx, undefined, { startTimeoutMs: 12_000 });
    const { dev } = r;
    const a = await artifacts();
    const rows = (await dev.status()).buffer.rows;
    await publish(r.channel, a.hang, "1.4.0", [ctx.key.key]);
    await firstTrialStart(r);
    const before = await cut(r, rows);
    const mark = dev.unit.events.length;
    await dev.boot();
    const s = await dev.waitStatus(
      "the guard to restore 1.1.0",
      (s) => committedOn("1.1.0")(s) && s.update.lastRollback?.version === "1.4.0",
    );
    assert.match(s.update.lastRollback!.reason, /the guard restored slot a after 3 start\(s\)/);
    const timeouts = dev.unit.events.slice(mark).filter((e) => e.kind === "start-timeout");
    assert.equal(timeouts.length, 2, "both starts of 1.4.0 after the cut hung until killed");
    await assertFlowing(dev, r.sub, before);
  } finally {
    await close(r);
  }
}

Deno.test({
  name:
    "power loss before the switch (download, verify, state written): the committed version runs on and the update completes after the restart",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const ctx = await setup();
  try {
    await Promise.all([downloadCase(ctx), verifyCase(ctx), switchCase(ctx)]);
  } finally {
    await ctx.broker.stop();
  }
});

Deno.test({
  name:
    "power loss after the switch and during the trial: the trial resumes and concludes; boots outside a trial are never counted",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const ctx = await setup();
  try {
    await Promise.all([
      switchedCase(ctx),
      trialCase(ctx),
      trialUnhealthyCase(ctx),
      trialCrashCase(ctx),
      trialHangCase(ctx),
    ]);
  } finally {
    await ctx.broker.stop();
  }
});
