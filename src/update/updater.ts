import { createHash } from "node:crypto";
import { statfs } from "node:fs/promises";
import type { Logger } from "../log.ts";
import { channelNameOf, type UpdateConfig } from "./config.ts";
import { UpdateRefused } from "./errors.ts";
import { testHold } from "./_test_hooks.ts";
import { downloadGuard, readCapped, TooLarge } from "./limits.ts";
import { readPin } from "./pin.ts";
import { reportedVersion } from "./probe.ts";
import { bundleFlags, firstLine } from "./runtime.ts";
import {
  bundleCommand,
  clearRuntime,
  promoteWithRuntime,
  type RuntimeNeed,
  runtimeNeed,
  stageRuntime,
} from "./runtime_stage.ts";
import { importTrustedKeys, type TrustedKey } from "./keys.ts";
import {
  parseRoot,
  parseTimestamp,
  roleRotated,
  type Signed,
  type SignedRoot,
  type SignedTimestamp,
  verifyNextRoot,
  verifyRole,
} from "./roles.ts";
import {
  compareVersions,
  inRollout,
  type Manifest,
  signedDigest,
  verifyManifest,
} from "./manifest.ts";
import {
  otherSlot,
  type Slot,
  Slots,
  type UpdateOutcome,
  type UpdateState,
  writeFileAtomic,
} from "./slots.ts";

/** Options of {@linkcode Updater}. */
export interface UpdaterOptions {
  config: UpdateConfig;
  gatewayId: string;
  log: Logger;
  /** The build target to install; defaults to config.target or `Deno.build.target`. */
  target?: string;
  /** For tests: the clock. */
  now?: () => number;
  /** The window over which a download must average `minDownloadRate`, ms (30 s). */
  rateWindowMs?: number;
  /** The whole metadata fetch must end within this, ms (30 s). */
  metadataTimeoutMs?: number;
}

/** Progress of a download, for /status. */
export interface DownloadProgress {
  version: string;
  done: number;
  total: number;
}

/** A verified manifest naming a newer version for this device's target. */
export interface Available {
  manifest: Manifest;
  version: string;
  target: string;
  url: string;
  sha256: string;
  length: number;
  /** A bundle's Deno runtime, from the signed `runtimes`; absent for a compiled binary. */
  runtime?: RuntimeNeed;
}

/** What {@linkcode Updater.check} found. */
export type CheckResult = { kind: "available"; available: Available } | {
  kind: "none";
  outcome: UpdateOutcome;
};

/** A check at `at` that leaves `version` out, saying why. */
function skipped(at: number, o: { version: string; reason: string }): CheckResult {
  return { kind: "none", outcome: { at, result: "skipped", ...o } };
}

/**
 * Fetches and judges the channel's manifest and downloads an accepted artifact into the inactive
 * slot. Every refusal is an {@linkcode UpdateRefused}; nothing outside the staging file changes
 * on disk except the replay counter and trusted time of a manifest that verified.
 */
export class Updater {
  readonly slots: Slots;
  readonly #config: UpdateConfig;
  readonly #log: Logger;
  readonly #gatewayId: string;
  readonly #target: string;
  readonly #now: () => number;
  readonly #rateWindowMs: number;
  readonly #metadataTimeoutMs: number;

  constructor(opts: UpdaterOptions) {
    this.#config = opts.config;
    this.#log = opts.log;
    this.#gatewayId = opts.gatewayId;
    this.#target = opts.target ?? opts.config.target ?? Deno.build.target;
    this.#now = opts.now ?? Date.now;
    this.#rateWindowMs = opts.rateWindowMs ?? 30_000;
    this.#metadataTimeoutMs = opts.metadataTimeoutMs ?? 30_000;
    this.slots = new Slots(opts.config.installRoot);
  }

  /** The manifest target this device installs. */
  get target(): string {
    return this.#target;
  }

