/**
 * Release tooling for the roles (roles.ts): `release init` makes a root with new keys,
 * `release rotate` replaces one role's keys with a new root version signed by the old and the new
 * root keys, `release timestamp` re-signs the channel's timestamp. A release directory holds
 * `root.json` (the newest), `root/<version>.json` (the chain) and `keys/<role>/<keyid>.key|.pub`.
 *
 * @module
 */
import { ReleaseError } from "./errors.ts";
import { readSigningKey, type SigningKey } from "./keys.ts";
import type { Manifest } from "./manifest.ts";
import { keygen } from "./release.ts";
import {
  parseRoot,
  parseTimestamp,
  type Role,
  type RoleKeys,
  ROLES,
  signDocument,
  type Signed,
  type SignedRoot,
  type SignedTimestamp,
  verifyRole,
} from "./roles.ts";
import { writeFileAtomic } from "./slots.ts";
import { createHash } from "node:crypto";

/** How many keys a role gets and how many must sign. */
export interface RoleSpec {
  keys: number;
  threshold: number;
}

/** Options of {@linkcode initRelease}. */
export interface InitOptions {
  /** Per role; root 1-of-1, targets 1-of-1, timestamp 1-of-1 when absent. */
  roles?: Partial<Record<Role, RoleSpec>>;
  /** Root validity, ms (365 days when absent). */
  expiresInMs?: number;
  now?: number;
}

const DAY = 86_400_000;

async function makeKeys(dir: string, role: Role, n: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const k = await keygen(`${dir}/keys/${role}`);
    out[k.keyid] = (await Deno.readTextFile(k.pub)).trim();
  }
  return out;
}

function checkSpec(role: Role, s: RoleSpec): void {
  if (
    !Number.isSafeInteger(s.keys) || s.keys < 1 || s.keys > 16 ||
    !Number.isSafeInteger(s.threshold) || s.threshold < 1 || s.threshold > s.keys
  ) {
    throw new ReleaseError(
      `${role}: expected 1–16 keys and a threshold from 1 to the number of keys, got ${s.keys} keys, threshold ${s.threshold}`,
    );
  }
}

