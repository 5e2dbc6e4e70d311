/**
 * Access tokens and the browser sessions they sign. A session is an expiry and an HMAC of it and
 * of the current session generation, keyed with the token: it does not reveal the token, lasts
 * {@linkcode SESSION_MAX_AGE_SECONDS}, and dies when the token changes or the generation is
 * replaced (sign-out ends every session, not only the browser's own cookie).
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Bytes of randomness in a generated token (256 bits). */
const TOKEN_BYTES = 32;

/** Lifetime of a browser session cookie. */
export const SESSION_MAX_AGE_SECONDS = 12 * 3600;

/** A new random token: 32 bytes from the system CSPRNG, base64url without padding (43 chars). */
export function generateToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/**
 * Compares two secrets in time independent of where they differ and of their lengths (both are
 * hashed first, so the comparison always runs over 32 bytes).
 */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** What checks a server's token and its sessions (a token file's store, or one in memory). */
export interface TokenCheck {
  /** True when `candidate` is the current token. */
  verify(candidate: string): boolean;
  /** A new session value for the cookie. */
  newSession(now?: number): string;
  /** True when `value` is a live session of the current token and generation. */
  verifySession(value: string, now?: number): boolean;
  /** Ends every session issued so far. */
  endSessions(): void;
}

/** Where a session generation is kept across restarts. */
export interface GenerationStore {
  /** The stored generation, or undefined when there is none (or it is unusable). */
  load(): string | undefined;
  /** Keeps `generation`; a failure to keep it is the store's to report. */
  save(generation: string): void;
}

/** Signs and checks sessions in one generation; {@linkcode SessionSigner.renew} starts a new one. */
export class SessionSigner {
  readonly #store: GenerationStore | undefined;
  #generation: string;

  /** Loads the generation from `store`, or starts a new one (kept in memory only without one). */
  constructor(store?: GenerationStore) {
    this.#store = store;
    this.#generation = store?.load() ?? this.#fresh();
  }

  #fresh(): string {
    const generation = generateToken();
    this.#store?.save(generation);
    return generation;
  }

  /** Ends every session signed so far. */
  renew(): void {
    this.#generation = this.#fresh();
  }

  #mac(token: string, expires: number): string {
    return createHmac("sha256", token)
      .update(`outpost-session:${this.#generation}:${expires}`).digest("base64url");
  }

  /** A session value for `token`: `<expiry seconds>.<HMAC>`. */
  issue(token: string, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + SESSION_MAX_AGE_SECONDS;
    return `${expires}.${this.#mac(token, expires)}`;
  }

  /**
   * True when `value` is a session of the token `token()` gives, in this generation, not expired.
   * The token is asked for only once the value is well formed and unexpired.
   */
  check(token: () => string, value: string, now = Date.now()): boolean {
    const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!m) return false;
    const expires = Number(m[1]);
    if (expires * 1000 <= now) return false;
    return secretEquals(m[2], this.#mac(token(), expires));
  }
}

/**
 * A token held in memory only (`outpost fleet serve` without `--token-file`): its sessions end
 * with a sign-out or with the process.
 */
export class MemoryToken implements TokenCheck {
  readonly #token: string;
  readonly #sessions = new SessionSigner();

  constructor(token: string = generateToken()) {
    this.#token = token;
  }

  /** The token, to print at start. */
  get token(): string {
    return this.#token;
  }

  verify(candidate: string): boolean {
    return secretEquals(candidate, this.#token);
  }

  newSession(now = Date.now()): string {
    return this.#sessions.issue(this.#token, now);
  }

  verifySession(value: string, now = Date.now()): boolean {
    return this.#sessions.check(() => this.#token, value, now);
  }

  endSessions(): void {
    this.#sessions.renew();
  }
}
