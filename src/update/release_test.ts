import assert from "node:assert/strict";
import { keygen, publish } from "./release.ts";
import { checkArtifact } from "./release.ts";

const T = Deno.build.target;

/** A Deno script that answers `version --json` like an Outpost bundle of `version`. */
function bundle(version: string): string {
  return `#!/usr/bin/env -S deno run -A\nconsole.log(JSON.stringify({ version: ${
    JSON.stringify(version)
  } }));\n`;
}

async function setup() {
  const dir = await Deno.makeTempDir();
  const { key } = await keygen(`${dir}/keys`);
  await Deno.writeTextFile(`${dir}/outpost.js`, bundle("1.2.0"));
  const channel = `${dir}/www/stable`;
  return { dir, key, channel, artifact: `${dir}/outpost.js` };
}

Deno.test("publish() refuses a --target that is not a build target; nothing is written", async () => {
  const t = await setup();
  for (const target of ["../../x", "x86_64/../../../etc", "x86_64-unknown-linux-gnu/.."]) {
    await assert.rejects(
      publish({
        channel: t.channel,
        artifact: t.artifact,
        version: "1.2.0",
        target,
        keys: [t.key],
      }),
      /--target: expected a build target such as x86_64-unknown-linux-gnu/,
    );
  }
  const entries = [...Deno.readDirSync(t.dir)].map((e) => e.name).sort();
  assert.deepEqual(entries, ["keys", "outpost.js"]);
});

Deno.test("publish() never writes a counter devices cannot read (over 2^53-1)", async () => {
  const t = await setup();
  const base = { channel: t.channel, artifact: t.artifact, target: T, keys: [t.key] };
  await publish({ ...base, version: "1.2.0", counter: Number.MAX_SAFE_INTEGER });
  await assert.rejects(
    publish({ ...base, version: "1.2.0" }),
    /the next counter after 9007199254740991 is over 9007199254740991/,
  );
  await assert.rejects(
    publish({ ...base, version: "1.2.0", counter: 2 ** 53 }),
    /--counter: expected an integer from 0 to 9007199254740991/,
  );
  const m = JSON.parse(await Deno.readTextFile(`${t.channel}/manifest.json`));
  assert.equal(m.signed.counter, Number.MAX_SAFE_INTEGER);
});

Deno.test("publish() verifies the existing manifest and its artifacts before taking anything from it", async () => {
  const t = await setup();
  const base = { channel: t.channel, artifact: t.artifact, version: "1.2.0", keys: [t.key] };
  await publish({ ...base, target: T });
  const path = `${t.channel}/manifest.json`;
  const good = await Deno.readTextFile(path);
  // Someone added a target to the signed manifest by hand: the signature no longer holds.
  const m = JSON.parse(good);
  m.signed.targets["aarch64-unknown-linux-gnu"] = { ...m.signed.targets[T] };
  await Deno.writeTextFile(path, JSON.stringify(m));
  await assert.rejects(
    publish({ ...base, target: "aarch64-unknown-linux-gnu" }),
    /existing ".*manifest\.json" does not verify, nothing taken from it: .*does not verify/,
  );
  // A signed manifest whose artifact was swapped on the server.
  await Deno.writeTextFile(path, good);
  const art = `${t.channel}/artifacts/1.2.0/${T}/outpost`;
  await Deno.writeTextFile(art, bundle("1.2.0").replace("1.2.0", "6.6.6"));
  await assert.rejects(
    publish({ ...base, target: "aarch64-unknown-linux-gnu" }),
    /existing ".*manifest\.json" does not verify, nothing taken from it: .*sha256 [0-9a-f]{64}, manifest says/,
  );
  // Signed by a key the publisher does not hold.
  await Deno.writeTextFile(art, bundle("1.2.0"));
  const other = await keygen(`${t.dir}/other`);
  await assert.rejects(
    publish({ ...base, target: T, keys: [other.key] }),
    /does not verify, nothing taken from it: .*unknown key/,
  );
  assert.equal(await Deno.readTextFile(path), good);
});

Deno.test("publish() refuses a channel name that is not a name", async () => {
  const t = await setup();
  await assert.rejects(
    publish({
      channel: t.channel,
      artifact: t.artifact,
      version: "1.2.0",
      target: T,
      keys: [t.key],
      channelName: "../beta",
    }),
    /--channel-name: expected a channel name such as stable, got "\.\.\/beta"/,
  );
});

Deno.test("checkArtifact() accepts an Outpost build of that version only", async () => {
  const t = await setup();
  assert.match(
    await checkArtifact(t.artifact, { version: "1.2.0", target: T }),
    /Deno bundle reporting 1\.2\.0/,
  );
  await assert.rejects(
    checkArtifact(t.artifact, { version: "6.6.6", target: T }),
    /reports version 1\.2\.0, not --version 6\.6\.6/,
  );
  await Deno.writeTextFile(`${t.dir}/notes.txt`, "release notes\n");
  await assert.rejects(
    checkArtifact(`${t.dir}/notes.txt`, { version: "1.2.0", target: T }),
    /is not an Outpost build \(neither an executable nor a bundle/,
  );
  // The Deno CLI is an executable for this machine but no Outpost build.
  await assert.rejects(
    checkArtifact(Deno.execPath(), { version: "1.2.0", target: T }),
    /does not answer `version --json`|no version in/,
  );
  const other = Deno.build.arch === "x86_64"
    ? "aarch64-unknown-linux-gnu"
    : "x86_64-unknown-linux-gnu";
  await assert.rejects(
    checkArtifact(Deno.execPath(), { version: "1.2.0", target: other }),
    new RegExp(`is an executable for ${Deno.build.arch}, not for --target ${other}`),
  );
});
