import assert from "node:assert/strict";
import { serveLocal } from "./_testing.ts";
import { publishDevice } from "./device_release.ts";
import { parseDeviceTargets } from "./device_targets.ts";
import { readPublicKeys } from "./release.ts";
import { keygen, publish, verifyChannel } from "./release.ts";
import { Updater } from "./updater.ts";
import { createLogger } from "../log.ts";
import { type UpdateConfig, updateSchema } from "./config.ts";
import { Ctx } from "../config/schema.ts";

async function setup() {
  const dir = await Deno.makeTempDir();
  const { key, pub } = await keygen(`${dir}/keys`);
  const channel = `${dir}/www/stable`;
  await Deno.writeTextFile(`${dir}/outpost.js`, "#!/usr/bin/env -S deno run\n");
  await Deno.writeFile(`${dir}/fw.bin`, new Uint8Array(5000).fill(7));
  const gateway = (version: string) =>
    publish({
      channel,
      artifact: `${dir}/outpost.js`,
      version,
      target: Deno.build.target,
      keys: [key],
    });
  const device = (o: Partial<Parameters<typeof publishDevice>[0]> = {}) =>
    publishDevice({
      channel,
      artifact: `${dir}/fw.bin`,
      name: "esp32-boiler-v3",
      version: "1.1.0",
      classes: ["esp32-boiler-v3"],
      keys: [key],
      ...o,
    });
  return { dir, key, pub, channel, gateway, device };
}

Deno.test("publishDevice() refuses bad input, naming the option, and writes nothing", async () => {
  const t = await setup();
  await assert.rejects(t.device(), /has no manifest.json: publish a gateway release there first/);
  await t.gateway("1.0.0");
  const before = await Deno.readTextFile(`${t.channel}/manifest.json`);
  await assert.rejects(t.device({ name: "../x" }), /--name: expected an artifact name/);
  await assert.rejects(t.device({ version: "v1" }), /--version: expected a semantic version/);
  await assert.rejects(t.device({ classes: [] }), /needs at least one --class/);
  await assert.rejects(t.device({ classes: ["a/b"] }), /--class: expected a device class name/);
  await assert.rejects(t.device({ devices: ["x y"] }), /--device: expected a device id/);
  await assert.rejects(t.device({ artifact: `${t.dir}/nope` }), /Cannot read artifact/);
  await Deno.writeFile(`${t.dir}/empty.bin`, new Uint8Array());
  await assert.rejects(t.device({ artifact: `${t.dir}/empty.bin` }), /is empty/);
  assert.equal(await Deno.readTextFile(`${t.channel}/manifest.json`), before);
  await t.device();
  await assert.rejects(t.device(), /--version 1\.1\.0 is not newer than the listed/);
  await assert.rejects(t.device({ version: "1.0.9" }), /not newer/);
  const m = await t.device({ version: "1.0.9", allowDowngrade: true });
  assert.equal(m.signed.devices!["esp32-boiler-v3"].version, "1.0.9");
});

Deno.test("device artifacts are signed with the manifest and survive the gateway's own publish", async () => {
  const t = await setup();
  await t.gateway("1.0.0");
  const m1 = await t.device({ devices: ["boiler-1"] });
  assert.equal(m1.signed.version, "1.0.0");
  const e = parseDeviceTargets(m1.signed.devices)["esp32-boiler-v3"];
  assert.deepEqual(e.devices, ["boiler-1"]);
  assert.equal(e.length, 5000);
  assert.equal(e.path, "devices/esp32-boiler-v3/1.1.0/fw.bin");
  const m2 = await t.gateway("1.1.0");
  assert.equal(m2.signed.counter, m1.signed.counter + 1);
  assert.deepEqual(m2.signed.devices, m1.signed.devices);
  const keys = await readPublicKeys([t.pub]);
  const lines = await verifyChannel(t.channel, keys);
  assert.ok(lines.some((l) => l.startsWith("device artifact ok: esp32-boiler-v3 1.1.0")));
  // A device artifact changed on the channel fails `release verify` and the next publish.
  const f = `${t.channel}/${e.path}`;
  const bytes = await Deno.readFile(f);
  bytes[0] ^= 1;
  await Deno.writeFile(f, bytes);
  await assert.rejects(verifyChannel(t.channel, keys), /sha256 .* manifest says/);
  await assert.rejects(t.device({ version: "1.2.0" }), /does not verify, nothing taken from it/);
});

