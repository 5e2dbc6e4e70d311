/**
 * TUF's roles sized to one product. `root` (pinned on the device at install) names the keys and
 * the threshold of each role and rotates by a chain of versions, each signed by the previous
 * root's threshold and its own; `targets` is the release manifest (manifest.ts), signed by k of
 * the n targets keys; `timestamp` is short-lived and signed by an online key: it names the
 * current manifest's counter, length and SHA-256, so a channel that stops moving (a freeze) is
 * noticed within its expiry, and a manifest that does not belong to it (mix-and-match) is
 * refused.
 *
 * @module
 */
import { canonicalJson } from "./canonical.ts";
import { UpdateRefused } from "./errors.ts";
import {
  fromBase64,
  importTrustedKeys,
  keyIdOf,
  type PublicKeyText,
  sign,
  type SigningKey,
} from "./keys.ts";
import type { ManifestSignature } from "./manifest.ts";

/** The roles a root delegates to. */
export const ROLES = ["root", "targets", "timestamp"] as const;
/** One of {@linkcode ROLES}. */
export type Role = typeof ROLES[number];

/** Keys and threshold of one role. */
export interface RoleKeys {
  keyids: string[];
  threshold: number;
}

/** The signed part of a root document. */
export interface SignedRoot {
  _type: "outpost-root";
  version: number;
  /** ISO 8601. */
  expires: string;
  /** Key id → public key. */
  keys: Record<string, PublicKeyText>;
  roles: Record<Role, RoleKeys>;
}

/** The signed part of a timestamp document. */
export interface SignedTimestamp {
  _type: "outpost-timestamp";
  /** Grows with every timestamp written. */
  version: number;
  /** ISO 8601; short (a day): a device that sees no newer one by then reports the channel
   * stale. */
  expires: string;
  /** The manifest this timestamp vouches for. */
  manifest: { counter: number; length: number; sha256: string };
}

/** A signed document of any role. */
export interface Signed<T> {
  signed: T;
  signatures: ManifestSignature[];
}

/** Signs any role's signed part with every key. */
export async function signDocument<T>(
  signed: T,
  keys: readonly SigningKey[],
): Promise<Signed<T>> {
  const bytes = new TextEncoder().encode(canonicalJson(signed));
  const signatures: ManifestSignature[] = [];
  for (const key of keys) signatures.push({ keyid: key.keyid, sig: await sign(key, bytes) });
  return { signed, signatures };
}

function refuse(code: ConstructorParameters<typeof UpdateRefused>[0], msg: string): never {
  throw new UpdateRefused(code, msg);
}

function isTime(v: unknown): v is string {
  return typeof v === "string" && !Number.isNaN(Date.parse(v));
}

/** Checks the shape of a root document; throws `manifest-malformed` naming the bad field. */
export async function parseRoot(value: unknown, what = "root"): Promise<Signed<SignedRoot>> {
  const d = value as Signed<SignedRoot>;
  const bad = (field: string, got: unknown): never =>
    refuse("manifest-malformed", `${what}: ${field}, got ${JSON.stringify(got)?.slice(0, 80)}`);
  if (!d?.signed || !Array.isArray(d.signatures)) bad("expected { signed, signatures }", d);
  const s = d.signed;
  if (s._type !== "outpost-root") bad(`_type: expected "outpost-root"`, s._type);
  if (!Number.isSafeInteger(s.version) || s.version < 1) bad("version: expected ≥ 1", s.version);
  if (!isTime(s.expires)) bad("expires: expected an ISO 8601 time", s.expires);
  if (!s.keys || typeof s.keys !== "object") bad("keys: expected a mapping", s.keys);
  for (const [id, pub] of Object.entries(s.keys)) {
    let ok = false;
    try {
      ok = await keyIdOf(pub) === id;
    } catch { /* malformed key */ }
    if (!ok) bad(`keys.${id}: expected the public key whose id is ${id}`, pub);
  }
  for (const role of ROLES) {
    const r = s.roles?.[role];
    if (
      !r || !Array.isArray(r.keyids) || !r.keyids.every((k) => k in s.keys) ||
      new Set(r.keyids).size !== r.keyids.length || !Number.isSafeInteger(r.threshold) ||
      r.threshold < 1 || r.threshold > r.keyids.length
    ) bad(`roles.${role}: expected { keyids (listed in keys), 1 ≤ threshold ≤ keyids }`, r);
  }
  return d;
}

