import { parseDuration } from "../config/schema.ts";
import { ReleaseError, UpdateRefused } from "./errors.ts";
import { generateKey, importTrustedKeys, type PublicKeyText, readSigningKey } from "./keys.ts";
import { type Manifest, parseVersion, signManifest, verifyManifest } from "./manifest.ts";
import { writeFileAtomic } from "./slots.ts";
import { sha256File } from "./updater.ts";

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
  /** Force the counter (tests of replay); otherwise the previous manifest's plus one. */
  counter?: number;
  now?: number;
}

/**
 * Copies the artifact into `<channel>/artifacts/<version>/<target>/outpost` and writes a signed
 * `<channel>/manifest.json` with the next counter. Other targets of the same version are kept.
 */
export async function publish(opts: PublishOptions): Promise<Manifest> {
  if (!parseVersion(opts.version)) {
    throw new ReleaseError(`--version: expected a semantic version, got "${opts.version}"`);
  }
  if (!opts.keys.length) throw new ReleaseError("publish needs at least one --key");
  const keys = await Promise.all(opts.keys.map(readSigningKey));
  const channel = opts.channel.replace(/\/+$/, "");
  let prev: Manifest | undefined;
  try {
    prev = JSON.parse(await Deno.readTextFile(`${channel}/manifest.json`));
  } catch { /* first release on this channel */ }
  const rel = `artifacts/${opts.version}/${opts.target}/outpost`;
  await Deno.mkdir(`${channel}/artifacts/${opts.version}/${opts.target}`, { recursive: true });
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(opts.artifact);
  } catch (e) {
    throw new ReleaseError(`Cannot read artifact "${opts.artifact}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  await Deno.copyFile(opts.artifact, `${channel}/${rel}`);
  const now = opts.now ?? Date.now();
  const targets = prev?.signed.version === opts.version ? { ...prev.signed.targets } : {};
  targets[opts.target] = {
    path: rel,
    sha256: await sha256File(`${channel}/${rel}`),
    length: stat.size,
  };
  const manifest = await signManifest({
    _type: "outpost-release",
    channel: opts.channelName ?? channel.slice(channel.lastIndexOf("/") + 1),
    version: opts.version,
    counter: opts.counter ?? (prev?.signed.counter ?? 0) + 1,
    published: new Date(now).toISOString(),
    expires: new Date(now + (opts.expiresInMs ?? 30 * 86_400_000)).toISOString(),
    ...(opts.rollout !== undefined && opts.rollout < 100 ? { rollout: opts.rollout } : {}),
    targets,
  }, keys);
  await writeFileAtomic(`${channel}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
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
  for (const [target, t] of Object.entries(m.signed.targets)) {
    const path = `${dir}/${t.path}`;
    const size = (await Deno.stat(path)).size;
    if (size !== t.length) {
      throw new UpdateRefused(
        "length-mismatch",
        `${path}: ${size} bytes, manifest says ${t.length}`,
      );
    }
    const digest = await sha256File(path);
    if (digest !== t.sha256) {
      throw new UpdateRefused(
        "hash-mismatch",
        `${path}: sha256 ${digest}, manifest says ${t.sha256}`,
      );
    }
    lines.push(`artifact ok: ${target} ${t.path} ${t.length} bytes sha256 ${t.sha256}`);
  }
  return lines;
}
