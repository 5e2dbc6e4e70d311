import { parseDuration } from "../config/schema.ts";
import { ReleaseError, UpdateRefused } from "./errors.ts";
import {
  generateKey,
  importTrustedKeys,
  type PublicKeyText,
  readSigningKey,
  type SigningKey,
} from "./keys.ts";
import {
  type Manifest,
  NAME_RE,
  parseVersion,
  signManifest,
  TARGET_RE,
  verifyManifest,
} from "./manifest.ts";
import {
  publishRootChain,
  readRoot,
  readRootFile,
  roleKeys,
  writeTimestamp,
} from "./release_roles.ts";
import {
  parseTimestamp,
  type Signed,
  type SignedRoot,
  verifyNextRoot,
  verifyRole,
} from "./roles.ts";
import { createHash } from "node:crypto";
import { writeFileAtomic } from "./slots.ts";
import { reportedVersion } from "./probe.ts";
import { checkRuntime, checkRuntimeFiles, putRuntime } from "./release_runtime.ts";
import { bundleFlags, firstLine } from "./runtime.ts";
import { sha256File } from "./updater.ts";
import { checkDeviceArtifacts } from "./device_check.ts";
import { checkFileAgainst } from "./file_check.ts";

/** Writes a new key pair into `dir`: `<keyid>.key` (0600) and `<keyid>.pub`; returns both paths. */
export async function keygen(dir: string): Promise<{ keyid: string; key: string; pub: string }> {
  await Deno.mkdir(dir, { recursive: true });
  const k = await generateKey();
  const key = `${dir}/${k.keyid}.key`;
  const pub = `${dir}/${k.keyid}.pub`;
  const f = await Deno.open(key, { write: true, createNew: true, mode: 0o600 });
  try {
    await f.write(new TextEncoder().encode(JSON.stringify(k, null, 2) + "\n"));
    await f.sync();
  } finally {
    f.close();
  }
  // The mode given to open() is filtered by the umask; make sure it is 0600.
  await Deno.chmod(key, 0o600);
  await Deno.writeTextFile(pub, k.public + "\n");
  return { keyid: k.keyid, key, pub };
}

/** Options of {@linkcode publish}. */
export interface PublishOptions {
  channel: string;
  artifact: string;
  version: string;
  target: string;
  keys: string[];
  /** Validity, ms; 30 days when absent. */
  expiresInMs?: number;
  rollout?: number;
  /** Channel name in the manifest; the directory name when absent. */
  channelName?: string;
  /** Hardware classes the artifact runs on; `["generic"]` when absent. */
  hardware?: string[];
  /** Force the counter (tests of replay); otherwise the previous manifest's plus one. */
  counter?: number;
  /** The Deno runtime a bundle runs on (the pinned version, for `target`): published beside it
   * and named by its target. */
  runtime?: string;
  /** A release directory (`release init`): its root decides which keys may sign; its targets
   * keys sign when `keys` is empty; its root chain and a timestamp are published too. */
  rootDir?: string;
  /** Timestamp keys (files); the release directory's when absent. */
  timestampKeys?: string[];
  /** Timestamp validity, ms (1 day when absent). */
  timestampExpiresInMs?: number;
  now?: number;
}

function checkName(what: string, value: string, re: RegExp, like: string): void {
  if (!re.test(value)) {
    throw new ReleaseError(`${what}: expected ${like}, got ${JSON.stringify(value)}`);
  }
}

/**
 * Copies the artifact into `<channel>/artifacts/<version>/<target>/outpost` and writes a signed
 * `<channel>/manifest.json` with the next counter. Other targets of the same version are kept.
 */
