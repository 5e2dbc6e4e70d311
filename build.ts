/**
 * `deno task build [--version X.Y.Z] [--target T]… [--out DIR]`: compiles the gateway with
 * `deno compile` for x86_64 and aarch64 Linux into dist/ (or DIR), with the gateway's
 * permissions (GATEWAY_PERMISSIONS), checks each binary answers `version --json` with that version
 * (natively, or under qemu-user-static for the other architecture when installed) and writes
 * SHA256SUMS. Refuses a `DENORT_BIN` that is the Deno CLI rather than a denort.
 * `deno task bundle [--version X.Y.Z] [--out DIR]`: writes dist/outpost.js (or DIR/outpost.js), one
 * bundled JS file with a `#!/usr/bin/env -S deno run …` line, runnable wherever Deno is installed.
 * Parallel bundles need distinct `--out` directories (the stamp and entry files live there).
 *
 * TEST-ONLY: `--behaviour exit|unhealthy|hang` bakes a misbehaviour into the stamp so the update
 * tests get real bad releases (see src/version.ts `TEST_BEHAVIOUR`); `--test-hooks` lets the
 * power-loss tests hold the updater at a chosen step (src/update/_test_hooks.ts);
 * `--test-schema next` adds one additive buffer schema step (src/buffer/schema.ts) for the
 * schema round-trip test. Never use any of them for a release.
 *
 * `deno compile` needs its `denort` base binary; offline, point DENORT_BIN at one
 * (e.g. from the `@deno/linux-arm64-glibc` npm package). `--v8-flags` given to `deno compile`
 * also limit the compiler itself, so compiled binaries get theirs from `DENO_V8_FLAGS` (the
 * systemd unit sets it to GATEWAY_V8_FLAGS).
 */
import { parseArgs } from "node:util";
import { GATEWAY_PERMISSIONS, GATEWAY_V8_FLAGS } from "./src/runtime_flags.ts";
import { runnerFor } from "./src/update/mod.ts";

const ROOT = new URL(".", import.meta.url).pathname;
const DIST = `${ROOT}dist`;
const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    version: { type: "string" },
    target: { type: "string", multiple: true },
    bundle: { type: "boolean" },
    out: { type: "string" },
    behaviour: { type: "string" },
    "test-hooks": { type: "boolean" },
    "test-schema": { type: "string" },
  },
});
const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
const version = values.version ?? Deno.env.get("OUTPOST_VERSION") ?? denoJson.version;
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  console.error(`build: --version: expected a semantic version such as 1.2.0, got "${version}"`);
  Deno.exit(2);
}
const behaviour = values.behaviour;
if (behaviour !== undefined && !["exit", "unhealthy", "hang"].includes(behaviour)) {
  console.error(`build: --behaviour: expected exit, unhealthy or hang, got "${behaviour}"`);
  Deno.exit(2);
}
const testSchema = values["test-schema"];
if (testSchema !== undefined && testSchema !== "next") {
  console.error(`build: --test-schema: expected next, got "${testSchema}"`);
  Deno.exit(2);
}
const OUT = values.out ? await Deno.realPath(values.out).catch(() => values.out!) : DIST;
await Deno.mkdir(OUT, { recursive: true });
const entry = `${OUT}/.entry.ts`;
await Deno.writeTextFile(
  `${OUT}/.stamp.ts`,
  `(globalThis as { __OUTPOST_VERSION__?: string }).__OUTPOST_VERSION__ = ${
    JSON.stringify(version)
  };\n` +
    (behaviour
      ? `// TEST-ONLY misbehaviour for the update tests.\n(globalThis as { __OUTPOST_TEST_BEHAVIOUR__?: string }).__OUTPOST_TEST_BEHAVIOUR__ = ${
        JSON.stringify(behaviour)
      };\n`
      : "") +
    (values["test-hooks"]
      ? `// TEST-ONLY hold points for the power-loss tests.\n(globalThis as { __OUTPOST_TEST_HOOKS__?: boolean }).__OUTPOST_TEST_HOOKS__ = true;\n`
      : "") +
    (testSchema
      ? `// TEST-ONLY: one more (additive) buffer schema step, src/buffer/schema.ts.\n(globalThis as { __OUTPOST_TEST_SCHEMA__?: string }).__OUTPOST_TEST_SCHEMA__ = ${
        JSON.stringify(testSchema)
      };\n`
      : ""),
);
const src = (p: string) => JSON.stringify(new URL(p, `file://${ROOT}`).href);
await Deno.writeTextFile(
  entry,
  `import "./.stamp.ts";\nimport { adapters } from ${
    src("adapters/mod.ts")
  };\nimport { main } from ${src("src/cli/mod.ts")};\nimport { testBehaviourAtStart } from ${
    src("src/version.ts")
  };\n` +
    // A TEST-ONLY bad release still tells its version (the updater asks before its trial), as
    // a release whose gateway fails at start would.
    `if (Deno.args[0] !== "version") await testBehaviourAtStart();\n` +
    `Deno.exit(await main(Deno.args, { adapters }));\n`,
);

