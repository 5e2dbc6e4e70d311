/**
 * The Deno runtime a bundle release runs on: its entry in the signed release metadata, the check
 * that a file is a Deno of the pinned version, and the launcher a slot runs the two with.
 *
 * A bundle release's target names a runtime (`targets.<t>.runtime`), listed under `runtimes` with
 * its version, target, path, SHA-256 and length, so the signed metadata covers everything that
 * goes on the device. A compiled binary carries its runtime and names none.
 *
 * @module
 */
import { isChannelPath, TARGET_RE } from "./manifest.ts";

/** The Deno version bundles are built with and run on (the project's pinned Deno). */
export const PINNED_DENO = "2.9.5";

/** A Deno runtime in the signed metadata. */
export interface RuntimeEntry {
  name: "deno";
  version: string;
  /** The build target it runs on, e.g. aarch64-unknown-linux-gnu. */
  target: string;
  path: string;
  sha256: string;
  length: number;
}

/** The key a runtime is listed under in `runtimes`. */
export function runtimeKey(version: string, target: string): string {
  return `deno-${version}-${target}`;
}

/**
 * Checks `runtimes` and every target's `runtime` reference of a signed manifest; returns what
 * is wrong and the value found, or undefined when they are sound (or absent).
 */
export function runtimesProblem(
  signed: { targets: Record<string, { runtime?: unknown }>; runtimes?: unknown },
): [what: string, got: unknown] | undefined {
  const rts = signed.runtimes;
  if (rts !== undefined) {
    if (!rts || typeof rts !== "object" || Array.isArray(rts)) {
      return ["runtimes: expected a mapping", rts];
    }
    for (const [k, r] of Object.entries(rts as Record<string, RuntimeEntry>)) {
      if (
        r?.name !== "deno" || typeof r.version !== "string" ||
        !/^\d+\.\d+\.\d+$/.test(r.version) || typeof r.target !== "string" ||
        !TARGET_RE.test(r.target) || k !== runtimeKey(r.version, r.target) ||
        !isChannelPath(r.path) || !/^[0-9a-f]{64}$/.test(r.sha256) ||
        !Number.isSafeInteger(r.length) || r.length <= 0
      ) {
        return [
          `runtimes.${k}: expected { name: "deno", version, target, path (inside the channel), sha256, length > 0 } listed as deno-<version>-<target>`,
          r,
        ];
      }
    }
  }
  for (const [t, e] of Object.entries(signed.targets)) {
    if (e.runtime === undefined) continue;
    const r = (rts as Record<string, RuntimeEntry> | undefined)?.[e.runtime as string];
    if (typeof e.runtime !== "string" || !r) {
      return [`targets.${t}.runtime: expected the key of an entry in runtimes`, e.runtime];
    }
    if (r.target !== t) {
      return [`targets.${t}.runtime: names a runtime for ${r.target}`, e.runtime];
    }
  }
  return undefined;
}

const FLAG_RE = /^(?:-[A-Za-z]|--[a-z][a-z0-9-]*(?:=[A-Za-z0-9_.,:=/+-]+)?)$/;

/**
 * The `deno run` flags of a bundle, from its first line (`#!/usr/bin/env -S deno run …`); throws
 * naming the line when it is not one or a flag is not a plain `-X` or `--name[=value]`.
 */
export function bundleFlags(firstLine: string): string[] {
  const m = /^#!\S*(?:\s+-S)?\s+deno\s+run((?:\s+\S+)*)\s*$/.exec(firstLine);
  if (!m) {
    throw new Error(
      `not a bundle: first line ${
        JSON.stringify(firstLine.slice(0, 80))
      } is not "#!/usr/bin/env -S deno run …"`,
    );
  }
  const flags = m[1].trim().split(/\s+/).filter(Boolean);
  const odd = flags.find((f) => !FLAG_RE.test(f));
  if (odd) {
    throw new Error(`bundle's first line has a flag that is not -X or --name[=value]: "${odd}"`);
  }
  return flags;
}

/** The first line of a file (at most 4 KB read). */
export async function firstLine(path: string): Promise<string> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(4096);
    const n = await f.read(buf) ?? 0;
    return new TextDecoder().decode(buf.subarray(0, n)).split("\n")[0];
  } finally {
    f.close();
  }
}

/**
 * The launcher a slot with a runtime runs as its `outpost`: this slot's `deno` with this slot's
 * `outpost.js` and the bundle's own flags. The directory is resolved first, so a switch of
 * `current` while it starts cannot pair one slot's runtime with another's bundle.
 */
export function launcherScript(flags: string[]): string {
  return `#!/bin/sh
# Written by the Outpost updater: runs this slot's Deno runtime with this slot's bundle.
d=$(cd "$(dirname "$0")" && pwd -P) || exit 1
exec "$d/deno" run ${flags.join(" ")} "$d/outpost.js" "$@"
`;
}

/**
 * What `deno --version` says: the version and target of a Deno CLI, or why it is not one.
 * The CLI names its TypeScript (a denort, which cannot run a bundle, does not).
 */
export function parseDenoVersion(text: string): { version: string; target: string } | string {
  const m = /^deno (\d+\.\d+\.\d+) \([^)]*?([a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+)\)/m
    .exec(text);
  if (!m) {
    return `\`--version\` answered ${JSON.stringify(text.slice(0, 80))}, not "deno X.Y.Z (…)"`;
  }
  if (!/^typescript /m.test(text)) {
    return `it is not the Deno CLI (no TypeScript in \`--version\`; a denort cannot run a bundle)`;
  }
  return { version: m[1], target: m[2] };
}
