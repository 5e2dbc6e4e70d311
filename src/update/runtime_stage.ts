/**
 * The device side of a bundle release's runtime: the slot being staged gets the Deno runtime the
 * signed metadata names — found in place, copied from the running slot, or downloaded — always
 * checked against its SHA-256; then the slot's `outpost` becomes a launcher of its own runtime
 * and bundle, so a rollback to the slot brings back both.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import type { Logger } from "../log.ts";
import { UpdateRefused } from "./errors.ts";
import type { SignedManifest, TargetEntry } from "./manifest.ts";
import { bundleFlags, firstLine, launcherScript } from "./runtime.ts";
import { fsyncPath, type Slot, type Slots, writeFileAtomic } from "./slots.ts";
import { sha256File } from "./updater.ts";

/** The runtime a release needs, as the device's check resolved it. */
export interface RuntimeNeed {
  /** `deno-<version>-<target>` */
  key: string;
  version: string;
  url: string;
  sha256: string;
  length: number;
}

/**
 * The runtime a manifest's target names, with its URL under the channel; undefined for a target
 * without one. Throws `manifest-malformed` when its path leads outside the channel.
 */
export function runtimeNeed(
  signed: SignedManifest,
  target: TargetEntry,
  channel: string,
): RuntimeNeed | undefined {
  const rt = target.runtime ? signed.runtimes?.[target.runtime] : undefined;
  if (!rt) return undefined;
  const url = new URL(rt.path, `${channel}/`).href;
  if (!url.startsWith(`${channel}/`)) {
    throw new UpdateRefused(
      "manifest-malformed",
      `runtime path "${rt.path}" leads outside the channel (${url})`,
    );
  }
  return {
    key: target.runtime!,
    version: rt.version,
    url,
    sha256: rt.sha256,
    length: rt.length,
  };
}

/** A runtime ready beside a staged bundle: its path and whether it still has to be moved in. */
export interface StagedRuntime {
  path: string;
  /** true: `deno.staging`, renamed to `deno` at promotion; false: the slot's `deno` already. */
  staged: boolean;
  /** Where it came from. */
  source: "slot" | "running slot" | "download";
}

/** A slot's runtime, its staging file and its bundle (beside the launcher `outpost`). */
export function runtimePaths(slots: Slots, slot: Slot) {
  const dir = slots.dir(slot);
  return {
    deno: `${dir}/deno`,
    staging: `${dir}/deno.staging`,
    bundle: `${dir}/outpost.js`,
  };
}

async function matches(path: string, need: RuntimeNeed): Promise<boolean> {
  const size = await Deno.stat(path).then((s) => s.size, () => -1);
  return size === need.length && await sha256File(path) === need.sha256;
}

/** Options of {@linkcode stageRuntime}. */
export interface StageRuntimeOptions {
  slots: Slots;
  /** The slot being staged (inactive). */
  slot: Slot;
  /** The slot running now. */
  active: Slot;
  need: RuntimeNeed;
  /** update.maxArtifactBytes */
  maxBytes: number;
  /** Downloads `need.url` into `staging` from byte `have`, within the download limits. */
  download(staging: string, have: number): Promise<void>;
  log: Logger;
}

/**
 * Puts the runtime `need` names beside the staged bundle: the staged slot's own `deno` when it
 * already is that runtime, else a copy of the running slot's (unchanged runtime: not downloaded
 * again), else a download (resumed from a partial `deno.staging`). Each is checked by length and
 * SHA-256; a mismatching file is deleted and the update refused.
 */
