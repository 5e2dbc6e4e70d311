/**
 * The systemd-side guard (config/systemd/outpost-guard.sh, ExecStartPre=): counts starts only
 * during a trial, restores the previous slot after MAX starts, and ignores (and removes) trial
 * files that a power cut left behind after the trial was decided.
 */
import assert from "node:assert/strict";
import { Slots } from "../src/update/slots.ts";
import { GUARD } from "./helpers/update.ts";

const dec = new TextDecoder();

async function guard(root: string, ...args: string[]): Promise<string> {
  const o = await new Deno.Command(GUARD, { args: [root, ...args], stderr: "piped" }).output();
  assert.equal(o.code, 0, dec.decode(o.stderr));
  return dec.decode(o.stderr);
}

const exists = (p: string) => Deno.lstat(p).then(() => true, () => false);

/** An install root with 1.1.0 committed in slot a and 2.0.0 in slot b. */
async function root(): Promise<Slots> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-guard-" });
  const artifact = `${dir}/artifact`;
  await Deno.writeTextFile(artifact, "#!/bin/sh\n");
  const slots = new Slots(`${dir}/opt`);
  await slots.init(artifact, "1.1.0");
  await Deno.copyFile(artifact, slots.binary("b"));
  return slots;
}

async function startTrial(slots: Slots, env: string): Promise<void> {
  const s = await slots.readState();
  s.phase = "trial";
  s.trial = { slot: "b", version: "2.0.0", attempts: 1, startedAt: Date.now() };
  await Deno.writeTextFile(`${slots.root}/trial.env`, env);
  await slots.writeState(s);
  await slots.switchTo("b");
}

Deno.test("guard: outside a trial it counts nothing and changes nothing", async () => {
  const slots = await root();
  for (let i = 0; i < 5; i++) assert.equal(await guard(slots.root), "");
  assert.equal(await slots.active(), "a");
  assert.equal(await exists(`${slots.root}/trial-boots`), false);
});

Deno.test("guard: trial files left by a cut after the commit are removed, not counted", async () => {
  const slots = await root();
  await startTrial(slots, "PREVIOUS_SLOT=a\nTRIAL_SLOT=b\nMAX_ATTEMPTS=3\n");
  // The trial committed (state written) but the power went before trial.env was removed.
  const s = await slots.readState();
  s.phase = "committed";
  s.committed = { slot: "b", version: "2.0.0" };
  delete s.trial;
  await slots.writeState(s);
  for (let i = 0; i < 5; i++) await guard(slots.root);
  assert.equal(await slots.active(), "b", "a committed version is never rolled back");
  assert.equal(await exists(`${slots.root}/trial.env`), false);
  assert.equal(await exists(`${slots.root}/trial-boots`), false);
});

Deno.test("guard: during a trial it counts starts and restores the previous slot after MAX", async () => {
  const slots = await root();
  await startTrial(slots, "PREVIOUS_SLOT=a\nTRIAL_SLOT=b\nTRIAL_VERSION=2.0.0\nMAX_ATTEMPTS=3\n");
  assert.match(await guard(slots.root), /start 2 of at most 3 of the version on trial/);
  assert.equal(await slots.active(), "b");
  assert.match(await guard(slots.root), /start 3 of at most 3/);
  assert.equal(await slots.active(), "b");
  assert.match(
    await guard(slots.root),
    /the version on trial had 3 starts without committing; restored slots\/a/,
  );
  assert.equal(await slots.active(), "a");
  assert.equal(await Deno.readLink(slots.current), "slots/a");
  assert.equal(await exists(`${slots.root}/trial.env`), false);
  assert.equal(await exists(`${slots.root}/current.guard-tmp`), false);
  assert.equal((await Deno.readTextFile(`${slots.root}/trial-boots`)).length, 3);
  // Later starts: the trial is over as far as the guard is concerned.
  assert.equal(await guard(slots.root), "");
  assert.equal(await slots.active(), "a");
});

Deno.test("guard: update.maxAttempts written to trial.env wins over the unit's argument", async () => {
  const slots = await root();
  await startTrial(slots, "PREVIOUS_SLOT=a\nTRIAL_SLOT=b\nMAX_ATTEMPTS=2\n");
  await guard(slots.root, "5");
  assert.equal(await slots.active(), "b");
  assert.match(await guard(slots.root, "5"), /restored slots\/a/);
  assert.equal(await slots.active(), "a");
  // Without MAX_ATTEMPTS (written by an older version), the argument counts.
  const other = await root();
  await startTrial(other, "PREVIOUS_SLOT=a\nTRIAL_SLOT=b\n");
  for (let i = 0; i < 5; i++) await guard(other.root, "6");
  assert.equal(await other.active(), "b");
  await guard(other.root, "6");
  assert.equal(await other.active(), "a");
});

Deno.test("guard: a trial begun by a restart (SUPERVISED=0) gets MAX starts through systemd", async () => {
  const slots = await root();
  await startTrial(
    slots,
    "PREVIOUS_SLOT=a\nTRIAL_SLOT=b\nTRIAL_VERSION=2.0.0\nMAX_ATTEMPTS=3\nSUPERVISED=0\n",
  );
  for (const n of [1, 2, 3]) {
    assert.match(await guard(slots.root), new RegExp(`start ${n} of at most 3 of the version`));
    assert.equal(await slots.active(), "b");
  }
  assert.match(
    await guard(slots.root),
    /the version on trial had 3 starts without committing; restored slots\/a/,
  );
  assert.equal(await slots.active(), "a");
});