export async function publish(opts: PublishOptions): Promise<Manifest> {
  if (!parseVersion(opts.version)) {
    throw new ReleaseError(`--version: expected a semantic version, got "${opts.version}"`);
  }
  checkName("--target", opts.target, TARGET_RE, "a build target such as x86_64-unknown-linux-gnu");
  const hardware = opts.hardware?.length ? opts.hardware : ["generic"];
  for (const h of hardware) checkName("--hardware", h, NAME_RE, "hardware class names");
  if (
    opts.counter !== undefined && !(Number.isSafeInteger(opts.counter) && opts.counter >= 0)
  ) {
    throw new ReleaseError(
      `--counter: expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${opts.counter}`,
    );
  }
  const { root, keys } = await releaseSigners(opts);
  const channel = opts.channel.replace(/\/+$/, "");
  const channelName = opts.channelName ?? channel.slice(channel.lastIndexOf("/") + 1);
  checkName(
    opts.channelName ? "--channel-name" : "channel directory name (or --channel-name)",
    channelName,
    NAME_RE,
    "a channel name such as stable",
  );
  const prev = await readPrevious(
    channel,
    root ? await chainTargetsKeys(opts.rootDir!, root) : keys.map((k) => k.publicKey),
  );
  if (prev && prev.signed.channel !== channelName) {
    throw new ReleaseError(
      `${channel}/manifest.json is for channel "${prev.signed.channel}", not "${channelName}"`,
    );
  }
  const counter = opts.counter ?? (prev?.signed.counter ?? 0) + 1;
  if (!Number.isSafeInteger(counter)) {
    throw new ReleaseError(
      `the next counter after ${prev?.signed.counter} is over ${Number.MAX_SAFE_INTEGER}; devices could not read it`,
    );
  }
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(opts.artifact);
  } catch (e) {
    throw new ReleaseError(`Cannot read artifact "${opts.artifact}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (opts.runtime) {
    try {
      bundleFlags(await firstLine(opts.artifact));
    } catch (e) {
      throw new ReleaseError(
        `--runtime: artifact "${opts.artifact}" is not a bundle (${
          (e as Error).message
        }); a compiled binary carries its own runtime`,
      );
    }
    await checkRuntime(opts.runtime, opts.target);
  }
  const rel = `artifacts/${opts.version}/${opts.target}/outpost`;
  await Deno.mkdir(`${channel}/artifacts/${opts.version}/${opts.target}`, { recursive: true });
  await Deno.copyFile(opts.artifact, `${channel}/${rel}`);
  const now = opts.now ?? Date.now();
  const targets = prev?.signed.version === opts.version ? { ...prev.signed.targets } : {};
  const runtime = opts.runtime ? await putRuntime(channel, opts.target, opts.runtime) : undefined;
  targets[opts.target] = {
    path: rel,
    sha256: await sha256File(`${channel}/${rel}`),
    length: stat.size,
    hardware,
    ...(runtime ? { runtime: runtime.key } : {}),
  };
  const runtimes = prev?.signed.version === opts.version ? { ...prev.signed.runtimes } : {};
  if (runtime) runtimes[runtime.key] = runtime.entry;
  for (const k of Object.keys(runtimes)) {
    if (!Object.values(targets).some((t) => t.runtime === k)) delete runtimes[k];
  }
  const manifest = await signManifest({
    _type: "outpost-release",
    channel: channelName,
    version: opts.version,
    counter,
    published: new Date(now).toISOString(),
    expires: new Date(now + (opts.expiresInMs ?? 30 * 86_400_000)).toISOString(),
    ...(opts.rollout !== undefined && opts.rollout < 100 ? { rollout: opts.rollout } : {}),
    targets,
    ...(Object.keys(runtimes).length ? { runtimes } : {}),
    // Device artifacts stay listed across the gateway's own releases.
    ...(prev?.signed.devices ? { devices: prev.signed.devices } : {}),
  }, keys);
  await writeChannel(channel, manifest, { ...opts, root });
  return manifest;
}

/**
 * Writes `manifest` as the channel's `manifest.json` and, on a channel with a root, publishes the
 * root chain and a fresh timestamp signed by `timestampKeys` (else the root's timestamp keys).
 */
export async function writeChannel(
  channel: string,
  manifest: Manifest,
  opts: {
    root?: SignedRoot;
    rootDir?: string;
    timestampKeys?: string[];
    timestampExpiresInMs?: number;
    now?: number;
  },
): Promise<void> {
  await writeFileAtomic(`${channel}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
  const root = opts.root;
  if (root) {
    await publishRootChain(opts.rootDir!, channel);
    const tsKeys = opts.timestampKeys?.length
      ? await Promise.all(opts.timestampKeys.map(readSigningKey))
      : await roleKeys(opts.rootDir!, root, "timestamp");
    await writeTimestamp(channel, root, tsKeys, {
      expiresInMs: opts.timestampExpiresInMs,
      now: opts.now,
    });
  }
}

/**
 * The keys that sign a channel's next manifest and the release directory's root when there is
 * one: `keys` (files), else the root's targets keys; refuses keys the root does not name, fewer
 * than its threshold, and a channel published with roles but no `rootDir`.
 */
export async function releaseSigners(
  opts: { channel: string; keys: string[]; rootDir?: string },
): Promise<{ root?: SignedRoot; keys: SigningKey[] }> {
  const root = opts.rootDir ? (await readRoot(opts.rootDir)).signed : undefined;
  const channelDir = opts.channel.replace(/\/+$/, "");
  if (!root && await Deno.lstat(`${channelDir}/timestamp.json`).then(() => true, () => false)) {
    // A manifest the timestamp does not name would be refused by every device with a root.
    throw new ReleaseError(
      `"${channelDir}" is published with roles (it has timestamp.json): publish with --root-dir`,
    );
  }
  if (!opts.keys.length && !root) throw new ReleaseError("publish needs at least one --key");
  const keys = opts.keys.length
    ? await Promise.all(opts.keys.map(readSigningKey))
    : await roleKeys(opts.rootDir!, root!, "targets");
  if (root) {
    const ids = root.roles.targets.keyids;
    const stray = keys.filter((k) => !ids.includes(k.keyid)).map((k) => k.keyid);
    if (stray.length) {
      throw new ReleaseError(
        `key(s) ${stray.join(", ")} are not targets keys of root version ${root.version} (${
          ids.join(", ")
        })`,
      );
    }
    if (keys.length < root.roles.targets.threshold) {
      throw new ReleaseError(
        `${keys.length} targets key(s) given; root version ${root.version} needs ${root.roles.targets.threshold} of ${ids.length}`,
      );
    }
  }
  return { root, keys };
}

/** The targets keys of every root version so far: the current manifest may predate a rotation. */
export async function chainTargetsKeys(dir: string, root: SignedRoot): Promise<PublicKeyText[]> {
  const out = new Set<PublicKeyText>();
  for (let v = 1; v <= root.version; v++) {
    const r = v === root.version
      ? root
      : (JSON.parse(await Deno.readTextFile(`${dir}/root/${v}.json`)) as Signed<SignedRoot>).signed;
    for (const id of r.roles.targets.keyids) out.add(r.keys[id]);
  }
  return [...out];
}

/**
 * The channel's current manifest, verified before anything is taken from it: signed by one of
 * the publishing keys (expiry aside) and every artifact it names with its length and SHA-256.
 * Undefined when there is none yet.
 */
export async function readPrevious(
  channel: string,
  publicKeys: PublicKeyText[],
): Promise<Manifest | undefined> {
  const path = `${channel}/manifest.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new ReleaseError(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
  const fix = `; if the file is damaged, move it away and publish with --counter N above the ` +
    `last counter devices saw`;
  try {
    const raw = JSON.parse(text);
    const m = await verifyManifest(raw, {
      trustedKeys: await importTrustedKeys(publicKeys),
      // An expired manifest is still a sound base for the next one.
      now: Date.parse(raw?.signed?.expires),
    });
    await checkArtifacts(channel, m);
    return m;
  } catch (e) {
    throw new ReleaseError(
      `existing "${path}" does not verify, nothing taken from it: ${(e as Error).message}${fix}`,
      { cause: e },
    );
  }
}

async function checkArtifacts(dir: string, m: Manifest): Promise<string[]> {
  const lines: string[] = [];
  for (const [target, t] of Object.entries(m.signed.targets)) {
    const path = `${dir}/${t.path}`;
    await checkFileAgainst(path, t);
    lines.push(`artifact ok: ${target} ${t.path} ${t.length} bytes sha256 ${t.sha256}`);
  }
  lines.push(...await checkRuntimeFiles(dir, m));
  lines.push(...await checkDeviceArtifacts(dir, m));
  return lines;
}

const ELF_MACHINE: Record<number, string> = { 62: "x86_64", 183: "aarch64" };

/**
 * Checks that `path` is an Outpost build of `version` for `target`: a compiled executable (ELF
 * for the target's architecture) or a bundle (`#!…deno run` first line), which — when this
 * machine can run it — must answer `version --json` with exactly `version` (a bundle on
 * `runtime` when given, else on the `deno` on PATH). Returns what was
 * checked; throws a {@linkcode ReleaseError} naming what is wrong.
 */
export async function checkArtifact(
  path: string,
  opts: { version: string; target: string; runtime?: string },
): Promise<string> {
  let head: Uint8Array;
  try {
    const f = await Deno.open(path, { read: true });
    try {
      head = new Uint8Array(256);
      const n = await f.read(head) ?? 0;
      head = head.subarray(0, n);
    } finally {
      f.close();
    }
  } catch (e) {
    throw new ReleaseError(`Cannot read artifact "${path}": ${(e as Error).message}`, { cause: e });
  }
  const arch = opts.target.split("-")[0];
  const isElf = head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
  const firstLine = new TextDecoder().decode(head).split("\n")[0];
  let kind: string;
  if (isElf) {
    const machine = ELF_MACHINE[head[18] | head[19] << 8] ?? `machine ${head[18] | head[19] << 8}`;
    if (machine !== arch) {
      throw new ReleaseError(
        `artifact "${path}" is an executable for ${machine}, not for --target ${opts.target}`,
      );
    }
    kind = `${machine} executable`;
  } else if (/^#!.*\bdeno run\b/.test(firstLine)) {
    kind = "Deno bundle";
  } else {
    throw new ReleaseError(
      `artifact "${path}" is not an Outpost build (neither an executable nor a bundle starting ` +
        `with "#!/usr/bin/env -S deno run"; first bytes ${JSON.stringify(firstLine.slice(0, 40))})`,
    );
  }
  if (arch !== Deno.build.arch) {
    return `${kind}; not run (this machine is ${Deno.build.arch})`;
  }
  const tmp = await Deno.makeTempDir({ prefix: "outpost-artifact-" });
  try {
    await Deno.copyFile(path, `${tmp}/outpost`);
    await Deno.chmod(`${tmp}/outpost`, 0o700);
    let reported: string;
    try {
      reported = await reportedVersion(
        opts.runtime && !isElf
          ? [opts.runtime, "run", ...bundleFlags(firstLine), `${tmp}/outpost`]
          : `${tmp}/outpost`,
      );
    } catch (e) {
      throw new ReleaseError(
        `artifact "${path}" (${kind}) does not answer \`version --json\`: ${(e as Error).message}`,
        { cause: e },
      );
    }
    if (reported !== opts.version) {
      throw new ReleaseError(
        `artifact "${path}" reports version ${reported}, not --version ${opts.version}`,
      );
    }
    return `${kind} reporting ${reported}`;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Parses `--expires` ("30d", "12h"). */
export function parseExpires(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new ReleaseError(`--expires: expected a duration such as 30d or 12h, got "${text}"`);
  }
  return ms;
}

/** Reads public keys given as `ed25519:…` text or as files holding that text. */
export async function readPublicKeys(specs: string[]): Promise<PublicKeyText[]> {
  const out: PublicKeyText[] = [];
  for (const spec of specs) {
    if (spec.startsWith("ed25519:")) out.push(spec);
    else {
      try {
        out.push((await Deno.readTextFile(spec)).trim());
      } catch (e) {
        throw new ReleaseError(`Cannot read public key "${spec}": ${(e as Error).message}`, {
          cause: e,
        });
      }
    }
  }
  return out;
}

/**
 * Verifies a channel directory as a device would (signature, expiry) and every artifact's
 * length and SHA-256. Returns one line per checked item; throws on the first failure.
 */
export async function verifyChannel(channel: string, pubkeys: PublicKeyText[]): Promise<string[]> {
  const dir = channel.replace(/\/+$/, "");
  const m = await verifyManifest(
    JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`)),
    { trustedKeys: await importTrustedKeys(pubkeys) },
  );
  const lines = [
    `manifest ok: channel ${m.signed.channel}, version ${m.signed.version}, counter ${m.signed.counter}, expires ${m.signed.expires}, signed by ${
      m.signatures.map((s) => s.keyid).join(", ")
    }`,
  ];
  lines.push(...await checkArtifacts(dir, m));
  return lines;
}

/**
 * Verifies a channel directory as a device pinning `rootFile` would: the root chain under
 * `root/`, the timestamp (role threshold, expiry), the manifest against the timestamp (length,
 * SHA-256, counter) and the targets threshold, and every artifact's length and SHA-256. Returns
 * one line per checked item; throws on the first failure.
 */
export async function verifyChannelWithRoot(
  channel: string,
  rootFile: string,
  now = Date.now(),
): Promise<string[]> {
  const dir = channel.replace(/\/+$/, "");
  let root = await readRootFile(rootFile);
  const lines = [`root ok: version ${root.version} from ${rootFile}`];
  for (;;) {
    let text: string;
    try {
      text = await Deno.readTextFile(`${dir}/root/${root.version + 1}.json`);
    } catch {
      break;
    }
    root = (await verifyNextRoot(root, JSON.parse(text))).signed;
    lines.push(`root ok: version ${root.version} (signed by the previous root and itself)`);
  }
  if (now > Date.parse(root.expires)) {
    throw new UpdateRefused("expired", `root version ${root.version} expired at ${root.expires}`);
  }
  const ts = parseTimestamp(JSON.parse(await Deno.readTextFile(`${dir}/timestamp.json`)));
  await verifyRole(ts, root, "timestamp", `timestamp version ${ts.signed.version}`);
  if (now > Date.parse(ts.signed.expires)) {
    throw new UpdateRefused(
      "expired",
      `timestamp version ${ts.signed.version} expired at ${ts.signed.expires}: re-sign it (release timestamp)`,
    );
  }
  lines.push(`timestamp ok: version ${ts.signed.version}, expires ${ts.signed.expires}`);
  const bytes = await Deno.readFile(`${dir}/manifest.json`);
  const digest = createHash("sha256").update(bytes).digest("hex");
  if (bytes.length !== ts.signed.manifest.length || digest !== ts.signed.manifest.sha256) {
    throw new UpdateRefused(
      "manifest-mismatch",
      `${dir}/manifest.json (${bytes.length} bytes, sha256 ${digest}) is not the one the timestamp names`,
    );
  }
  const m = await verifyManifest(JSON.parse(new TextDecoder().decode(bytes)), {
    trustedKeys: await importTrustedKeys(root.roles.targets.keyids.map((id) => root.keys[id])),
    threshold: root.roles.targets.threshold,
    now,
  });
  lines.push(
    `manifest ok: channel ${m.signed.channel}, version ${m.signed.version}, counter ${m.signed.counter}, expires ${m.signed.expires}, ${m.signatures.length} signature(s), ${root.roles.targets.threshold} needed`,
  );
  lines.push(...await checkArtifacts(dir, m));
  return lines;
}