  get #channel(): string {
    return this.#config.channel.replace(/\/+$/, "");
  }

  #checkScheme(url: string): void {
    if (url.startsWith("http://") && !this.#config.allowInsecure) {
      throw new UpdateRefused(
        "insecure-url",
        `refusing plain http "${url}": set update.allowInsecure only for test servers`,
      );
    }
  }

  /**
   * Fetches and verifies the manifest; returns an available update or why there is none. Records
   * the manifest's counter and time in state.json (replay protection) unless `remember` is false.
   */
  async check(opts: { signal?: AbortSignal; remember?: boolean } = {}): Promise<CheckResult> {
    const arch = this.#target.split("-")[0];
    if (arch !== Deno.build.arch) {
      throw new UpdateRefused(
        "incompatible",
        `update.target "${this.#target}" is for ${arch}; this device runs ${Deno.build.arch}`,
      );
    }
    return await this.#judge(await this.#verified(opts));
  }

  /**
   * Fetches the channel's metadata and verifies it as {@linkcode check} does (root chain,
   * timestamp, signatures, channel, replay floor, expiry) without judging the gateway's own
   * release in it: the device artifacts it lists are read from the result. Records nothing on
   * disk when `remember` is false.
   */
  async verifiedManifest(
    opts: { signal?: AbortSignal; remember?: boolean } = {},
  ): Promise<Manifest> {
    return (await this.#verified(opts)).manifest;
  }

  async #verified(
    opts: { signal?: AbortSignal; remember?: boolean },
  ): Promise<{ manifest: Manifest; state: UpdateState; now: number }> {
    const state = await this.slots.readState();
    const url = `${this.#channel}/manifest.json`;
    this.#checkScheme(url);
    const now = this.#now();
    const channel = this.#config.channelName ?? channelNameOf(this.#config.channel);
    if (!channel) {
      throw new UpdateRefused(
        "wrong-channel",
        `no update.channelName, and "${this.#config.channel}" does not end with one`,
      );
    }
    const remember = opts.remember !== false;
    const root = await this.#trustedRoot(state, { signal: opts.signal, remember, now });
    let trustedKeys: Map<string, TrustedKey>;
    let threshold = 1;
    let body: unknown;
    let ts: Signed<SignedTimestamp> | undefined;
    if (root) {
      ts = await this.#timestamp(root, state, now, opts.signal);
      body = await this.#fetchMetadata(url, opts.signal, ts.signed.manifest);
      trustedKeys = await importTrustedKeys(root.roles.targets.keyids.map((id) => root.keys[id]));
      threshold = root.roles.targets.threshold;
    } else if (this.#config.trustedKeys.length) {
      // Without a root: the configured keys, threshold 1, no timestamp (no freeze detection).
      body = await this.#fetchMetadata(url, opts.signal);
      trustedKeys = await importTrustedKeys(this.#config.trustedKeys);
    } else {
      throw new UpdateRefused(
        "unknown-key",
        `no trusted root in "${this.#rootFile}" (install one with \`outpost update init --root root.json\`) and no update.trustedKeys`,
      );
    }
    const manifest = await verifyManifest(body, {
      trustedKeys,
      threshold,
      channel,
      lastCounter: state.lastCounter,
      lastDigest: state.lastDigest,
      trustedTime: state.trustedTime,
      now,
    });
    const s = manifest.signed;
    if (ts && s.counter !== ts.signed.manifest.counter) {
      throw new UpdateRefused(
        "manifest-mismatch",
        `manifest counter ${s.counter} is not the ${ts.signed.manifest.counter} timestamp version ${ts.signed.version} names`,
      );
    }
    if (remember) {
      await this.#remember(state, s.counter, await signedDigest(s), Date.parse(s.published), ts);
    }
    return { manifest, state, now };
  }

  async #judge(
    { manifest, state, now }: { manifest: Manifest; state: UpdateState; now: number },
  ): Promise<CheckResult> {
    const s = manifest.signed;
    const committed = state.committed.version;
    const cmp = compareVersions(s.version, committed);
    if (cmp === 0) {
      return { kind: "none", outcome: { at: now, result: "current", version: s.version } };
    }
    if (cmp < 0) {
      throw new UpdateRefused(
        "older-version",
        `manifest version ${s.version} is older than the committed ${committed}`,
      );
    }
    const pin = await readPin(this.slots);
    if (pin.pinned) {
      return skipped(now, {
        version: s.version,
        reason: `pinned at ${pin.pinned.version} by the operator since ${
          new Date(pin.pinned.at).toISOString()
        } (${pin.pinned.reason}); \`outpost update unpin\` lets updates in again`,
      });
    }
    if (state.lastRollback?.version === s.version && pin.allow !== s.version) {
      return skipped(now, {
        version: s.version,
        reason:
          `${s.version} was rolled back (${state.lastRollback.reason}); waiting for a newer release or \`outpost update unpin\``,
      });
    }
    if (!(await inRollout(this.#gatewayId, s.version, s.rollout))) {
      return skipped(now, {
        version: s.version,
        reason: `outside the ${s.rollout}% rollout of ${s.version}`,
      });
    }
    const t = s.targets[this.#target];
    if (!t) {
      throw new UpdateRefused(
        "no-target",
        `manifest ${s.version} has no artifact for target "${this.#target}" (has: ${
          Object.keys(s.targets).join(", ")
        })`,
      );
    }
    const hw = this.#config.hardwareClass ?? "generic";
    if (!t.hardware.includes(hw)) {
      throw new UpdateRefused(
        "incompatible",
        `manifest ${s.version} for ${this.#target} is for hardware ${
          t.hardware.join(", ")
        }; this device is "${hw}" (update.hardwareClass)`,
      );
    }
    const artifactUrl = new URL(t.path, `${this.#channel}/`).href;
    if (!artifactUrl.startsWith(`${this.#channel}/`)) {
      throw new UpdateRefused(
        "manifest-malformed",
        `artifact path "${t.path}" leads outside the channel (${artifactUrl})`,
      );
    }
    const runtime = runtimeNeed(s, t, this.#channel);
    return {
      kind: "available",
      available: {
        manifest,
        version: s.version,
        target: this.#target,
        url: artifactUrl,
        sha256: t.sha256,
        length: t.length,
        ...(runtime ? { runtime } : {}),
      },
    };
  }

  /**
   * Fetches one metadata file: at most `update.maxMetadataBytes`, checked while it streams in,
   * within the metadata deadline. Returns the parsed JSON.
   */
  async #fetchMetadata(
    url: string,
    signal?: AbortSignal,
    expect?: { length: number; sha256: string },
    opts: { optional?: boolean; max?: number } = {},
  ): Promise<unknown> {
    const max = Math.min(
      opts.max ?? Infinity,
      expect?.length ?? Infinity,
      this.#config.maxMetadataBytes,
    );
    let bytes: Uint8Array;
    try {
      const res = await fetch(url, {
        signal: anySignal(signal, AbortSignal.timeout(this.#metadataTimeoutMs)),
      });
      if (opts.optional && res.status === 404) {
        await res.body?.cancel();
        return undefined;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      bytes = await readCapped(res, max);
    } catch (e) {
      if (e instanceof TooLarge) {
        throw new UpdateRefused(
          "metadata-too-large",
          `"${url}" ${e.message}: more than ${max} bytes (${
            max === expect?.length ? "the length the timestamp names" : "update.maxMetadataBytes"
          }); not read further`,
        );
      }
      throw new UpdateRefused(
        "manifest-unreachable",
        `Cannot fetch "${url}": ${(e as Error).message}`,
        { cause: e },
      );
    }
    if (expect) {
      const digest = createHash("sha256").update(bytes).digest("hex");
      if (bytes.length !== expect.length || digest !== expect.sha256) {
        throw new UpdateRefused(
          "manifest-mismatch",
          `"${url}" (${bytes.length} bytes, sha256 ${digest}) is not the manifest the timestamp names (${expect.length} bytes, sha256 ${expect.sha256})`,
        );
      }
    }
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw new UpdateRefused("manifest-malformed", `"${url}" is not JSON`, { cause: e });
    }
  }

  get #rootFile(): string {
    return `${this.slots.root}/root.json`;
  }

  /**
   * The device's trusted root brought up to date: follows `root/<version+1>.json` on the channel
   * while it exists, each verified by the previous root and by itself. A rotated targets or
   * timestamp role resets that role's replay floor (recovery from a fast-forward attack). Saves
   * the newest root (and the reset floors) unless `remember` is false. Undefined when the device
   * has no root (legacy `trustedKeys`).
   */
  async #trustedRoot(
    state: UpdateState,
    o: { signal?: AbortSignal; remember: boolean; now: number },
  ): Promise<SignedRoot | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#rootFile);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    const pinned = await parseRoot(JSON.parse(text), `trusted root "${this.#rootFile}"`);
    await verifyRole(pinned, pinned.signed, "root", `trusted root "${this.#rootFile}"`);
    let root = pinned.signed;
    let changed: Signed<SignedRoot> | undefined;
    for (let i = 0; i < 64; i++) {
      const url = `${this.#channel}/root/${root.version + 1}.json`;
      const next = await this.#fetchMetadata(url, o.signal, undefined, { optional: true });
      if (next === undefined) break;
      changed = await verifyNextRoot(root, next);
      if (roleRotated(root, changed.signed, "targets")) {
        delete state.lastCounter;
        delete state.lastDigest;
      }
      if (roleRotated(root, changed.signed, "timestamp")) delete state.lastTimestamp;
      root = changed.signed;
    }
    if (o.now > Date.parse(root.expires)) {
      throw new UpdateRefused(
        "expired",
        `root version ${root.version} expired at ${root.expires}; the channel needs root/${
          root.version + 1
        }.json`,
      );
    }
    if (changed && o.remember) {
      await writeFileAtomic(this.#rootFile, JSON.stringify(changed, null, 2) + "\n");
      const fresh = await this.slots.readState();
      fresh.lastCounter = state.lastCounter;
      fresh.lastDigest = state.lastDigest;
      fresh.lastTimestamp = state.lastTimestamp;
      await this.slots.writeState(fresh);
      this.#log.warn("trusted root rotated", { from: pinned.signed.version, to: root.version });
    }
    return root;
  }

  /** Fetches and verifies timestamp.json: the timestamp role's threshold, no replay, not
   * expired (a frozen channel is refused and reported stale). */
  async #timestamp(
    root: SignedRoot,
    state: UpdateState,
    now: number,
    signal?: AbortSignal,
  ): Promise<Signed<SignedTimestamp>> {
    const url = `${this.#channel}/timestamp.json`;
    const ts = parseTimestamp(
      await this.#fetchMetadata(url, signal, undefined, { max: 16 * 1024 }),
    );
    await verifyRole(ts, root, "timestamp", `timestamp version ${ts.signed.version}`);
    const last = state.lastTimestamp?.version;
    if (last !== undefined && ts.signed.version < last) {
      throw new UpdateRefused(
        "counter-replayed",
        `timestamp version ${ts.signed.version} is lower than the last seen ${last} (replayed or rolled-back channel)`,
      );
    }
    if (now > Date.parse(ts.signed.expires)) {
      throw new UpdateRefused(
        "expired",
        `timestamp version ${ts.signed.version} expired at ${ts.signed.expires}: release metadata stale since then (a frozen channel, or its timestamp not re-signed)`,
      );
    }
    return ts;
  }

  async #remember(
    state: UpdateState,
    counter: number,
    digest: string,
    published: number,
    ts?: Signed<SignedTimestamp>,
  ): Promise<void> {
    if (
      counter <= (state.lastCounter ?? -1) && published <= (state.trustedTime ?? 0) &&
      (counter < (state.lastCounter ?? -1) || state.lastDigest === digest) &&
      (!ts || ts.signed.version <= (state.lastTimestamp?.version ?? 0))
    ) return;
    // Re-read so a concurrent writer (the trial supervisor) is not overwritten with stale fields.
    const fresh = await this.slots.readState();
    if (ts && ts.signed.version >= (fresh.lastTimestamp?.version ?? 0)) {
      fresh.lastTimestamp = {
        version: ts.signed.version,
        expires: Date.parse(ts.signed.expires),
      };
    }
    state.lastTimestamp = fresh.lastTimestamp;
    if (counter >= (fresh.lastCounter ?? 0)) fresh.lastDigest = digest;
    fresh.lastCounter = Math.max(fresh.lastCounter ?? 0, counter);
    fresh.trustedTime = Math.max(fresh.trustedTime ?? 0, published);
    await this.slots.writeState(fresh);
    state.lastCounter = fresh.lastCounter;
    state.lastDigest = fresh.lastDigest;
    state.trustedTime = fresh.trustedTime;
  }

  /**
   * Downloads `a` into the inactive slot's staging file (resuming a partial one), checks length
   * and SHA-256, and only then makes it executable and renames it into place.
   */
  async stage(
    a: Available,
    opts: { signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void } = {},
  ): Promise<Slot> {
    this.#checkScheme(a.url);
    const active = await this.slots.active();
    const slot = otherSlot(active);
    const staging = this.slots.staging(slot);
    if (a.length > this.#config.maxArtifactBytes) {
      throw new UpdateRefused(
        "too-large",
        `artifact ${a.version} is ${a.length} bytes, over update.maxArtifactBytes ${this.#config.maxArtifactBytes}`,
      );
    }
    await Deno.mkdir(this.slots.dir(slot), { recursive: true });
    await this.#fetchVerified(a, staging, this.slots.dir(slot), { ...opts, hold: true });
    if (a.runtime) {
      await this.#stageWithRuntime(a, a.runtime, active, slot, opts);
    } else {
      await this.#checkReportsVersion(staging, a, opts.signal);
      await this.slots.promoteStaging(slot);
      await clearRuntime(this.slots, slot);
    }
    this.#log.info("staged verified artifact", { version: a.version, slot, bytes: a.length });
    return slot;
  }

  /**
   * A bundle with the runtime the manifest names: the runtime staged beside it (hash-checked;
   * downloaded only when neither slot has it), the bundle run on it must report the manifest's
   * version, then both move into the slot with a launcher.
   */
  async #stageWithRuntime(
    a: Available,
    need: RuntimeNeed,
    active: Slot,
    slot: Slot,
    opts: { signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void },
  ): Promise<void> {
    const staging = this.slots.staging(slot);
    let flags: string[];
    try {
      flags = bundleFlags(await firstLine(staging));
    } catch (e) {
      await Deno.remove(staging);
      throw new UpdateRefused(
        "version-mismatch",
        `artifact ${a.version} names runtime ${need.key} but is not a bundle: ${
          (e as Error).message
        }; deleted`,
      );
    }
    const rt = await stageRuntime({
      slots: this.slots,
      slot,
      active,
      need,
      maxBytes: this.#config.maxArtifactBytes,
      download: (to, have) =>
        this.#download({ ...a, url: need.url, length: need.length }, to, have, opts),
      log: this.#log,
    });
    // A downloaded or copied runtime is not executable until it is checked to run the bundle.
    if (rt.staged) await Deno.chmod(rt.path, 0o700);
    await this.#checkReportsVersion(
      staging,
      a,
      opts.signal,
      bundleCommand(rt.path, staging, flags),
    );
    await promoteWithRuntime(this.slots, slot, staging, rt, flags);
    this.#log.info("staged runtime beside the bundle", {
      runtime: need.key,
      from: rt.source,
      sha256: need.sha256,
    });
  }

  /**
   * Runs the verified artifact with `version --json` (as the trial will run it: same user, same
   * environment) and refuses it unless it reports exactly the manifest's version: a signed
   * artifact of another release cannot be committed under this one's name.
   */
  async #checkReportsVersion(
    staging: string,
    a: Available,
    signal?: AbortSignal,
    command: string[] = [staging],
  ): Promise<void> {
    await Deno.chmod(staging, 0o700);
    let reported: string;
    try {
      reported = await reportedVersion(command, signal);
    } catch (e) {
      await Deno.chmod(staging, 0o600);
      throw new UpdateRefused(
        "version-mismatch",
        `artifact ${a.version} does not run as an Outpost build (\`version --json\`): ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    if (reported !== a.version) {
      await Deno.remove(staging);
      throw new UpdateRefused(
        "version-mismatch",
        `artifact "${a.url}" reports version ${reported}, the manifest says ${a.version}; deleted`,
      );
    }
  }

  /**
   * Downloads `a` to `dest` (resuming a partial file there) within the same limits as
   * {@linkcode stage} — the artifact size cap, free disk, minimum rate and deadline, no byte past
   * the manifest's length — then checks length and SHA-256 and removes a file that does not
   * match. For artifacts the gateway keeps for others (device firmware); nothing is run.
   */
  async fetchArtifact(
    a: Pick<Available, "version" | "url" | "sha256" | "length">,
    dest: string,
    opts: { signal?: AbortSignal; maxBytes?: number } = {},
  ): Promise<void> {
    this.#checkScheme(a.url);
    const max = opts.maxBytes ?? this.#config.maxArtifactBytes;
    if (a.length > max) {
      throw new UpdateRefused(
        "too-large",
        `artifact ${a.version} is ${a.length} bytes, over the limit of ${max}`,
      );
    }
    const dir = dest.slice(0, dest.lastIndexOf("/")) || ".";
    // #download reads only these four fields.
    await this.#fetchVerified(a as Available, dest, dir, { signal: opts.signal });
  }

  /**
   * Downloads `a` into `file` (resuming a partial one; `dir` is the folder whose free space
   * counts), then checks length and SHA-256. A short file is kept for resume; a long or wrong one
   * is removed. `hold` marks the updater's own staging, where the power-loss tests stop.
   */
  async #fetchVerified(
    a: Available,
    file: string,
    dir: string,
    opts: {
      signal?: AbortSignal;
      onProgress?: (p: DownloadProgress) => void;
      hold?: boolean;
    },
  ): Promise<void> {
    let have = await Deno.stat(file).then((s) => s.size, () => 0);
    if (have > a.length) {
      await Deno.remove(file);
      have = 0;
    }
    const fs = await statfs(dir);
    const free = Number(fs.bavail) * Number(fs.bsize);
    if (free < a.length - have) {
      throw new UpdateRefused(
        "disk-full",
        `artifact ${a.version} needs ${a.length - have} more bytes in "${dir}", only ${free} free`,
      );
    }
    const { signal, onProgress } = opts;
    if (have < a.length) await this.#download(a, file, have, { signal, onProgress });
    const got = (await Deno.stat(file)).size;
    if (opts.hold) await testHold("verify");
    if (got !== a.length) {
      if (got > a.length) await Deno.remove(file);
      throw new UpdateRefused(
        "length-mismatch",
        `artifact "${a.url}": got ${got} bytes, manifest says ${a.length}`,
      );
    }
    const digest = await sha256File(file);
    if (digest !== a.sha256) {
      await Deno.remove(file);
      throw new UpdateRefused(
        "hash-mismatch",
        `artifact "${a.url}": sha256 ${digest}, manifest says ${a.sha256}; deleted`,
      );
    }
  }

  async #download(
    a: Available,
    staging: string,
    have: number,
    opts: { signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void },
  ) {
    const headers: HeadersInit = have > 0 ? { range: `bytes=${have}-` } : {};
    // A server that drips or never ends must not hold the updater (and every later check).
    const guard = downloadGuard({
      minRate: this.#config.minDownloadRate,
      windowMs: this.#rateWindowMs,
      deadlineMs: this.#config.downloadTimeout,
    });
    const progress = (done: number) =>
      opts.onProgress?.({ version: a.version, done, total: a.length });
    progress(have);
    try {
      await this.#receive(
        a,
        staging,
        have,
        headers,
        anySignal(opts.signal, guard.signal),
        (n, done) => {
          guard.got(n);
          progress(done);
        },
      );
    } finally {
      guard.stop();
    }
  }

  async #receive(
    a: Available,
    staging: string,
    have: number,
    headers: HeadersInit,
    signal: AbortSignal,
    got: (bytes: number, done: number) => void,
  ) {
    let res: Response;
    try {
      res = await fetch(a.url, { headers, signal });
    } catch (e) {
      throw new UpdateRefused(
        "download-failed",
        `Cannot download "${a.url}": ${(e as Error).message}`,
        { cause: e },
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new UpdateRefused("download-failed", `Cannot download "${a.url}": HTTP ${res.status}`);
    }
    const resumed = have > 0 && res.status === 206;
    if (have > 0) {
      this.#log.info(resumed ? "resuming download" : "server ignored Range; downloading again", {
        version: a.version,
        from: have,
      });
    }
    const f = await Deno.open(staging, {
      write: true,
      create: true,
      append: resumed,
      truncate: !resumed,
      mode: 0o600,
    });
    let written = resumed ? have : 0;
    try {
      for await (const chunk of res.body!) {
        // More bytes than the manifest names cannot be the artifact; stop writing at once.
        if (written + chunk.length > a.length) {
          throw new UpdateRefused(
            "length-mismatch",
            `artifact "${a.url}": server sent more than the ${a.length} bytes the manifest names`,
          );
        }
        let off = 0;
        while (off < chunk.length) off += await f.write(chunk.subarray(off));
        written += chunk.length;
        got(chunk.length, written);
      }
      await f.sync();
    } catch (e) {
      const full = (e as { code?: string }).code === "ENOSPC";
      if (!full) await f.sync().catch(() => {});
      if (e instanceof UpdateRefused || full) {
        f.close();
        // A partial file on a full disk would starve the buffer; give the space back.
        await Deno.remove(staging).catch(() => {});
        if (full) {
          throw new UpdateRefused(
            "disk-full",
            `disk full while downloading ${a.version} into "${staging}" after ${written} of ${a.length} bytes; the partial file was removed`,
            { cause: e },
          );
        }
        throw e;
      }
      throw new UpdateRefused(
        "download-failed",
        `download of "${a.url}" broke off after ${written} of ${a.length} bytes (kept for resume): ${
          signal.aborted && signal.reason instanceof Error
            ? signal.reason.message
            : (e as Error).message
        }`,
        { cause: e },
      );
    } finally {
      try {
        f.close();
      } catch { /* closed above */ }
    }
  }
}

/** SHA-256 of a file in hex, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  // The readable stream closes the file when it ends or fails.
  const f = await Deno.open(path, { read: true });
  for await (const chunk of f.readable) h.update(chunk);
  return h.digest("hex");
}

function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
}
