import { ReleaseError } from "./errors.ts";

/** Text form of a public key: `ed25519:` and the 32 raw bytes in base64. */
export type PublicKeyText = string;

/** A private release key as stored by `outpost release keygen` (a JSON file, mode 0600). */
export interface PrivateKeyFile {
  type: "outpost-release-key";
  keyid: string;
  /** PKCS#8, base64. */
  private: string;
  public: PublicKeyText;
}

/** A key pair ready to sign with. */
export interface SigningKey {
  keyid: string;
  publicKey: PublicKeyText;
  privateKey: CryptoKey;
}

/** A trusted public key ready to verify with. */
export interface TrustedKey {
  keyid: string;
  publicKey: PublicKeyText;
  key: CryptoKey;
}

/** Base64 of bytes. */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Bytes of base64 text; throws a ReleaseError naming `what` when malformed. */
export function fromBase64(text: string, what: string): Uint8Array {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch (e) {
    throw new ReleaseError(`${what}: not base64: "${text.slice(0, 20)}…"`, { cause: e });
  }
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function rawOf(publicKey: PublicKeyText): Uint8Array {
  const m = /^ed25519:([A-Za-z0-9+/=]+)$/.exec(publicKey.trim());
  if (!m) {
    throw new ReleaseError(`expected a public key "ed25519:BASE64", got "${publicKey.trim()}"`);
  }
  const raw = fromBase64(m[1], "public key");
  if (raw.length !== 32) {
    throw new ReleaseError(`public key "${publicKey}": expected 32 bytes, got ${raw.length}`);
  }
  return raw;
}

/** The key id: the first 16 hex digits of SHA-256 over the raw public key. */
export async function keyIdOf(publicKey: PublicKeyText): Promise<string> {
  const raw = rawOf(publicKey);
  const digest = await crypto.subtle.digest("SHA-256", raw as Uint8Array<ArrayBuffer>);
  return toHex(new Uint8Array(digest)).slice(0, 16);
}

/** Generates an Ed25519 release key pair with Web Crypto. */
export async function generateKey(): Promise<PrivateKeyFile> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const publicKey = `ed25519:${toBase64(raw)}`;
  return {
    type: "outpost-release-key",
    keyid: await keyIdOf(publicKey),
    private: toBase64(pkcs8),
    public: publicKey,
  };
}

/** Imports a private key file's contents for signing. */
export async function importSigningKey(file: PrivateKeyFile): Promise<SigningKey> {
  if (file?.type !== "outpost-release-key") {
    throw new ReleaseError(
      `expected an outpost release key file (type "outpost-release-key"), got type "${file?.type}"`,
    );
  }
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    fromBase64(file.private, "private key") as Uint8Array<ArrayBuffer>,
    { name: "Ed25519" },
    false,
    ["sign"],
  );
  return { keyid: await keyIdOf(file.public), publicKey: file.public, privateKey };
}

/** Reads a private key file written by `outpost release keygen`. */
export async function readSigningKey(path: string): Promise<SigningKey> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ReleaseError(`Cannot read key file "${path}": ${(e as Error).message}`, { cause: e });
  }
  try {
    return await importSigningKey(JSON.parse(text));
  } catch (e) {
    throw new ReleaseError(`Key file "${path}": ${(e as Error).message}`, { cause: e });
  }
}

/** Imports public keys to verify with; duplicates (same key id) collapse. */
export async function importTrustedKeys(
  publicKeys: readonly PublicKeyText[],
): Promise<Map<string, TrustedKey>> {
  const out = new Map<string, TrustedKey>();
  for (const publicKey of publicKeys) {
    const keyid = await keyIdOf(publicKey);
    if (out.has(keyid)) continue;
    const key = await crypto.subtle.importKey(
      "raw",
      rawOf(publicKey) as Uint8Array<ArrayBuffer>,
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    out.set(keyid, { keyid, publicKey: publicKey.trim(), key });
  }
  return out;
}

/** Signs bytes; returns the signature in base64. */
export async function sign(key: SigningKey, data: Uint8Array): Promise<string> {
  const sig = await crypto.subtle.sign("Ed25519", key.privateKey, data as Uint8Array<ArrayBuffer>);
  return toBase64(new Uint8Array(sig));
}
