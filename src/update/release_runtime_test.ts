import assert from "node:assert/strict";
import { ReleaseError } from "./errors.ts";
import { keygen, publish, readPublicKeys, verifyChannel } from "./release.ts";
import { checkRuntime } from "./release_runtime.ts";
import { PINNED_DENO, runtimeKey } from "./runtime.ts";
import { sha256File } from "./updater.ts";

const T = Deno.build.target;
const ARM = "aarch64-unknown-linux-gnu";
/** The aarch64 Deno test/arm64_smoke_test.ts fetches (npm @deno/linux-arm64-glibc). */
const ARM_DENO = `${
  Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`
}/outpost/deno-${PINNED_DENO}-aarch64/deno`;
const isFile = (p: string) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
};
const QEMU = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"].find(isFile);
const haveArm = QEMU !== undefined && isFile(ARM_DENO);

async function setup() {
  const dir = await Deno.makeTempDir();
  const { key, pub } = await keygen(`${dir}/keys`);
  await Deno.writeTextFile(
    `${dir}/outpost.js`,
    `#!/usr/bin/env -S deno run -A\nconsole.log(JSON.stringify({ version: "1.2.0" }));\n`,
  );
  return {
    dir,
    key,
    pub,
    channel: `${dir}/stable`,
    artifact: `${dir}/outpost.js`,
    close: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("checkRuntime() accepts this Deno for its target, refuses anything that is not that Deno", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await checkRuntime(Deno.execPath(), T), `deno ${PINNED_DENO} for ${T}`);
    await Deno.writeTextFile(`${dir}/deno`, "#!/bin/sh\necho deno 2.9.5\n");
    await Deno.chmod(`${dir}/deno`, 0o755);
    await assert.rejects(checkRuntime(`${dir}/deno`, T), /is not a Deno executable \(not an ELF/);
    // An ELF for this machine that is not Deno.
    await assert.rejects(
      checkRuntime("/usr/bin/true", T),
      (e) => e instanceof ReleaseError && /"\/usr\/bin\/true" is not a Deno/.test(e.message),
    );
    await assert.rejects(checkRuntime(Deno.execPath(), ARM), /is an executable for x86_64, not/);
    await assert.rejects(checkRuntime(`${dir}/missing`, T), /cannot read ".*missing"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "checkRuntime() runs the aarch64 Deno under qemu-aarch64-static",
  ignore: !haveArm || Deno.build.arch !== "x86_64",
}, async () => {
  assert.equal(
    await checkRuntime(ARM_DENO, ARM),
    `deno ${PINNED_DENO} for ${ARM} (run under ${QEMU})`,
  );
  await assert.rejects(checkRuntime(ARM_DENO, T), /is an executable for aarch64, not for/);
});

Deno.test("publish() with --runtime: the manifest names the runtime, verify checks it, a tampered one fails", async () => {
  const t = await setup();
  try {
    const m = await publish({
      channel: t.channel,
      artifact: t.artifact,
      version: "1.2.0",
      target: T,
      keys: [t.key],
      runtime: Deno.execPath(),
    });
    const key = runtimeKey(PINNED_DENO, T);
    const sha = await sha256File(Deno.execPath());
    assert.equal(m.signed.targets[T].runtime, key);
    assert.deepEqual(m.signed.runtimes?.[key], {
      name: "deno",
      version: PINNED_DENO,
      target: T,
      path: `runtimes/${sha}/deno`,
      sha256: sha,
      length: (await Deno.stat(Deno.execPath())).size,
    });
    const pubs = await readPublicKeys([t.pub]);
    const lines = await verifyChannel(t.channel, pubs);
    assert.ok(lines.some((l) => l.startsWith(`runtime ok: ${key}`)), lines.join("\n"));

    // The same version again without a runtime: the entry goes with the last target naming it.
    const again = await publish({
      channel: t.channel,
      artifact: t.artifact,
      version: "1.2.0",
      target: T,
      keys: [t.key],
    });
    assert.equal(again.signed.targets[T].runtime, undefined);
    assert.equal(again.signed.runtimes, undefined);

    await publish({
      channel: t.channel,
      artifact: t.artifact,
      version: "1.3.0",
      target: T,
      keys: [t.key],
      runtime: Deno.execPath(),
    });
    const f = await Deno.open(`${t.channel}/runtimes/${sha}/deno`, { write: true });
    await f.write(new Uint8Array([0, 0, 0, 0]));
    f.close();
    await assert.rejects(verifyChannel(t.channel, pubs), /runtimes\/.*\/deno: sha256 .* says/);
    // Nor will publish build on a channel whose runtime does not match.
    await assert.rejects(
      publish({
        channel: t.channel,
        artifact: t.artifact,
        version: "1.4.0",
        target: T,
        keys: [t.key],
      }),
      /existing ".*manifest\.json" does not verify.*sha256/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("publish() refuses --runtime for a compiled binary and a runtime that is not Deno; nothing is written", async () => {
  const t = await setup();
  try {
    const base = { channel: t.channel, version: "1.2.0", target: T, keys: [t.key] };
    await assert.rejects(
      publish({ ...base, artifact: Deno.execPath(), runtime: Deno.execPath() }),
      /--runtime: artifact .* is not a bundle .*a compiled binary carries its own runtime/,
    );
    await assert.rejects(
      publish({ ...base, artifact: t.artifact, runtime: "/usr/bin/true" }),
      /--runtime "\/usr\/bin\/true" is not a Deno/,
    );
    await assert.rejects(
      publish({ ...base, artifact: t.artifact, runtime: t.artifact }),
      /is not a Deno executable/,
    );
    await assert.rejects(Deno.lstat(t.channel), Deno.errors.NotFound);
  } finally {
    await t.close();
  }
});
