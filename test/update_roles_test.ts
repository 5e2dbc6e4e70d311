/**
 * Releases through TUF's roles end to end: `release init` (targets 2-of-3), devices pinning the
 * root with `update init --root`, `release publish --root-dir` writing the manifest, the root
 * chain and a short-lived timestamp, a device that reports the channel stale once the timestamp
 * expires and recovers when `release timestamp` re-signs it, and a targets key rotation the
 * device follows.
 */
import assert from "node:assert/strict";
import { launchBrowser } from "./helpers/browser.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { artifacts, channelServer, device, outpost, publish, VERSIONS } from "./helpers/update.ts";

Deno.test({
  name:
    "roles end to end: k-of-n targets, a stale timestamp shown and refused, re-signed, and a targets key rotation followed",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir({ prefix: "outpost-update-roles-" });
  const rel = `${tmp}/release`;
  const init = await outpost(
    "release",
    "init",
    "--out",
    rel,
    "--targets-keys",
    "3",
    "--targets-threshold",
    "2",
  );
  assert.match(init, /root version 1 in .*root\.json/);
  assert.match(init, /targets: 2 of \w+, \w+, \w+/);
  // update init --root refuses a root that is not one.
  await Deno.writeTextFile(`${tmp}/bogus.json`, "{}");
  await assert.rejects(
    outpost(
      "update",
      "init",
      "--install-root",
      `${tmp}/opt-bogus`,
      "--artifact",
      a.base,
      "--version",
      VERSIONS.base,
      "--root",
      `${tmp}/bogus.json`,
    ),
    /bogus\.json: expected \{ signed, signatures \}/,
  );
  const channel = `${tmp}/stable`;
  await Deno.mkdir(channel);
  const broker = await startMosquitto();
  const srv = channelServer(channel);
  const dev = await device({
    channelUrl: srv.url,
    pubkeys: [],
    broker: broker.url,
    checkInterval: "1s",
    rootFile: `${rel}/root.json`,
  });
  try {
    await dev.boot();
    await publish(channel, a.good, "2.0.0", [], "--root-dir", rel, "--timestamp-expires", "15s");
    let s = await dev.waitStatus(
      "2.0.0 installed through the roles",
      (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
      90_000,
    );
    assert.ok(s.update.metadataExpires! > Date.now());
    // Nobody re-signs the timestamp: the device says so and refuses the channel's metadata.
    s = await dev.waitStatus(
      "release metadata stale",
      (s) => !!s.update.metadataStale && s.update.lastCheck?.code === "expired",
      30_000,
    );
    assert.match(s.update.metadataStale!, /^release metadata stale since /);
    assert.match(s.update.lastCheck!.reason!, /timestamp version 1 expired at .*stale since then/);
    // The gateway page says so too.
    const listen = /listen: (127\.0\.0\.1:\d+)/.exec(await Deno.readTextFile(dev.config))![1];
    const browser = await launchBrowser();
    try {
      const page = await browser.browser.newPage();
      await page.goto(`http://${listen}/`);
      const token = (await Deno.readTextFile(`${dev.dir}/http-token`)).trim();
      await page.fill("#token", token);
      await page.click("#login-submit");
      await waitFor(
        "the update list on the page",
        async () =>
          /Release metadata\s*release metadata stale since/.test(
            await page.locator("#update").innerText(),
          ),
        15_000,
        100,
      );
      assert.match(await page.locator("#update").innerText(), /Activity\s*refused \(expired\)/);
    } finally {
      await browser.close();
    }
    // The timestamp key re-signs: fresh again.
    await outpost("release", "timestamp", "--channel", channel, "--root-dir", rel);
    await dev.waitStatus(
      "fresh metadata",
      (s) => !s.update.metadataStale && s.update.lastCheck?.result === "current",
      30_000,
    );
    // A targets key rotation: root 2 on the channel, the next release signed by the new keys.
    const rot = await outpost("release", "rotate", "--dir", rel, "--role", "targets");
    assert.match(rot, /root version 2/);
    await publish(channel, a.next, "2.1.0", [], "--root-dir", rel);
    await dev.waitStatus(
      "2.1.0 installed under root version 2",
      (s) => s.version === "2.1.0" && s.update.committed.version === "2.1.0",
      90_000,
    );
    const pinned = JSON.parse(await Deno.readTextFile(`${dev.slots.root}/root.json`));
    assert.equal(pinned.signed.version, 2);
  } finally {
    await dev.close();
    await srv.close();
    await broker.stop();
  }
});