async function run(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" })
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  return { ok: out.success, stderr };
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

if (values.bundle) {
  const out = `${OUT}/outpost.js`;
  const r = await run([
    "bundle",
    "--quiet",
    "--platform",
    "deno",
    // dbus-next requires "x11" only to find a session bus from an X display; never on a gateway.
    "--external",
    "x11",
    "--output",
    `${OUT}/.bundle.js`,
    entry,
  ]);
  if (!r.ok) {
    console.error(`bundle: deno bundle failed:\n${r.stderr}`);
    Deno.exit(1);
  }
  const js = await Deno.readTextFile(`${OUT}/.bundle.js`);
  await Deno.writeTextFile(
    out,
    `#!/usr/bin/env -S deno run ${
      GATEWAY_PERMISSIONS.join(" ")
    } --v8-flags=${GATEWAY_V8_FLAGS}\n${js}`,
  );
  await Deno.chmod(out, 0o755);
  await Deno.remove(`${OUT}/.bundle.js`);
  console.log(`${out}  version ${version}  sha256 ${await sha256(out)}`);
  Deno.exit(0);
}

/** Why `DENORT_BIN` cannot be a denort, or undefined when it may be one. */
async function notDenort(path: string): Promise<string | undefined> {
  let o: Deno.CommandOutput;
  try {
    o = await new Deno.Command(path, { args: ["--version"], stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    return `cannot run it: ${(e as Error).message}`;
  }
  const text = new TextDecoder().decode(o.stdout);
  // The Deno CLI names its TypeScript; a denort has no compiler and no such line.
  if (/^deno \d/m.test(text) && /^typescript /m.test(text)) {
    return `it is the Deno CLI (${text.split("\n")[0].trim()}), not a denort: a "compiled" ` +
      `binary would be the Deno CLI itself`;
  }
  return undefined;
}

/** Runs a built binary's `version --json`; returns why it is not this build, if it is not. */
async function checkBuilt(out: string, arch: string): Promise<string | undefined> {
  const runner = runnerFor(arch);
  if (!runner) {
    console.warn(`build: ${out} not run: no qemu-${arch}-static here to run it`);
    return undefined;
  }
  const [cmd, ...pre] = [...runner, out];
  const o = await new Deno.Command(cmd, {
    args: [...pre, "version", "--json"],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stdout: new Uint8Array(), stderr: e }));
  const text = new TextDecoder().decode(o.stdout as Uint8Array).trim();
  let reported: unknown;
  try {
    reported = JSON.parse(text).version;
  } catch { /* not an Outpost build */ }
  if (!o.success || reported !== version) {
    return `\`${out} version --json\` answered ${
      JSON.stringify(text.slice(0, 120) || String(o.stderr).slice(0, 200))
    }, not version ${version}`;
  }
  return undefined;
}

const denort = Deno.env.get("DENORT_BIN");
if (denort) {
  const why = await notDenort(denort);
  if (why) {
    console.error(`build: DENORT_BIN=${denort}: ${why}`);
    Deno.exit(1);
  }
}

const sums: string[] = [];
for (const target of values.target ?? TARGETS) {
  const arch = target.split("-")[0];
  const out = `${OUT}/outpost-${version}-linux-${arch}`;
  const r = await run([
    "compile",
    "--quiet",
    "--target",
    target,
    ...GATEWAY_PERMISSIONS,
    "--output",
    out,
    entry,
  ]);
  if (!r.ok) {
    const offline = /denort|download|dns|connect|network|error sending request/i.test(r.stderr);
    console.error(`build: deno compile for ${target} failed:\n${r.stderr.trim()}`);
    if (offline) {
      console.error(
        `\n"deno compile" needs the denort base binary for ${target}, which it downloads from the internet.\n` +
          `On a machine without that access, provide it and point DENORT_BIN at it, e.g.:\n` +
          `  # on a connected machine: deno compile --target ${target} once, then copy\n` +
          `  #   $(deno info --json | jq -r .denoDir)/dl/release/v${Deno.version.deno}/denort-${target}.zip (unzipped)\n` +
          `  # (the full deno binary from npm is not a denort and does not work)\n` +
          `  DENORT_BIN=/path/to/denort deno task build --target ${target}`,
      );
    }
    Deno.exit(1);
  }
  const wrong = await checkBuilt(out, arch);
  if (wrong) {
    await Deno.remove(out).catch(() => {});
    console.error(`build: ${target}: ${wrong}; removed it`);
    Deno.exit(1);
  }
  sums.push(`${await sha256(out)}  ${out.slice(OUT.length + 1)}`);
  console.log(out);
}
await Deno.writeTextFile(`${OUT}/SHA256SUMS`, sums.join("\n") + "\n");
console.log(`${OUT}/SHA256SUMS`);