/** The keys of `role` in `root` whose private halves are in the release directory. */
export async function roleKeys(dir: string, root: SignedRoot, role: Role): Promise<SigningKey[]> {
  const out: SigningKey[] = [];
  for (const id of root.roles[role].keyids) {
    try {
      out.push(await readSigningKey(`${dir}/keys/${role}/${id}.key`));
    } catch (e) {
      if (!((e as Error).cause instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return out;
}

async function writeRoot(dir: string, doc: Signed<SignedRoot>): Promise<void> {
  await Deno.mkdir(`${dir}/root`, { recursive: true });
  const text = JSON.stringify(doc, null, 2) + "\n";
  await writeFileAtomic(`${dir}/root/${doc.signed.version}.json`, text);
  await writeFileAtomic(`${dir}/root.json`, text);
}

/** Reads and checks a release directory's newest root (self-signed to its threshold). */
export async function readRoot(dir: string): Promise<Signed<SignedRoot>> {
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(`${dir}/root.json`));
  } catch (e) {
    throw new ReleaseError(`Cannot read "${dir}/root.json": ${(e as Error).message}`, {
      cause: e,
    });
  }
  const root = await parseRoot(value, `${dir}/root.json`);
  await verifyRole(root, root.signed, "root", `${dir}/root.json`);
  return root;
}

/**
 * Makes a new release directory: fresh keys for each role (mode 0600) and root version 1 signed
 * by every root key. Refuses a directory that already has a root.
 */
export async function initRelease(dir: string, o: InitOptions = {}): Promise<Signed<SignedRoot>> {
  try {
    await Deno.lstat(`${dir}/root.json`);
    throw new ReleaseError(`"${dir}" already holds a root; use release rotate to change keys`);
  } catch (e) {
    if (e instanceof ReleaseError) throw e;
  }
  const keys: Record<string, string> = {};
  const roles = {} as Record<Role, RoleKeys>;
  for (const role of ROLES) {
    const spec = o.roles?.[role] ?? { keys: 1, threshold: 1 };
    checkSpec(role, spec);
    const made = await makeKeys(dir, role, spec.keys);
    Object.assign(keys, made);
    roles[role] = { keyids: Object.keys(made), threshold: spec.threshold };
  }
  const now = o.now ?? Date.now();
  const signed: SignedRoot = {
    _type: "outpost-root",
    version: 1,
    expires: new Date(now + (o.expiresInMs ?? 365 * DAY)).toISOString(),
    keys,
    roles,
  };
  const doc = await signDocument(signed, await roleKeys(dir, signed, "root"));
  await writeRoot(dir, doc);
  return doc;
}

/**
 * Replaces the keys of `role` (same count and threshold) with new ones: root version + 1, signed
 * by the old root keys and — when the root role itself rotates — the new ones. Devices follow
 * the chain and, for a rotated targets or timestamp role, forget that role's replay floor: the
 * way out of a fast-forward attack (a counter pushed up with a stolen key).
 */
export async function rotateRole(
  dir: string,
  role: Role,
  o: { expiresInMs?: number; now?: number } = {},
): Promise<Signed<SignedRoot>> {
  const cur = (await readRoot(dir)).signed;
  const old = cur.roles[role];
  const made = await makeKeys(dir, role, old.keyids.length);
  const keys = { ...cur.keys };
  for (const id of old.keyids) {
    if (!ROLES.some((r) => r !== role && cur.roles[r].keyids.includes(id))) delete keys[id];
  }
  Object.assign(keys, made);
  const now = o.now ?? Date.now();
  const signed: SignedRoot = {
    ...cur,
    version: cur.version + 1,
    expires: new Date(now + (o.expiresInMs ?? 365 * DAY)).toISOString(),
    keys,
    roles: { ...cur.roles, [role]: { keyids: Object.keys(made), threshold: old.threshold } },
  };
  const signers = [...await roleKeys(dir, cur, "root")];
  if (role === "root") signers.push(...await roleKeys(dir, signed, "root"));
  const doc = await signDocument(signed, signers);
  await verifyRole(doc, cur, "root", `root version ${signed.version}`);
  await verifyRole(doc, signed, "root", `root version ${signed.version}`);
  await writeRoot(dir, doc);
  return doc;
}

/** Copies the release directory's root chain into a channel (`<channel>/root/<n>.json`). */
export async function publishRootChain(dir: string, channel: string): Promise<number> {
  const root = await readRoot(dir);
  await Deno.mkdir(`${channel}/root`, { recursive: true });
  for (let v = 1; v <= root.signed.version; v++) {
    const text = await Deno.readTextFile(`${dir}/root/${v}.json`).catch(() => {
      throw new ReleaseError(`"${dir}/root/${v}.json" is missing: the root chain is incomplete`);
    });
    await writeFileAtomic(`${channel}/root/${v}.json`, text);
  }
  return root.signed.version;
}

/**
 * Writes `<channel>/timestamp.json` for the channel's current manifest: the next version, valid
 * for `expiresInMs` (1 day when absent), signed by the timestamp keys (enough for the threshold).
 */
export async function writeTimestamp(
  channel: string,
  root: SignedRoot,
  keys: SigningKey[],
  o: { expiresInMs?: number; now?: number } = {},
): Promise<Signed<SignedTimestamp>> {
  const ids = new Set(root.roles.timestamp.keyids);
  const usable = keys.filter((k) => ids.has(k.keyid));
  if (usable.length < root.roles.timestamp.threshold) {
    throw new ReleaseError(
      `timestamp: ${usable.length} of the given keys are timestamp keys of root version ${root.version}; ${root.roles.timestamp.threshold} needed`,
    );
  }
  const bytes = await Deno.readFile(`${channel}/manifest.json`);
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as Manifest;
  let version = 1;
  try {
    const prev = parseTimestamp(
      JSON.parse(await Deno.readTextFile(`${channel}/timestamp.json`)),
    );
    version = prev.signed.version + 1;
  } catch { /* the first timestamp, or a damaged one: start over at 1 */ }
  const now = o.now ?? Date.now();
  const doc = await signDocument<SignedTimestamp>({
    _type: "outpost-timestamp",
    version,
    expires: new Date(now + (o.expiresInMs ?? DAY)).toISOString(),
    manifest: {
      counter: manifest.signed.counter,
      length: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    },
  }, usable);
  await writeFileAtomic(`${channel}/timestamp.json`, JSON.stringify(doc, null, 2) + "\n");
  return doc;
}

/** Reads a root file to pin on a device: well formed and signed to its own root threshold. */
export async function readRootFile(path: string): Promise<SignedRoot> {
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new ReleaseError(`Cannot read root "${path}": ${(e as Error).message}`, { cause: e });
  }
  const root = await parseRoot(value, path);
  await verifyRole(root, root.signed, "root", path);
  return root.signed;
}

/** One paragraph on a root for the CLI: version, expiry, each role's keys and threshold. */
export function describeRoot(dir: string, root: SignedRoot): string {
  return [
    `root version ${root.version} in ${dir}/root.json (expires ${root.expires})`,
    ...ROLES.map((r) =>
      `  ${r}: ${root.roles[r].threshold} of ${
        root.roles[r].keyids.join(", ")
      } (keys in ${dir}/keys/${r}/)`
    ),
    `pin it on devices: outpost update init … --root ${dir}/root.json; keep keys/root and keys/targets offline`,
  ].join("\n");
}