/**
 * Counts the valid signatures over `doc.signed` by distinct keys of `role` in `root`; throws
 * `unknown-key` or `bad-signature` when fewer than the role's threshold verify.
 */
export async function verifyRole(
  doc: Signed<unknown>,
  root: SignedRoot,
  role: Role,
  what: string,
): Promise<void> {
  const r = root.roles[role];
  const bytes = new TextEncoder().encode(canonicalJson(doc.signed)) as Uint8Array<ArrayBuffer>;
  const keys = await importTrustedKeys(r.keyids.map((id) => root.keys[id]));
  const good = new Set<string>();
  const known = doc.signatures.filter((x) => keys.has(x?.keyid));
  if (known.length === 0) {
    refuse(
      "unknown-key",
      `${what} carries no signature by a ${role} key of root version ${root.version} (${
        r.keyids.join(", ")
      })`,
    );
  }
  for (const x of known) {
    try {
      if (
        await crypto.subtle.verify(
          "Ed25519",
          keys.get(x.keyid)!.key,
          fromBase64(x.sig, "signature") as Uint8Array<ArrayBuffer>,
          bytes,
        )
      ) good.add(x.keyid);
    } catch { /* malformed signature: not counted */ }
  }
  if (good.size < r.threshold) {
    refuse(
      "bad-signature",
      `${what}: ${good.size} valid ${role} signature(s), root version ${root.version} needs ${r.threshold} (of ${r.keyids.length})`,
    );
  }
}

/** Whether a role's keys differ between two roots (a rotation of that role). */
export function roleRotated(a: SignedRoot, b: SignedRoot, role: Role): boolean {
  const x = [...a.roles[role].keyids].sort().join();
  const y = [...b.roles[role].keyids].sort().join();
  return x !== y;
}

/**
 * Checks that `next` may follow `trusted` in the root chain: version one higher, signed by the
 * threshold of `trusted`'s root keys and by the threshold of its own. Expiry is not checked
 * here (an expired intermediate root is fine; the newest must be current).
 */
export async function verifyNextRoot(
  trusted: SignedRoot,
  value: unknown,
): Promise<Signed<SignedRoot>> {
  const next = await parseRoot(value, `root version ${trusted.version + 1}`);
  if (next.signed.version !== trusted.version + 1) {
    refuse(
      "manifest-malformed",
      `root/${trusted.version + 1}.json holds version ${next.signed.version}`,
    );
  }
  await verifyRole(next, trusted, "root", `root version ${next.signed.version} (by the old root)`);
  await verifyRole(next, next.signed, "root", `root version ${next.signed.version} (by itself)`);
  return next;
}

/** Checks the shape of a timestamp document; throws `manifest-malformed`. */
export function parseTimestamp(value: unknown): Signed<SignedTimestamp> {
  const d = value as Signed<SignedTimestamp>;
  const bad = (field: string, got: unknown): never =>
    refuse("manifest-malformed", `timestamp: ${field}, got ${JSON.stringify(got)?.slice(0, 80)}`);
  if (!d?.signed || !Array.isArray(d.signatures)) bad("expected { signed, signatures }", d);
  const s = d.signed;
  if (s._type !== "outpost-timestamp") bad(`_type: expected "outpost-timestamp"`, s._type);
  if (!Number.isSafeInteger(s.version) || s.version < 1) bad("version: expected ≥ 1", s.version);
  if (!isTime(s.expires)) bad("expires: expected an ISO 8601 time", s.expires);
  const m = s.manifest;
  if (
    !m || !Number.isSafeInteger(m.counter) || m.counter < 0 || !Number.isSafeInteger(m.length) ||
    m.length <= 0 || !/^[0-9a-f]{64}$/.test(m.sha256)
  ) bad("manifest: expected { counter, length, sha256 }", m);
  return d;
}
