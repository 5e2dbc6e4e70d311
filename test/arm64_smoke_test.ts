/**
 * ARM64 smoke test: the artifact that ships (`build.ts --bundle`) runs on the aarch64 Deno build
 * (npm `@deno/linux-arm64-glibc`, the same version as this Deno) through Debian's
 * qemu-user-static: config loaded, buffer written, readings forwarded to a real Mosquitto, and
 * the self-updater verifies a signed manifest for its target, aarch64-unknown-linux-gnu.
 *
 * Needs `qemu-user-static`, `libc6:arm64` and `libgcc-s1:arm64` (`.ci/run` installs them);
 * skipped, saying so, only when those are missing. The aarch64 Deno is fetched once with
 * `npm pack` into ~/.cache/outpost (or $XDG_CACHE_HOME/outpost).
 */
import assert from "node:assert/strict";
import { exportReadings } from "../src/buffer/export.ts";
import { Slots } from "../src/update/slots.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";
import { authHeaders, channelServer, keypair, outpost, ROOT, sh } from "./helpers/update.ts";

const AARCH64 = "aarch64-unknown-linux-gnu";
const VERSION = Deno.version.deno;

function firstExisting(paths: string[]): string | undefined {
  for (const p of paths) {
    try {
      Deno.statSync(p);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

const qemu = firstExisting(["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]);
const missing = [
  qemu ? undefined : "qemu-user-static",
  firstExisting(["/lib/ld-linux-aarch64.so.1", "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"])
    ? undefined
    : "libc6:arm64",
  firstExisting([
      "/usr/lib/aarch64-linux-gnu/libgcc_s.so.1",
      "/lib/aarch64-linux-gnu/libgcc_s.so.1",
    ])
    ? undefined
    : "libgcc-s1:arm64",
].filter((x): x is string => x !== undefined);

if (missing.length) {
  console.error(
    `SKIPPING the ARM64 smoke test: ${missing.join(", ")} not installed. Install with ` +
      `"dpkg --add-architecture arm64 && apt-get update && apt-get install qemu-user-static ` +
      `libc6:arm64 libgcc-s1:arm64" (.ci/run does).`,
  );
}

/** The aarch64 `deno` of this Deno's version, fetched with `npm pack` once and cached. */
async function aarch64Deno(): Promise<string> {
  const home = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  const dir = `${home}/outpost/deno-${VERSION}-aarch64`;
  const bin = `${dir}/deno`;
  if (!firstExisting([bin])) {
    await Deno.mkdir(`${home}/outpost`, { recursive: true });
    const tmp = await Deno.makeTempDir({ dir: `${home}/outpost`, prefix: ".fetch-" });
    try {
      const out = await sh("npm", [
        "pack",
        "--silent",
        `@deno/linux-arm64-glibc@${VERSION}`,
        "--pack-destination",
        tmp,
      ]);
      const tgz = `${tmp}/${out.trim().split("\n").pop()}`;
      await sh("tar", ["-xzf", tgz, "-C", tmp]);
      await Deno.mkdir(`${tmp}/bin`);
      await Deno.rename(`${tmp}/package/deno`, `${tmp}/bin/deno`);
      await Deno.chmod(`${tmp}/bin/deno`, 0o755);
      await Deno.rename(`${tmp}/bin`, dir).catch(() => {/* fetched meanwhile by another run */});
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  }
  // ELF e_machine 183: AArch64.
  const head = new Uint8Array(20);
  const f = await Deno.open(bin);
  await f.read(head);
  f.close();
  assert.equal(head[18] | head[19] << 8, 183, `${bin} is not an aarch64 ELF`);
  return bin;
}

Deno.test({
  name:
    "ARM64: the bundled artifact runs on aarch64 Deno under qemu — config, buffer, Mosquitto, signed manifest",
  ignore: missing.length > 0,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "outpost-arm64-" });
  const [denoArm, broker, key] = await Promise.all([
    aarch64Deno(),
    startMosquitto(),
    keypair(`${tmp}/keys`),
    sh(Deno.execPath(), [
      "run",
      "-A",
      `${ROOT}build.ts`,
      "--bundle",
      "--version",
      "1.1.0",
      "--out",
      `${tmp}/dist`,
    ]),
  ]);
  const artifact = `${tmp}/dist/outpost.js`;
  // The artifact's own `#!/usr/bin/env -S deno run …` line says how it runs.
  const shebang = (await Deno.readTextFile(artifact)).split("\n", 1)[0];
  const denoArgs = /^#!\/usr\/bin\/env -S deno (.*)$/.exec(shebang)![1].split(" ");
  // A device installed from this artifact, and a channel offering the same version for aarch64.
  const slots = new Slots(`${tmp}/opt`);
  await slots.init(artifact, "1.1.0");
  const channel = `${tmp}/channel`;
  await outpost(
    "release",
    "publish",
    "--channel",
    channel,
    "--artifact",
    artifact,
    "--version",
    "1.1.0",
    "--target",
    AARCH64,
    "--key",
    key.key,
    // The aarch64 Deno as the bundle's runtime: checked under qemu, listed in the manifest.
    "--runtime",
    denoArm,
  );
  const published = JSON.parse(await Deno.readTextFile(`${channel}/manifest.json`)).signed;
  assert.equal(published.runtimes[published.targets[AARCH64].runtime].target, AARCH64);
  const srv = channelServer(channel);
  const sub = await subscribe(broker.url, "gateways/arm64-smoke/#");
  const httpPort = freePort();
  const config = `${tmp}/site.yaml`;
  await Deno.writeTextFile(
    config,
    `gateway: { id: arm64-smoke }
buffer: { path: ${tmp}/buffer.db, minFreeDisk: 0 }
uplink: { type: mqtt, url: ${broker.url}, reconnect: { min: 200ms, max: 1s } }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 200ms }
http: { listen: 127.0.0.1:${httpPort} }
update:
  channel: ${srv.url}
  channelName: channel
  installRoot: ${tmp}/opt
  checkInterval: 1h
  allowInsecure: true
  trustedKeys: [${JSON.stringify(key.pub)}]
`,
  );
  const log = await Deno.open(`${tmp}/gateway.log`, { write: true, create: true });
  const started = performance.now();
  const child = new Deno.Command(qemu!, {
    args: [denoArm, ...denoArgs, `${tmp}/opt/current/outpost`, "run", "--config", config],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_DIR: `${tmp}/deno-dir` },
  }).spawn();
  const pump = async (from: ReadableStream<Uint8Array>) => {
    for await (const chunk of from) {
      let off = 0;
      while (off < chunk.length) off += await log.write(chunk.subarray(off));
    }
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const logText = () => Deno.readTextFile(`${tmp}/gateway.log`).catch(() => "");
  try {
    const gone = status.then(async (st) => {
      throw new Error(`the aarch64 gateway exited (${st.code}) early:\n${await logText()}`);
    });
    gone.catch(() => {});
    // deno under qemu takes tens of seconds to compile the bundle before any of it runs.
    const s = await Promise.race([
      gone,
      waitFor(
        "the aarch64 gateway to be healthy and forwarding",
        async () => {
          const res = await fetch(`http://127.0.0.1:${httpPort}/status`, {
            headers: await authHeaders(tmp),
          });
          const body = await res.json();
          return body.health?.ok && body.uplink?.connected && body.update?.lastCheck
            ? body
            : undefined;
        },
        150_000,
        500,
      ).catch(async (e) => {
        throw new Error(`${(e as Error).message}\n--- gateway log ---\n${await logText()}`);
      }),
    ]);
    console.log(`aarch64 gateway healthy ${Math.round(performance.now() - started)}ms after exec`);
    assert.equal(s.version, "1.1.0");
    assert.equal(s.gatewayId, "arm64-smoke", "the config was loaded");
    assert.equal(s.update.target, AARCH64, "the process is the aarch64 build");
    assert.equal(s.update.lastCheck.result, "current", JSON.stringify(s.update.lastCheck));
    assert.equal(await Deno.realPath(`/proc/${s.pid}/exe`), await Deno.realPath(qemu!));
    await waitFor("readings at the broker", () => sub.unique().size >= 10, 60_000, 100);
    const stored = [...exportReadings(`${tmp}/buffer.db`)];
    assert.ok(stored.length >= 10, `buffer holds ${stored.length} readings`);
    const forwarded = stored.filter((r) => r.forwarded);
    assert.ok(forwarded.length > 0, "the buffer marks readings forwarded");
    await waitFor(
      "every reading the buffer marks forwarded at the broker",
      () => forwarded.every((r) => sub.unique().has(r.seq)),
      30_000,
    );
    const u = sub.unique();
    for (const r of forwarded) {
      assert.deepEqual([u.get(r.seq)!.device, u.get(r.seq)!.value], [r.device, r.value]);
    }
    child.kill("SIGTERM");
    const st = await status;
    assert.equal(st.code, 0, `clean shutdown:\n${await logText()}`);
    assert.match(await logText(), /received SIGTERM; shutting down/);
  } finally {
    if (!exited) child.kill("SIGKILL");
    await status;
    await pumped;
    log.close();
    await sub.close();
    await srv.close();
    await broker.stop();
  }
});
