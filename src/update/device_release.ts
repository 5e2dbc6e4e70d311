/**
 * `outpost release publish-device`: lists a device artifact (firmware image, model file) in the
 * channel's signed manifest, next to the gateway's own release, with the same keys, counter,
 * root chain and timestamp as `release publish`.
 *
 * @module
 */
import { basename } from "node:path";
import { DEVICE_ARTIFACT_RE, DEVICE_ID_RE, parseDeviceTargets } from "./device_targets.ts";
import { ReleaseError } from "./errors.ts";
import { compareVersions, type Manifest, parseVersion, signManifest } from "./manifest.ts";
import { chainTargetsKeys, readPrevious, releaseSigners, writeChannel } from "./release.ts";
import { sha256File } from "./updater.ts";

/** Options of {@linkcode publishDevice}. */
export interface PublishDeviceOptions {
  /** The channel directory; it must already hold a gateway release (manifest.json). */
  channel: string;
  /** The file to publish. */
  artifact: string;
  /** Artifact name, e.g. `esp32-boiler-v3`. */
  name: string;
  /** Semantic version the device reports once it runs the artifact. */
  version: string;
  /** Device classes it is for (at least one). */
  classes: string[];
  /** Device ids it is for; every device of the classes when empty. */
  devices?: string[];
  keys: string[];
  rootDir?: string;
  timestampKeys?: string[];
  /** Manifest validity, ms (30 days when absent). */
  expiresInMs?: number;
  timestampExpiresInMs?: number;
  /** Publish a version not newer than the listed one (to withdraw a bad release). */
  allowDowngrade?: boolean;
  now?: number;
}

function fail(msg: string): never {
  throw new ReleaseError(msg);
}

/**
 * Copies the artifact to `<channel>/devices/<name>/<version>/<file>` and writes the next signed
 * manifest: the current one with `devices.<name>` set, counter + 1. Other artifacts and the
 * gateway's release stay as they are.
 */
export async function publishDevice(o: PublishDeviceOptions): Promise<Manifest> {
  if (!DEVICE_ARTIFACT_RE.test(o.name)) {
    fail(
      `--name: expected an artifact name such as esp32-boiler-v3, got ${JSON.stringify(o.name)}`,
    );
  }
  if (!parseVersion(o.version)) {
    fail(`--version: expected a semantic version, got ${JSON.stringify(o.version)}`);
  }
  if (!o.classes.length) fail("publish-device needs at least one --class");
  for (const c of o.classes) {
    if (!DEVICE_ID_RE.test(c)) {
      fail(`--class: expected a device class name, got ${JSON.stringify(c)}`);
    }
  }
  for (const d of o.devices ?? []) {
    if (!DEVICE_ID_RE.test(d)) fail(`--device: expected a device id, got ${JSON.stringify(d)}`);
  }
  let size: number;
  try {
    const st = await Deno.stat(o.artifact);
    if (!st.isFile) fail(`--artifact "${o.artifact}" is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof ReleaseError) throw e;
    throw new ReleaseError(`Cannot read artifact "${o.artifact}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (size === 0) fail(`--artifact "${o.artifact}" is empty`);
  const channel = o.channel.replace(/\/+$/, "");
  const { root, keys } = await releaseSigners(o);
  const prev = await readPrevious(
    channel,
    root ? await chainTargetsKeys(o.rootDir!, root) : keys.map((k) => k.publicKey),
  );
  if (!prev) {
    fail(`"${channel}" has no manifest.json: publish a gateway release there first`);
  }
  const listed = parseDeviceTargets(prev.signed.devices);
  const before = listed[o.name];
  if (before && !o.allowDowngrade && compareVersions(o.version, before.version) <= 0) {
    fail(
      `--version ${o.version} is not newer than the listed ${o.name} ${before.version} ` +
        `(--allow-downgrade publishes it anyway)`,
    );
  }
  const file = basename(o.artifact).replace(/[^A-Za-z0-9._+-]/g, "_").replace(/^[._]+/, "") ||
    `${o.name}.bin`;
  const rel = `devices/${o.name}/${o.version}/${file}`;
  await Deno.mkdir(`${channel}/devices/${o.name}/${o.version}`, { recursive: true });
  await Deno.copyFile(o.artifact, `${channel}/${rel}`);
  const now = o.now ?? Date.now();
  const manifest = await signManifest({
    ...prev.signed,
    counter: prev.signed.counter + 1,
    published: new Date(now).toISOString(),
    expires: new Date(now + (o.expiresInMs ?? 30 * 86_400_000)).toISOString(),
    devices: {
      ...listed,
      [o.name]: {
        version: o.version,
        path: rel,
        sha256: await sha256File(`${channel}/${rel}`),
        length: size,
        classes: [...new Set(o.classes)],
        ...(o.devices?.length ? { devices: [...new Set(o.devices)] } : {}),
      },
    },
  }, keys);
  await writeChannel(channel, manifest, { ...o, root });
  return manifest;
}
