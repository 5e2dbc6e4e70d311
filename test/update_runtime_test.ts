/**
 * A bundle release carries its Deno runtime: `release publish --runtime` lists it in the signed
 * metadata, the device stages it beside the bundle in the A/B slot (downloaded only when it
 * changed, always hash-checked) and runs the slot's bundle on the slot's runtime; a rollback
 * brings back the previous runtime with the previous bundle. The runtimes are copies of this
 * Deno with a few bytes appended: the same Deno, but files with hashes of their own, so the test
 * sees which one the gateway runs on (`update.runtime.path` in /status).
 */
import assert from "node:assert/strict";
import { sha256File } from "../src/update/updater.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import {
  artifacts,
  type ChannelServer,
  channelServer,
  type Device,
  device,
  outpost,
  publish,
  releaseDir,
  TARGET,
} from "./helpers/update.ts";

interface Runtime {
  path: string;
  sha256: string;
}

/** A copy of this Deno with `tag` appended: runs as before, hashes differently. */
async function runtimeCopy(dir: string, tag: string): Promise<Runtime> {
  const path = `${dir}/${tag}/deno`;
  await Deno.mkdir(`${dir}/${tag}`, { recursive: true });
  await Deno.copyFile(Deno.execPath(), path);
  const f = await Deno.open(path, { append: true });
  await f.write(new TextEncoder().encode(`\noutpost test runtime ${tag}\n`));
  f.close();
  await Deno.chmod(path, 0o755);
  return { path, sha256: await sha256File(path) };
}

/** Requests for runtime files at the channel server. */
const runtimeRequests = (srv: ChannelServer) =>
  srv.requests.filter((r) => r.includes("/runtimes/"));

