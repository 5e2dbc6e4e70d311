/**
 * `outpost update check` / `update apply`, rollout percentage, and the systemd watchdog through a
 * trial: the gateway runs under a fake systemd with WatchdogSec= shorter than the trial's health
 * deadline; the trial begins with a restart, so the version on trial is systemd's main process
 * and feeds the watchdog itself, and the unit never runs two gateways at once.
 */
import assert from "node:assert/strict";
import { groupMembers } from "./helpers/fake_systemd.ts";
import { waitFor } from "./helpers/ports.ts";
import {
  artifacts,
  assertFlowing,
  bufferContents,
  keypair,
  publish,
  ROOT,
} from "./helpers/update.ts";
import { updateRig } from "./helpers/update_rig.ts";

const dec = new TextDecoder();

/** `/status` → `update.activity`. */
const activity = (s: { update: unknown }) => (s.update as { activity?: string }).activity ?? "";

/** Runs the CLI from the sources; returns exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

Deno.test({
  name:
    "update check/apply, rollout, the watchdog fed by the version on trial through a trial longer than WatchdogSec, never two gateways at once",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const watchdogMs = 6000;
  const rig = await updateRig("outpost-update-cli-", {
    // Only `update apply` starts a check here.
    checkInterval: "1h",
    healthDeadline: "14s",
    watchdogMs,
  });
  const { a, channel, key, dev } = rig;
  try {
    const sub = await dev.subscriber();
    await dev.boot();
    // Its first check (a second after start) finds nothing; the next would be in an hour.
    await dev.waitStatus(
      "1.1.0 connected, first check done",
      (s) =>
        s.version === "1.1.0" && !!s.uplink?.connected &&
        s.update.lastCheck?.code === "manifest-unreachable",
    );
    const unit = dev.unit;
    const supervisor = unit.mainPid;
    let maxGateways = 0;
    const sampler = setInterval(() => {
      const n = groupMembers(unit.pgid).filter((pid) => {
        try {
          return /\0run\0--config\0/.test(Deno.readTextFileSync(`/proc/${pid}/cmdline`));
        } catch {
          return false;
        }
      }).length;
      maxGateways = Math.max(maxGateways, n);
    }, 50);
    const t0 = Date.now();
    const timeline = () =>
      unit.events.map((e) => `${e.at - t0}ms ${e.kind} ${e.pid ?? ""} ${e.detail ?? ""}`).join(
        "\n",
      );

    // check: nothing published yet.
    let r = await cli("update", "check", "--config", dev.config);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /update check: REFUSED \(manifest-unreachable\): .*HTTP 404/);

    // Rollout 0%: this device is outside it; check changes nothing on disk.
    await publish(channel, a.good, "2.0.0", [key.key], "--rollout", "0");
    const stateBefore = await Deno.readTextFile(`${dev.slots.root}/state.json`);
    r = await cli("update", "check", "--config", dev.config);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^skipped: 2\.0\.0 \(outside the 0% rollout of 2\.0\.0\)/m);
    assert.equal(await Deno.readTextFile(`${dev.slots.root}/state.json`), stateBefore);
    r = await cli("update", "apply", "--config", dev.config);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`asked gateway pid ${supervisor} to check and apply now`));
    let s = await dev.waitStatus(
      "the apply to be skipped by the rollout",
      (s) => s.update.lastCheck?.result === "skipped",
    );
    assert.match(s.update.lastCheck!.reason!, /outside the 0% rollout of 2\.0\.0/);
    assert.equal(s.version, "1.1.0");

    // A trial of 14 s under WatchdogSec=6s, of a version that never becomes healthy.
    await publish(channel, a.unhealthy, "1.3.0", [key.key]);
    await cli("update", "apply", "--config", dev.config);
    // The version on trial answers /status itself and says where the trial stands.
    const during = await dev.waitStatus(
      "/status of the version on trial",
      (s) => s.version === "1.3.0" && /^trial of 1\.3\.0: \d+s of 14s/.test(activity(s)),
    );
    assert.equal(during.update.phase, "trial");
    s = await dev.waitStatus(
      "1.3.0 rolled back",
      (s) => s.version === "1.1.0" && s.update.lastRollback?.version === "1.3.0",
    );
    assert.match(s.update.lastRollback!.reason, /not healthy within 14000ms/);
    assert.match(activity(s), /^rolled back 1\.3\.0 because not healthy within 14000ms/);
    assert.deepEqual(unit.watchdogTimeouts(), [], `the watchdog never fired:\n${timeline()}`);
    // The trial began with a restart: 1.3.0 was systemd's main process and fed the watchdog
    // itself through its 14 s; after the rollback a new process runs 1.1.0.
    assert.notEqual(during.pid, supervisor);
    const trialStart = unit.events.find((e) => e.kind === "start" && e.pid === during.pid)!;
    const pingsInTrial = unit.events.filter((e) =>
      e.kind === "watchdog" && e.pid === during.pid && e.at <= trialStart.at + 14_000
    ).map((e) => e.at);
    // Fed through the 14 s trial (every 3 s, half of WatchdogSec, once started: a loaded machine
    // may take a few seconds to start it): no gap of WatchdogSec, pings up to its last 6 s.
    assert.ok(pingsInTrial.length >= 2, `${pingsInTrial.length} pings during the 14 s trial`);
    const gaps = pingsInTrial.slice(1).map((at, i) => at - pingsInTrial[i]);
    assert.ok(
      Math.max(...gaps) < 6_000,
      `gaps between pings ${gaps.join(", ")} ms:\n${timeline()}`,
    );
    assert.ok(
      pingsInTrial.at(-1)! >= trialStart.at + 14_000 - 6_000,
      `the last ping of the trial came ${pingsInTrial.at(-1)! - trialStart.at} ms after its start`,
    );
    assert.notEqual(s.pid, during.pid);
    assert.equal(s.pid, unit.mainPid);
    assert.match(
      await Deno.readTextFile(dev.log),
      /outpost-guard: start 1 of at most 3 of the version on trial/,
    );

    // Rollout 100%: check says available; apply installs; systemd starts 2.0.0.
    await publish(channel, a.good, "2.0.0", [key.key], "--rollout", "100");
    r = await cli("update", "check", "--config", dev.config);
    assert.match(r.out, /^available: 2\.0\.0 for \S+, \d+ bytes from http:\/\/127\.0\.0\.1/m);
    const before = s.pid;
    await cli("update", "apply", "--config", dev.config);
    s = await dev.waitStatus(
      "2.0.0 committed",
      (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
    );
    const newMain = s.pid;
    assert.equal(newMain, unit.mainPid, "the new version is systemd's main process");
    assert.ok(!(await Deno.stat(`/proc/${before}`).then(() => true, () => false)));
    const committedAt = Date.now();
    await waitFor(
      "WATCHDOG=1 from the new main process",
      () =>
        unit.events.filter((e) => e.kind === "watchdog" && e.pid === newMain && e.at > committedAt)
          .length >= 3,
      3 * watchdogMs,
    );
    assert.deepEqual(unit.watchdogTimeouts(), [], timeline());
    // Never two gateways at once in the unit: the trial fits one process's memory.
    clearInterval(sampler);
    assert.equal(maxGateways, 1, `${maxGateways} gateway processes at once in the unit`);
    await assertFlowing(dev, sub, bufferContents(dev.buffer));
  } finally {
    await rig.close();
  }
});

Deno.test({
  name:
    "update init and release publish refuse what is not an Outpost build of that version, and names that leave the channel",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir({ prefix: "outpost-update-init-" });
  await Deno.writeTextFile(`${tmp}/notes.txt`, "not a binary\n");
  const notes = await cli(
    "update",
    "init",
    "--install-root",
    `${tmp}/opt1`,
    "--artifact",
    `${tmp}/notes.txt`,
    "--version",
    "1.1.0",
  );
  assert.equal(notes.code, 1, notes.out);
  assert.match(notes.out, /notes\.txt" is not an Outpost build/);
  // The base artifact is 1.1.0: it cannot be installed as 6.6.6.
  const wrong = await cli(
    "update",
    "init",
    "--install-root",
    `${tmp}/opt2`,
    "--artifact",
    a.base,
    "--version",
    "6.6.6",
  );
  assert.equal(wrong.code, 1, wrong.out);
  assert.match(wrong.out, /reports version 1\.1\.0, not --version 6\.6\.6/);
  for (const dir of ["opt1", "opt2"]) await assert.rejects(Deno.stat(`${tmp}/${dir}`));
  const ok = await cli(
    "update",
    "init",
    "--install-root",
    `${tmp}/opt`,
    "--artifact",
    a.base,
    "--version",
    "1.1.0",
  );
  assert.equal(ok.code, 0, ok.out);

  const key = await keypair(`${tmp}/keys`);
  const channel = `${tmp}/www/stable`;
  const escape = await cli(
    "release",
    "publish",
    "--channel",
    channel,
    "--artifact",
    a.base,
    "--version",
    "1.1.0",
    "--target",
    "../../x",
    "--key",
    key.key,
  );
  assert.equal(escape.code, 2, escape.out);
  assert.match(escape.out, /--target: expected a build target/);
  await assert.rejects(Deno.stat(`${tmp}/www`));
  const mislabelled = await cli(
    "release",
    "publish",
    "--channel",
    channel,
    "--artifact",
    a.base,
    "--version",
    "6.6.6",
    "--target",
    Deno.build.target,
    "--key",
    key.key,
  );
  assert.equal(mislabelled.code, 1, mislabelled.out);
  assert.match(mislabelled.out, /reports version 1\.1\.0, not --version 6\.6\.6/);
  await assert.rejects(Deno.stat(`${tmp}/www`));
});

Deno.test({
  name:
    "update rollback by hand keeps the version rolled back from out until unpin; pin holds every release",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const rig = await updateRig("outpost-update-pin-");
  const { a, channel, key, dev } = rig;
  const lastCheckAt = (s: { update: { lastCheck?: unknown } }) =>
    (s.update.lastCheck as { at?: number } | undefined)?.at ?? 0;
  try {
    await publish(channel, a.good, "2.0.0", [key.key]);
    await dev.boot();
    await dev.waitStatus(
      "2.0.0 installed",
      (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
    );
    // Refused while the gateway runs: it would race the running updater.
    let r = await cli("update", "rollback", "--config", dev.config);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /a gateway answers on .*; stop it first/);

    await dev.powerCut();
    r = await cli("update", "rollback", "--config", dev.config, "--reason", "bad readings");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /rolled back from 2\.0\.0 to 1\.1\.0/);
    assert.equal(await dev.slots.active(), "a");
    const booted = Date.now();
    await dev.boot();
    // Checks go on every second; 2.0.0 is still offered and stays out.
    let s = await dev.waitStatus(
      "1.1.0 running, 2.0.0 skipped for three seconds of checks",
      (s) =>
        s.version === "1.1.0" && s.update.lastCheck?.result === "skipped" &&
        lastCheckAt(s) > booted + 3000,
    );
    assert.match(s.update.lastCheck!.reason!, /2\.0\.0 was rolled back \(bad readings\)/);
    assert.equal(s.update.committed.version, "1.1.0");
    assert.equal(s.update.lastRollback?.version, "2.0.0");

    // Pin: nothing at all is installed.
    r = await cli("update", "pin", "--config", dev.config, "--reason", "audit week");
    assert.equal(r.code, 0, r.out);
    const pinned = Date.now();
    s = await dev.waitStatus("the pin seen by a check", (s) => lastCheckAt(s) > pinned);
    assert.match(
      s.update.lastCheck!.reason!,
      /pinned at 1\.1\.0 by the operator since .*audit week/,
    );
    assert.equal((s.update as { pinned?: { reason: string } }).pinned?.reason, "audit week");

    // Unpin: 2.0.0 may come back, and does at the next check.
    r = await cli("update", "unpin", "--config", dev.config);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /2\.0\.0 \(rolled back before\) may be installed again/);
    s = await dev.waitStatus(
      "2.0.0 installed again",
      (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
    );
    assert.equal(s.update.committed.slot, "b");
  } finally {
    await rig.close();
  }
});