export async function stageRuntime(o: StageRuntimeOptions): Promise<StagedRuntime> {
  const p = runtimePaths(o.slots, o.slot);
  const { need } = o;
  if (await matches(p.deno, need)) return { path: p.deno, staged: false, source: "slot" };
  const running = runtimePaths(o.slots, o.active).deno;
  if (await matches(running, need)) {
    await Deno.copyFile(running, p.staging);
    await Deno.chmod(p.staging, 0o600);
    if (await matches(p.staging, need)) {
      o.log.info("runtime unchanged: copied from the running slot", { runtime: need.key });
      return { path: p.staging, staged: true, source: "running slot" };
    }
    await Deno.remove(p.staging).catch(() => {});
  }
  if (need.length > o.maxBytes) {
    throw new UpdateRefused(
      "too-large",
      `runtime ${need.key} is ${need.length} bytes, over update.maxArtifactBytes ${o.maxBytes}`,
    );
  }
  let have = await Deno.stat(p.staging).then((s) => s.size, () => 0);
  if (have > need.length) {
    await Deno.remove(p.staging);
    have = 0;
  }
  const fs = await statfs(o.slots.dir(o.slot));
  const free = Number(fs.bavail) * Number(fs.bsize);
  if (free < need.length - have) {
    throw new UpdateRefused(
      "disk-full",
      `runtime ${need.key} needs ${need.length - have} more bytes in "${
        o.slots.dir(o.slot)
      }", only ${free} free`,
    );
  }
  if (have < need.length) await o.download(p.staging, have);
  const got = (await Deno.stat(p.staging)).size;
  if (got !== need.length) {
    if (got > need.length) await Deno.remove(p.staging);
    throw new UpdateRefused(
      "length-mismatch",
      `runtime "${need.url}": got ${got} bytes, manifest says ${need.length}`,
    );
  }
  const digest = await sha256File(p.staging);
  if (digest !== need.sha256) {
    await Deno.remove(p.staging);
    throw new UpdateRefused(
      "hash-mismatch",
      `runtime "${need.url}": sha256 ${digest}, manifest says ${need.sha256}; deleted`,
    );
  }
  return { path: p.staging, staged: true, source: "download" };
}

/** The command that runs a bundle on a runtime, with the bundle's own `deno run` flags. */
export function bundleCommand(runtime: string, bundle: string, flags: string[]): string[] {
  return [runtime, "run", ...flags, bundle];
}

/**
 * Moves a verified bundle (`bundleStaging`) and runtime into `slot`: `deno` (executable),
 * `outpost.js`, and `outpost` as the launcher that runs the one with the other. The slot is
 * inactive, so its files change one by one; `current` moves to it only after this.
 */
export async function promoteWithRuntime(
  slots: Slots,
  slot: Slot,
  bundleStaging: string,
  runtime: StagedRuntime,
  flags: string[],
): Promise<void> {
  const p = runtimePaths(slots, slot);
  if (runtime.staged) {
    await Deno.chmod(runtime.path, 0o755);
    await fsyncPath(runtime.path);
    await Deno.rename(runtime.path, p.deno);
  }
  await Deno.chmod(bundleStaging, 0o644);
  await fsyncPath(bundleStaging);
  await Deno.rename(bundleStaging, p.bundle);
  await writeFileAtomic(slots.binary(slot), launcherScript(flags), 0o755);
  await Deno.chmod(slots.binary(slot), 0o755);
  await fsyncPath(slots.dir(slot));
}

/** Removes a runtime and bundle left in `slot` by an earlier release (the slot now holds a
 * compiled binary or a bundle for the `deno` on PATH). */
export async function clearRuntime(slots: Slots, slot: Slot): Promise<void> {
  const p = runtimePaths(slots, slot);
  for (const f of [p.deno, p.staging, p.bundle]) await Deno.remove(f).catch(() => {});
}

/**
 * Lays out slot `a` of a fresh install root (after {@linkcode Slots.init} put `bundle` there as
 * `outpost`) with a runtime: `outpost.js`, `deno` and the launcher.
 */
export async function initWithRuntime(slots: Slots, runtime: string): Promise<void> {
  const p = runtimePaths(slots, "a");
  const flags = bundleFlags(await firstLine(slots.binary("a")));
  await Deno.copyFile(runtime, p.staging);
  await Deno.rename(slots.binary("a"), `${slots.dir("a")}/outpost.init`);
  await promoteWithRuntime(slots, "a", `${slots.dir("a")}/outpost.init`, {
    path: p.staging,
    staged: true,
    source: "download",
  }, flags);
}
