import assert from "node:assert/strict";
import { createLogger } from "../log.ts";
import { UpdateRefused } from "./errors.ts";
import { readSigningKey } from "./keys.ts";
import { signManifest } from "./manifest.ts";
import { publish } from "./release.ts";
import { initRelease, rotateRole, writeTimestamp } from "./release_roles.ts";
import { Slots } from "./slots.ts";
import { serveLocal, testUpdateConfig } from "./_testing.ts";
import { Updater } from "./updater.ts";

const log = createLogger({ level: "error" });
const T = Deno.build.target;
const DAY = 86_400_000;

/**
 * A release directory (`release init`, targets 2-of-3), a channel directory served over loopback
 * HTTP, and a device (install root with 1.0.0 committed and the root pinned).
 */
async function setup() {
  const dir = await Deno.makeTempDir();
  const rel = `${dir}/release`;
  await initRelease(rel, { roles: { targets: { keys: 3, threshold: 2 } } });
  const channel = `${dir}/www/stable`;
  await Deno.mkdir(channel, { recursive: true });
  await Deno.writeTextFile(`${dir}/art`, "#!/bin/sh\n");
  const slots = new Slots(`${dir}/opt`);
  await slots.init(`${dir}/art`, "1.0.0");
  await Deno.copyFile(`${rel}/root.json`, `${slots.root}/root.json`);
  const server = serveLocal(
    async (req) => {
      try {
        return new Response(await Deno.readFile(`${dir}/www${new URL(req.url).pathname}`));
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const config = testUpdateConfig(`${server.url}/stable`, slots.root, {
    minDownloadRate: 1,
  });
  const keysOf = async (role: string) => {
    const out: string[] = [];
    for await (const e of Deno.readDir(`${rel}/keys/${role}`)) {
      if (e.name.endsWith(".key")) out.push(`${rel}/keys/${role}/${e.name}`);
    }
    return out.sort();
  };
  const pub = (version: string, o: { keys?: string[]; counter?: number; now?: number } = {}) =>
    publish({
      channel,
      artifact: `${dir}/art`,
      version,
      target: T,
      keys: o.keys ?? [],
      rootDir: rel,
      counter: o.counter,
      now: o.now,
    });
  return {
    dir,
    rel,
    channel,
    slots,
    config,
    keysOf,
    pub,
    updater: (now?: () => number) => new Updater({ config, gatewayId: "gw", log, now }),
    close: async () => {
      await server.close();
    },
  };
}

async function refused(p: Promise<unknown>): Promise<UpdateRefused> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e instanceof UpdateRefused, `expected a refusal, got ${e}`);
  return e;
}

Deno.test("targets k-of-n: one of two needed signatures is refused, two are accepted", async () => {
  const t = await setup();
  try {
    const [k1, k2] = await t.keysOf("targets");
    await assert.rejects(
      t.pub("2.0.0", { keys: [k1] }),
      /1 targets key\(s\) given; .* needs 2 of 3/,
    );
    // A manifest signed by one key only, written past the publisher's own check.
    await t.pub("2.0.0", { keys: [k1, k2] });
    const ok = await t.updater().check();
    assert.equal(ok.kind, "available");
    const m = JSON.parse(await Deno.readTextFile(`${t.channel}/manifest.json`));
    const one = await signManifest({ ...m.signed, counter: m.signed.counter + 1 }, [
      await readSigningKey(k1),
    ]);
    await Deno.writeTextFile(`${t.channel}/manifest.json`, JSON.stringify(one));
    const root = JSON.parse(await Deno.readTextFile(`${t.rel}/root.json`)).signed;
    await writeTimestamp(t.channel, root, [await readSigningKey((await t.keysOf("timestamp"))[0])]);
    const e = await refused(t.updater().check());
    assert.equal(e.code, "bad-signature");
    assert.match(e.message, /1 valid signature\(s\) by trusted keys, 2 needed/);
  } finally {
    await t.close();
  }
});

Deno.test("a frozen channel (old but valid metadata) is refused once its timestamp expires, within a day", async () => {
  const t = await setup();
  try {
    await t.pub("2.0.0");
    assert.equal((await t.updater().check()).kind, "available");
    // The channel keeps serving the same files; a day later the timestamp has expired.
    const later = () => Date.now() + DAY + 60_000;
    const e = await refused(t.updater(later).check());
    assert.equal(e.code, "expired");
    assert.match(e.message, /timestamp version 1 expired at .*: release metadata stale since then/);
    const st = await t.slots.readState();
    assert.ok(st.lastTimestamp && st.lastTimestamp.expires < later());
    // /status (and the metric) tell once the expiry has passed.
    const { UpdateAgent } = await import("./agent.ts");
    const agent = () =>
      new UpdateAgent({
        config: t.config,
        configPath: "/dev/null",
        gatewayId: "gw",
        healthUrl: "http://127.0.0.1:9",
        version: "1.0.0",
        log,
      });
    const fresh = agent();
    await fresh.boot();
    assert.equal(fresh.status().metadataExpires, st.lastTimestamp!.expires);
    assert.equal(fresh.status().metadataStale, undefined);
    st.lastTimestamp!.expires = Date.now() - 1000;
    await t.slots.writeState(st);
    const stale = agent();
    await stale.boot();
    assert.match(stale.status().metadataStale!, /^release metadata stale since \d{4}-/);
  } finally {
    await t.close();
  }
});

Deno.test("mix-and-match: a manifest the timestamp does not name is refused", async () => {
  const t = await setup();
  try {
    await t.pub("2.0.0");
    const first = await Deno.readTextFile(`${t.channel}/manifest.json`);
    const firstTs = await Deno.readTextFile(`${t.channel}/timestamp.json`);
    await t.pub("2.1.0");
    // An attacker serves the current timestamp with the older (validly signed) manifest.
    await Deno.writeTextFile(`${t.channel}/manifest.json`, first);
    let e = await refused(t.updater().check());
    assert.equal(e.code, "manifest-mismatch");
    // Or the old timestamp with it, after the device saw the new one: a replay.
    await t.pub("2.2.0");
    await t.updater().check();
    await Deno.writeTextFile(`${t.channel}/timestamp.json`, firstTs);
    e = await refused(t.updater().check());
    assert.equal(e.code, "counter-replayed");
    assert.match(e.message, /timestamp version 1 is lower than the last seen 3/);
  } finally {
    await t.close();
  }
});

Deno.test("fast-forward: a counter pushed up with a stolen targets key is undone by rotating that role", async () => {
  const t = await setup();
  try {
    const stolen = (await t.keysOf("targets")).slice(0, 2);
    // The thief publishes counter 1000; the device takes it as its floor.
    await t.pub("2.0.0", { keys: stolen, counter: 1000 });
    await t.updater().check();
    assert.equal((await t.slots.readState()).lastCounter, 1000);
    // The legitimate publisher's next manifest (counter 41) is refused…
    await Deno.remove(`${t.channel}/manifest.json`);
    await t.pub("2.1.0", { keys: stolen, counter: 41 });
    assert.equal((await refused(t.updater().check())).code, "counter-replayed");
    // …until the targets role is rotated: root version 2, signed by the root key.
    const root2 = await rotateRole(t.rel, "targets");
    assert.equal(root2.signed.version, 2);
    await Deno.remove(`${t.channel}/manifest.json`);
    await t.pub("2.1.0", { counter: 41 });
    const r = await t.updater().check();
    assert.equal(r.kind, "available");
    const st = await t.slots.readState();
    assert.equal(st.lastCounter, 41);
    const pinned = JSON.parse(await Deno.readTextFile(`${t.slots.root}/root.json`));
    assert.equal(pinned.signed.version, 2);
    // The stolen keys are out: a manifest they sign is refused.
    await Deno.remove(`${t.channel}/manifest.json`);
    await assert.rejects(
      t.pub("2.2.0", { keys: stolen }),
      /are not targets keys of root version 2/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("a root version not signed by the previous root's keys is refused; the device keeps its root", async () => {
  const t = await setup();
  try {
    await t.pub("2.0.0");
    const doc = JSON.parse(await Deno.readTextFile(`${t.rel}/root.json`));
    // A forged root 2 that hands the targets role to the attacker, signed by nobody the device
    // trusts.
    const forged = await initRelease(`${t.dir}/attacker`);
    const fake = { ...forged.signed, version: 2 };
    const { signDocument } = await import("./roles.ts");
    const { roleKeys } = await import("./release_roles.ts");
    const signed = await signDocument(fake, await roleKeys(`${t.dir}/attacker`, fake, "root"));
    await Deno.mkdir(`${t.channel}/root`, { recursive: true });
    await Deno.writeTextFile(`${t.channel}/root/2.json`, JSON.stringify(signed));
    const e = await refused(t.updater().check());
    assert.equal(e.code, "unknown-key");
    assert.match(
      e.message,
      /root version 2 \(by the old root\) carries no signature by a root key/,
    );
    const pinned = JSON.parse(await Deno.readTextFile(`${t.slots.root}/root.json`));
    assert.deepEqual(pinned, doc);
  } finally {
    await t.close();
  }
});

Deno.test("without a pinned root or trustedKeys nothing is trusted: no key is built in", async () => {
  const t = await setup();
  try {
    await t.pub("2.0.0");
    await Deno.remove(`${t.slots.root}/root.json`);
    const e = await refused(t.updater().check());
    assert.equal(e.code, "unknown-key");
    assert.match(e.message, /no trusted root in ".*root\.json" .* and no update\.trustedKeys/);
  } finally {
    await t.close();
  }
});

Deno.test("an endless timestamp.json is cut off at 16 KB", async () => {
  const t = await setup();
  try {
    await t.pub("2.0.0");
    await Deno.writeTextFile(`${t.channel}/timestamp.json`, " ".repeat(1024 ** 2));
    const e = await refused(t.updater().check());
    assert.equal(e.code, "metadata-too-large");
    assert.match(e.message, /more than 16384 bytes/);
  } finally {
    await t.close();
  }
});

Deno.test("verifyChannelWithRoot() checks a channel as a device pinning root version 1 would", async () => {
  const { verifyChannelWithRoot } = await import("./release.ts");
  const t = await setup();
  try {
    const root1 = `${t.dir}/root-1.json`;
    await Deno.copyFile(`${t.rel}/root.json`, root1);
    await t.pub("2.0.0");
    await rotateRole(t.rel, "targets");
    await t.pub("2.1.0");
    const lines = await verifyChannelWithRoot(t.channel, root1);
    assert.match(lines.join("\n"), /root ok: version 2 \(signed by the previous root and itself\)/);
    assert.match(lines.join("\n"), /manifest ok: channel stable, version 2\.1\.0/);
    assert.match(lines.join("\n"), /artifact ok: /);
    const late = await refused(verifyChannelWithRoot(t.channel, root1, Date.now() + 2 * DAY));
    assert.equal(late.code, "expired");
    const m = JSON.parse(await Deno.readTextFile(`${t.channel}/manifest.json`));
    m.signed.rollout = 50;
    await Deno.writeTextFile(`${t.channel}/manifest.json`, JSON.stringify(m));
    assert.equal(
      (await refused(verifyChannelWithRoot(t.channel, root1))).code,
      "manifest-mismatch",
    );
  } finally {
    await t.close();
  }
});

Deno.test("publish without the roles is refused on a channel published with them", async () => {
  const t = await setup();
  try {
    await t.pub("2.0.0");
    const [k1] = await t.keysOf("targets");
    await assert.rejects(
      publish({
        channel: t.channel,
        artifact: `${t.dir}/art`,
        version: "2.1.0",
        target: T,
        keys: [k1],
      }),
      /is published with roles \(it has timestamp\.json\): publish with --root-dir/,
    );
  } finally {
    await t.close();
  }
});