Deno.test("parseDeviceTargets() refuses malformed entries, naming them", () => {
  const good = {
    version: "1.0.0",
    path: "d/x.bin",
    sha256: "a".repeat(64),
    length: 1,
    classes: ["c"],
  };
  assert.deepEqual(parseDeviceTargets(undefined), {});
  assert.throws(() => parseDeviceTargets([]), /devices: expected a mapping/);
  assert.throws(() => parseDeviceTargets({ "A B": good }), /expected artifact names/);
  assert.throws(() => parseDeviceTargets({ x: { ...good, version: "1" } }), /x\.version/);
  assert.throws(() => parseDeviceTargets({ x: { ...good, path: "../etc" } }), /inside the channel/);
  assert.throws(() => parseDeviceTargets({ x: { ...good, length: 0 } }), /length > 0/);
  assert.throws(() => parseDeviceTargets({ x: { ...good, classes: [] } }), /x\.classes/);
  assert.throws(() => parseDeviceTargets({ x: { ...good, devices: ["a/b"] } }), /x\.devices/);
});

Deno.test("Updater.fetchArtifact() keeps the update limits: size cap, resume, hash check", async () => {
  const dir = await Deno.makeTempDir();
  const data = new Uint8Array(200_000).map((_, i) => i % 253);
  const sha = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", data)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const ranges: (string | null)[] = [];
  const server = serveLocal(
    (req) => {
      const range = req.headers.get("range");
      ranges.push(range);
      const from = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : 0;
      return new Response(data.subarray(from), {
        status: range ? 206 : 200,
        headers: range
          ? { "content-range": `bytes ${from}-${data.length - 1}/${data.length}` }
          : {},
      });
    },
  );
  const url = `${server.url}/fw.bin`;
  const ctx = new Ctx();
  const config = <UpdateConfig> updateSchema.check(
    { channel: "http://127.0.0.1/stable/", installRoot: dir, allowInsecure: true },
    ctx,
    [],
  );
  assert.deepEqual(ctx.issues, []);
  const u = new Updater({
    config,
    gatewayId: "gw",
    log: createLogger({ sink: () => {} }),
  });
  const a = { version: "fw 1.1.0", url, sha256: sha, length: data.length };
  try {
    await assert.rejects(
      u.fetchArtifact(a, `${dir}/fw.part`, { maxBytes: 100_000 }),
      /over the limit of 100000/,
    );
    assert.deepEqual(ranges, []);
    // A partial file from an earlier attempt: only the rest is fetched.
    await Deno.writeFile(`${dir}/fw.part`, data.subarray(0, 50_000));
    await u.fetchArtifact(a, `${dir}/fw.part`);
    assert.deepEqual(ranges, ["bytes=50000-"]);
    assert.deepEqual(await Deno.readFile(`${dir}/fw.part`), data);
    // A file that does not match the signed hash is deleted.
    await Deno.remove(`${dir}/fw.part`);
    await assert.rejects(
      u.fetchArtifact({ ...a, sha256: "0".repeat(64) }, `${dir}/fw.part`),
      (e: Error & { code?: string }) => e.code === "hash-mismatch",
    );
    assert.equal(await Deno.stat(`${dir}/fw.part`).then(() => true, () => false), false);
    // Plain http is refused unless the channel allows it.
    const strict = new Updater({
      config: { ...config, allowInsecure: false },
      gatewayId: "gw",
      log: createLogger({ sink: () => {} }),
    });
    await assert.rejects(strict.fetchArtifact(a, `${dir}/x`), /refusing plain http/);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
