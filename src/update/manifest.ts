import { canonicalJson } from "./canonical.ts";
import type { DeviceTarget } from "./device_targets.ts";
import { UpdateRefused } from "./errors.ts";
import { fromBase64, sign, type SigningKey, type TrustedKey } from "./keys.ts";
import { type RuntimeEntry, runtimesProblem } from "./runtime.ts";

/** One target's artifact: where it is (relative to the manifest), its SHA-256 and length, and the
 * hardware classes it runs on. */
export interface TargetEntry {
  path: string;
  sha256: string;
  length: number;
  /** Hardware classes (`update.hardwareClass` of a device) this artifact is for. */
  hardware: string[];
  /** A bundle's runtime: the key of its entry in {@linkcode SignedManifest.runtimes}. */
  runtime?: string;
}

/** A channel, target or hardware-class name: lower-case letters, digits, `.`, `_`, `-`. */
export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** A build target such as x86_64-unknown-linux-gnu. */
export const TARGET_RE = /^[a-z0-9_]+(?:-[a-z0-9_]+){2,3}$/;
/** One segment of an artifact path: no `.`/`..`, no `%`, `:`, `\`, `?` or `#`. */
const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

/** Whether `path` is a plain relative path inside the channel (no URL, no traversal). */
export function isChannelPath(path: unknown): path is string {
  return typeof path === "string" && path.length <= 512 &&
    path.split("/").every((seg) => SEGMENT_RE.test(seg) && seg !== "." && seg !== "..");
}

/** The signed part of a release manifest. */
export interface SignedManifest {
  _type: "outpost-release";
  channel: string;
  version: string;
  /** Grows with every manifest published on the channel; a lower one is a replay. */
  counter: number;
  /** ISO 8601; when the publisher wrote it (the device's floor for a trusted time). */
  published: string;
  /** ISO 8601; the device refuses the manifest after this. */
  expires: string;
  /** Percentage of devices (by gateway id) that take this release; 100 when absent. */
  rollout?: number;
  targets: Record<string, TargetEntry>;
  /** The Deno runtimes bundle targets name, by `deno-<version>-<target>`. */
  runtimes?: Record<string, RuntimeEntry>;
  /** Artifacts for field devices (device_targets.ts); checked where they are used. */
  devices?: Record<string, DeviceTarget>;
}

/** One signature over the canonical JSON of `signed`. */
export interface ManifestSignature {
  keyid: string;
  /** Ed25519, base64. */
  sig: string;
}

/** A release manifest as served on a channel (`manifest.json`). */
export interface Manifest {
  signed: SignedManifest;
  signatures: ManifestSignature[];
}

/** Parses a semantic version into comparable parts; undefined when malformed. */
export function parseVersion(v: string): [number, number, number, string] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), m[4] ?? ""] : undefined;
}

/** Compares two semantic versions: negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new TypeError(`not a semantic version: "${!pa ? a : b}"`);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] as number) - (pb[i] as number);
  // A pre-release sorts before its release (1.2.0-rc.1 < 1.2.0).
  if (pa[3] === pb[3]) return 0;
  if (!pa[3]) return 1;
  if (!pb[3]) return -1;
  return pa[3] < pb[3] ? -1 : 1;
}

/** Signs `signed` with every key (overlapping keys during a rotation). */
export async function signManifest(
  signed: SignedManifest,
  keys: readonly SigningKey[],
): Promise<Manifest> {
  const bytes = new TextEncoder().encode(canonicalJson(signed));
  const signatures: ManifestSignature[] = [];
  for (const key of keys) signatures.push({ keyid: key.keyid, sig: await sign(key, bytes) });
  return { signed, signatures };
}

function fail(code: ConstructorParameters<typeof UpdateRefused>[0], msg: string): never {
  throw new UpdateRefused(code, msg);
}

/** Checks the shape of a parsed manifest; throws `manifest-malformed` naming the bad field. */
export function parseManifest(value: unknown): Manifest {
  const m = value as Manifest;
  const bad = (what: string, got: unknown) =>
    fail("manifest-malformed", `manifest: ${what}, got ${JSON.stringify(got)?.slice(0, 60)}`);
  if (!m || typeof m !== "object" || !m.signed || typeof m.signed !== "object") {
    bad("expected an object with `signed`", m);
  }
  if (!Array.isArray(m.signatures)) bad("signatures: expected a list", m.signatures);
  const s = m.signed;
  if (s._type !== "outpost-release") bad(`_type: expected "outpost-release"`, s._type);
  if (typeof s.channel !== "string" || !NAME_RE.test(s.channel)) {
    bad("channel: expected a channel name", s.channel);
  }
  if (typeof s.version !== "string" || !parseVersion(s.version)) {
    bad("version: expected a semantic version", s.version);
  }
  if (!Number.isSafeInteger(s.counter) || s.counter < 0) {
    bad("counter: expected a non-negative integer", s.counter);
  }
  for (const k of ["published", "expires"] as const) {
    if (typeof s[k] !== "string" || Number.isNaN(Date.parse(s[k]))) {
      bad(`${k}: expected an ISO 8601 time`, s[k]);
    }
  }
  if (s.rollout !== undefined && !(s.rollout >= 0 && s.rollout <= 100)) {
    bad("rollout: expected a percentage 0–100", s.rollout);
  }
  if (!s.targets || typeof s.targets !== "object") bad("targets: expected a mapping", s.targets);
  for (const [t, e] of Object.entries(s.targets)) {
    if (!TARGET_RE.test(t)) bad(`targets: expected build targets as keys`, t);
    if (
      !isChannelPath(e?.path) || !/^[0-9a-f]{64}$/.test(e?.sha256) ||
      !Number.isSafeInteger(e?.length) || e.length <= 0
    ) bad(`targets.${t}: expected { path (relative, inside the channel), sha256, length > 0 }`, e);
    if (
      !Array.isArray(e.hardware) || e.hardware.length === 0 ||
      !e.hardware.every((h) => typeof h === "string" && NAME_RE.test(h))
    ) bad(`targets.${t}.hardware: expected a list of hardware classes`, e.hardware);
  }
  const rt = runtimesProblem(s);
  if (rt) bad(...rt);
  return m;
}