async function setup(prefix: string, checkInterval = "1s") {
  const tmp = await Deno.makeTempDir({ prefix });
  const channel = `${tmp}/stable`;
  await Deno.mkdir(channel);
  const [a, broker, key, r1, r2] = await Promise.all([
    artifacts(),
    startMosquitto(),
    releaseDir(`${tmp}/keys`),
    runtimeCopy(tmp, "r1"),
    runtimeCopy(tmp, "r2"),
  ]);
  const srv = channelServer(channel);
  const dev = await device({
    channelUrl: srv.url,
    pubkeys: [key.pub],
    broker: broker.url,
    checkInterval,
  });
  return {
    tmp,
    channel,
    a,
    key,
    r1,
    r2,
    srv,
    dev,
    async close() {
      await dev.close();
      await srv.close();
      await broker.stop();
      // Each runtime copy is ~100 MB: do not leave them behind.
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      await Deno.remove(dev.dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The gateway runs on the `deno` of `slot`, which is `rt`, beside the bundle `bundle`. */
async function assertRunsOn(dev: Device, slot: "a" | "b", rt: Runtime, bundle: string) {
  const s = await dev.status();
  const dir = await Deno.realPath(dev.slots.dir(slot));
  assert.equal(s.update.runtime?.path, `${dir}/deno`, "the gateway's executable");
  assert.equal(await sha256File(`${dir}/deno`), rt.sha256, `slot ${slot}'s runtime`);
  assert.equal(await sha256File(`${dir}/outpost.js`), await sha256File(bundle));
  assert.match(await Deno.readTextFile(`${dir}/outpost`), /^#!\/bin\/sh\n/);
  assert.equal(await dev.slots.active(), slot);
}

Deno.test({
  name:
    "a release that changes the runtime installs it beside the bundle, the gateway runs on it, and a rollback restores the previous runtime",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const t = await setup("outpost-update-runtime-");
  const { dev, a } = t;
  try {
    await dev.boot();
    let s = await dev.waitStatus("1.1.0 on the Deno on PATH", (s) => s.version === "1.1.0");
    assert.equal(s.update.runtime?.path, await Deno.realPath(Deno.execPath()));

    const out = await publish(t.channel, a.good, "2.0.0", [t.key.key], "--runtime", t.r1.path);
    assert.match(out, new RegExp(`runtime ok: deno \\d+\\.\\d+\\.\\d+ for ${TARGET}`));
    const m = JSON.parse(await Deno.readTextFile(`${t.channel}/manifest.json`)).signed;
    const key = m.targets[TARGET].runtime;
    assert.equal(m.runtimes[key].sha256, t.r1.sha256);
    s = await dev.waitStatus(
      "2.0.0 committed",
      (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
      120_000,
    );
    await assertRunsOn(dev, "b", t.r1, a.good);

    await publish(t.channel, a.next, "2.1.0", [t.key.key], "--runtime", t.r2.path);
    await dev.waitStatus(
      "2.1.0 committed",
      (s) => s.version === "2.1.0" && s.update.committed.version === "2.1.0",
      120_000,
    );
    await assertRunsOn(dev, "a", t.r2, a.next);
    assert.equal(runtimeRequests(t.srv).length, 2, t.srv.requests.join("\n"));

    // Back by hand: the previous bundle on the previous runtime.
    await dev.powerCut();
    assert.match(
      await outpost("update", "rollback", "--config", dev.config),
      /rolled back from 2\.1\.0 to 2\.0\.0/,
    );
    await dev.boot();
    await dev.waitStatus("2.0.0 running again", (s) => s.version === "2.0.0");
    await assertRunsOn(dev, "b", t.r1, a.good);
  } finally {
    await t.close();
  }
});

Deno.test({
  name: "a runtime that does not match its signed hash is refused and nothing changes",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  // One check only (1 s after start): each check would download the runtime again.
  const t = await setup("outpost-update-runtime-tamper-", "1h");
  const { dev, a } = t;
  try {
    await publish(t.channel, t.a.good, "2.0.0", [t.key.key], "--runtime", t.r1.path);
    const m = JSON.parse(await Deno.readTextFile(`${t.channel}/manifest.json`)).signed;
    const entry = m.runtimes[m.targets[TARGET].runtime];
    // Same length, other bytes: a mirror's (or an attacker's) runtime.
    assert.equal((await Deno.stat(t.r2.path)).size, entry.length);
    await Deno.copyFile(t.r2.path, `${t.channel}/${entry.path}`);

    await dev.boot();
    const s = await dev.waitStatus(
      "the runtime refused",
      (s) => s.update.lastCheck?.result === "refused",
      120_000,
    );
    assert.equal(s.update.lastCheck?.code, "hash-mismatch", s.update.lastCheck?.reason ?? "");
    assert.match(s.update.lastCheck!.reason!, /runtime .* manifest says /);
    assert.ok(runtimeRequests(t.srv).length >= 1, "the runtime was fetched");
    assert.equal(s.version, "1.1.0");
    assert.equal(s.update.committed.version, "1.1.0");
    assert.equal(s.update.runtime?.path, await Deno.realPath(Deno.execPath()));
    assert.equal(await dev.slots.active(), "a");
    const state = await dev.slots.readState();
    assert.deepEqual([state.phase, state.committed], ["committed", {
      slot: "a",
      version: "1.1.0",
    }]);
    // Nothing of the release is in place, and the bad runtime is gone.
    for (const f of ["outpost", "outpost.js", "deno", "deno.staging"]) {
      await assert.rejects(Deno.lstat(`${dev.slots.dir("b")}/${f}`), Deno.errors.NotFound, f);
    }
    assert.equal(await sha256File(dev.slots.binary("a")), await sha256File(a.base));
  } finally {
    await t.close();
  }
});

Deno.test({
  name:
    "an unchanged runtime is not downloaded again: copied from the running slot and hash-checked",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const t = await setup("outpost-update-runtime-same-");
  const { dev, a } = t;
  try {
    await dev.boot();
    await dev.waitStatus("1.1.0 running", (s) => s.version === "1.1.0");
    await publish(t.channel, a.good, "2.0.0", [t.key.key], "--runtime", t.r1.path);
    await dev.waitStatus(
      "2.0.0 committed",
      (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
      120_000,
    );
    await assertRunsOn(dev, "b", t.r1, a.good);
    assert.equal(runtimeRequests(t.srv).length, 1, t.srv.requests.join("\n"));

    await publish(t.channel, a.next, "2.1.0", [t.key.key], "--runtime", t.r1.path);
    await dev.waitStatus(
      "2.1.0 committed",
      (s) => s.version === "2.1.0" && s.update.committed.version === "2.1.0",
      120_000,
    );
    await assertRunsOn(dev, "a", t.r1, a.next);
    assert.equal(
      runtimeRequests(t.srv).length,
      1,
      "no second download:\n" + t.srv.requests.join("\n"),
    );
    assert.match(
      await Deno.readTextFile(dev.log),
      /runtime unchanged: copied from the running slot/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("update init --runtime lays out slot a with the bundle, its runtime and the launcher; refuses a runtime that is not Deno", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "outpost-update-runtime-init-" });
  try {
    const [a, r1] = await Promise.all([artifacts(), runtimeCopy(tmp, "r1")]);
    const init = (root: string, runtime: string) =>
      outpost(
        "update",
        "init",
        "--install-root",
        root,
        "--artifact",
        a.base,
        "--version",
        "1.1.0",
        "--runtime",
        runtime,
      );
    await assert.rejects(init(`${tmp}/bad`, "/usr/bin/true"), /"\/usr\/bin\/true" is not a Deno/);
    await assert.rejects(Deno.lstat(`${tmp}/bad`), Deno.errors.NotFound);
    await init(`${tmp}/opt`, r1.path);
    const slot = `${tmp}/opt/slots/a`;
    assert.equal(await sha256File(`${slot}/deno`), r1.sha256);
    assert.equal(await sha256File(`${slot}/outpost.js`), await sha256File(a.base));
    const out = await new Deno.Command(`${tmp}/opt/current/outpost`, {
      args: ["version", "--json"],
      stdout: "piped",
    }).output();
    assert.equal(JSON.parse(new TextDecoder().decode(out.stdout)).version, "1.1.0");
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
