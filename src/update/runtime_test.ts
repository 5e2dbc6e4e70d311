import assert from "node:assert/strict";
import { UpdateRefused } from "./errors.ts";
import { parseManifest } from "./manifest.ts";
import { bundleFlags, launcherScript, parseDenoVersion, runtimeKey } from "./runtime.ts";

const T = "x86_64-unknown-linux-gnu";
const SHA = "a".repeat(64);

function manifest(runtimes: unknown) {
  return {
    signed: {
      _type: "outpost-release",
      channel: "stable",
      version: "1.2.0",
      counter: 1,
      published: "2026-01-01T00:00:00Z",
      expires: "2027-01-01T00:00:00Z",
      targets: {
        [T]: { path: "artifacts/1.2.0/x/outpost", sha256: SHA, length: 10, hardware: ["generic"] },
      },
      ...(runtimes === undefined ? {} : { runtimes }),
    },
    signatures: [],
  } as unknown as { signed: { targets: Record<string, { runtime?: unknown }> } };
}

function withRuntime(targetRuntime: unknown, runtimes: unknown) {
  const m = manifest(runtimes);
  m.signed.targets[T].runtime = targetRuntime;
  return m;
}

const entry = {
  name: "deno",
  version: "2.9.5",
  target: T,
  path: `runtimes/${SHA}/deno`,
  sha256: SHA,
  length: 95_000_000,
};

Deno.test("parseManifest() accepts a target naming a runtime listed for it", () => {
  const key = runtimeKey("2.9.5", T);
  const m = parseManifest(withRuntime(key, { [key]: entry }));
  assert.equal(m.signed.targets[T].runtime, key);
  assert.equal(m.signed.runtimes?.[key].sha256, SHA);
});

Deno.test("parseManifest() refuses runtime references and entries that do not hold", () => {
  const key = runtimeKey("2.9.5", T);
  const cases: [unknown, unknown, RegExp][] = [
    [key, undefined, /targets\.x86_64-unknown-linux-gnu\.runtime: expected the key of an entry/],
    ["deno-9.9.9-x", { [key]: entry }, /expected the key of an entry in runtimes/],
    [key, { [key]: { ...entry, path: "https://evil.example/deno" } }, /runtimes\.deno-2\.9\.5/],
    [key, { [key]: { ...entry, path: "../../deno" } }, /path \(inside the channel\)/],
    [key, { [key]: { ...entry, sha256: "xyz" } }, /runtimes\.deno-2\.9\.5/],
    [key, { [key]: { ...entry, length: 0 } }, /length > 0/],
    [key, { [key]: { ...entry, name: "node" } }, /name: "deno"/],
    ["deno-2.9.5-other", { "deno-2.9.5-other": entry }, /listed as deno-<version>-<target>/],
    [
      runtimeKey("2.9.5", "aarch64-unknown-linux-gnu"),
      {
        [runtimeKey("2.9.5", "aarch64-unknown-linux-gnu")]: {
          ...entry,
          target: "aarch64-unknown-linux-gnu",
        },
      },
      /names a runtime for aarch64-unknown-linux-gnu/,
    ],
    [undefined, ["x"], /runtimes: expected a mapping/],
  ];
  for (const [ref, runtimes, re] of cases) {
    assert.throws(
      () => parseManifest(ref === undefined ? manifest(runtimes) : withRuntime(ref, runtimes)),
      (e) => e instanceof UpdateRefused && e.code === "manifest-malformed" && re.test(e.message),
      `${JSON.stringify(ref)} ${JSON.stringify(runtimes)?.slice(0, 80)}`,
    );
  }
});

Deno.test("bundleFlags() takes the deno run flags of a bundle's first line, nothing else", () => {
  assert.deepEqual(
    bundleFlags(
      "#!/usr/bin/env -S deno run --allow-read --unstable-net --v8-flags=--max-semi-space-size=1,--max-old-space-size=64",
    ),
    [
      "--allow-read",
      "--unstable-net",
      "--v8-flags=--max-semi-space-size=1,--max-old-space-size=64",
    ],
  );
  assert.deepEqual(bundleFlags("#!/usr/bin/env -S deno run -A --allow-all"), ["-A", "--allow-all"]);
  assert.throws(() => bundleFlags("\x7fELF\x02\x01"), /not a bundle/);
  assert.throws(() => bundleFlags("#!/bin/sh"), /not a bundle/);
  assert.throws(
    () => bundleFlags("#!/usr/bin/env -S deno run --allow-all;rm -rf /"),
    /not -X or --name\[=value\]: "--allow-all;rm"/,
  );
  assert.throws(() => bundleFlags("#!/usr/bin/env -S deno run $(id)"), /not -X or --name/);
});

Deno.test("launcherScript() runs the slot's own deno with the slot's own bundle", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/slots/a`, { recursive: true });
    // A stand-in runtime that prints what it was asked to run.
    await Deno.writeTextFile(`${dir}/slots/a/deno`, `#!/bin/sh\necho "$0|$*"\n`);
    await Deno.chmod(`${dir}/slots/a/deno`, 0o755);
    await Deno.writeTextFile(`${dir}/slots/a/outpost`, launcherScript(["--allow-read"]));
    await Deno.chmod(`${dir}/slots/a/outpost`, 0o755);
    await Deno.symlink("slots/a", `${dir}/current`);
    const out = await new Deno.Command(`${dir}/current/outpost`, {
      args: ["version", "--json"],
      stdout: "piped",
    }).output();
    const real = await Deno.realPath(`${dir}/slots/a`);
    assert.equal(
      new TextDecoder().decode(out.stdout).trim(),
      `${real}/deno|run --allow-read ${real}/outpost.js version --json`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseDenoVersion() reads the Deno CLI's --version; a denort or anything else is not one", () => {
  assert.deepEqual(
    parseDenoVersion(
      "deno 2.9.5 (stable, release, aarch64-unknown-linux-gnu)\nv8 15.0.245.2-rusty\ntypescript 6.0.3\n",
    ),
    { version: "2.9.5", target: "aarch64-unknown-linux-gnu" },
  );
  assert.match(
    parseDenoVersion("deno 2.9.5 (stable, release, x86_64-unknown-linux-gnu)\nv8 15\n") as string,
    /not the Deno CLI/,
  );
  assert.match(parseDenoVersion("true (GNU coreutils) 9.7\n") as string, /not "deno X\.Y\.Z/);
});