/** What the device knows when it judges a manifest. */
export interface VerifyContext {
  trustedKeys: Map<string, TrustedKey>;
  /** Valid signatures by trusted keys needed; 1 for now. */
  threshold?: number;
  /** The channel the device follows; a manifest for another one is refused. */
  channel?: string;
  /** The highest counter this device accepted before. */
  lastCounter?: number;
  /** Digest of the signed part that carried `lastCounter` ({@linkcode signedDigest}): the same
   * counter with other content is refused. */
  lastDigest?: string;
  /** The latest time this device trusts as past (from earlier manifests), ms since epoch. */
  trustedTime?: number;
  now?: number;
}

/**
 * Verifies signatures (threshold over trusted keys, unknown keys ignored unless none is known),
 * channel, counter and expiry. Throws {@linkcode UpdateRefused} with the failing check's code.
 * A clock behind the trusted time gives `clock-behind`: defer, do not treat as an attack.
 */
export async function verifyManifest(value: unknown, ctx: VerifyContext): Promise<Manifest> {
  const m = parseManifest(value);
  const s = m.signed;
  const bytes = new TextEncoder().encode(canonicalJson(s)) as Uint8Array<ArrayBuffer>;
  const threshold = ctx.threshold ?? 1;
  const good = new Set<string>();
  const known = m.signatures.filter((x) => ctx.trustedKeys.has(x?.keyid));
  if (known.length === 0) {
    fail(
      "unknown-key",
      `manifest ${s.version} (counter ${s.counter}) is signed only by unknown key(s) ${
        m.signatures.map((x) => `"${x?.keyid}"`).join(", ") || "(no signatures)"
      }; trusted: ${[...ctx.trustedKeys.keys()].join(", ")}`,
    );
  }
  for (const x of known) {
    const key = ctx.trustedKeys.get(x.keyid)!;
    let ok = false;
    try {
      ok = await crypto.subtle.verify(
        "Ed25519",
        key.key,
        fromBase64(x.sig, "signature") as Uint8Array<ArrayBuffer>,
        bytes,
      );
    } catch {
      ok = false;
    }
    if (ok) good.add(x.keyid);
  }
  if (good.size < threshold) {
    fail(
      "bad-signature",
      `manifest ${s.version} (counter ${s.counter}): ${good.size} valid signature(s) by trusted keys, ${threshold} needed; signed by ${
        known.map((x) => `"${x.keyid}"`).join(", ")
      } (a signature that does not verify counts for nothing)`,
    );
  }
  if (ctx.channel !== undefined && s.channel !== ctx.channel) {
    fail(
      "wrong-channel",
      `manifest is for channel "${s.channel}", device follows "${ctx.channel}"`,
    );
  }
  if (ctx.lastCounter !== undefined && s.counter < ctx.lastCounter) {
    fail(
      "counter-replayed",
      `manifest counter ${s.counter} is lower than the last seen ${ctx.lastCounter} (replayed or rolled-back channel)`,
    );
  }
  if (
    ctx.lastDigest !== undefined && s.counter === ctx.lastCounter &&
    await signedDigest(s) !== ctx.lastDigest
  ) {
    fail(
      "counter-replayed",
      `manifest counter ${s.counter} was seen before with other content; a new manifest needs a higher counter`,
    );
  }
  const now = ctx.now ?? Date.now();
  if (ctx.trustedTime !== undefined && now < ctx.trustedTime) {
    fail(
      "clock-behind",
      `clock ${new Date(now).toISOString()} is before the last trusted time ${
        new Date(ctx.trustedTime).toISOString()
      }; deferring until the clock is set`,
    );
  }
  if (now > Date.parse(s.expires)) {
    fail("expired", `manifest ${s.version} (counter ${s.counter}) expired at ${s.expires}`);
  }
  return m;
}

/** SHA-256 (hex) of the canonical JSON of a signed part. */
export async function signedDigest(signed: unknown): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalJson(signed)));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a device falls inside a rollout percentage: a stable hash of id and version. */
export async function inRollout(
  gatewayId: string,
  version: string,
  percent = 100,
): Promise<boolean> {
  if (percent >= 100) return true;
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${gatewayId}\n${version}`)),
  );
  return ((d[0] << 8 | d[1]) % 100) < percent;
}
