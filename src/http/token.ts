import {
  generateToken,
  type GenerationStore,
  secretEquals,
  SessionSigner,
  type TokenCheck,
} from "../common/http/mod.ts";
import type { Logger } from "../log.ts";
import { rememberSecret } from "../redact.ts";

/** Shortest token accepted from a token file an operator wrote by hand. */
const MIN_TOKEN_LENGTH = 16;
const TOKEN_RE = /^[\x21-\x7e]+$/;

/** The token file is missing, unreadable or does not hold a usable token. */
export class TokenFileError extends Error {
  override name = "TokenFileError";
}

/** The parts of the gateway config that locate the token file. */
export interface TokenPathConfig {
  buffer: { path: string };
  http: { tokenFile?: string };
}

/** Where the access token lives: `http.tokenFile`, else `http-token` next to the buffer file. */
export function tokenPath(config: TokenPathConfig): string {
  if (config.http.tokenFile) return config.http.tokenFile;
  const dir = dirOf(config.buffer.path);
  return dir === "." ? "http-token" : dir === "/" ? "/http-token" : `${dir}/http-token`;
}

function checkToken(text: string, path: string): string {
  const token = text.trim();
  if (!TOKEN_RE.test(token) || token.length < MIN_TOKEN_LENGTH) {
    throw new TokenFileError(
      `Cannot use token file "${path}": expected one token of at least ${MIN_TOKEN_LENGTH} ` +
        `printable characters without spaces${token ? "" : ", got an empty file"}`,
    );
  }
  // Whatever prints it by mistake from now on (a log line, an error) shows [redacted].
  rememberSecret(token);
  return token;
}

/** Reads and checks the token in `path`. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new TokenFileError(`Cannot read token file "${path}": ${why}`, { cause: e });
  }
  return checkToken(text, path);
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : path.slice(0, i) || "/";
}

/**
 * Writes `token` to `path` with mode 0600: a temp file in the same directory, fsync, then
 * `rename` over (rotation) or `link` (first creation, which fails rather than overwrite a token
 * another process just created). When run as root on a file the gateway's user owns, the new file
 * keeps that owner so the gateway can still read it.
 */
function writeToken(path: string, token: string, replace: boolean): void {
  const dir = dirOf(path);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
  let owner: { uid: number | null; gid: number | null } | undefined;
  try {
    const st = Deno.statSync(replace ? path : dir);
    owner = { uid: st.uid, gid: st.gid };
  } catch { /* a new file in a new directory: ours */ }
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    f.writeSync(new TextEncoder().encode(token + "\n"));
    f.syncSync();
  } finally {
    f.close();
  }
  try {
    // The umask can only take bits away; set the mode anyway so the file is never wider.
    Deno.chmodSync(tmp, 0o600);
    if (owner && Deno.uid() === 0 && owner.uid !== null && owner.gid !== null) {
      Deno.chownSync(tmp, owner.uid, owner.gid);
    }
    if (replace) Deno.renameSync(tmp, path);
    else Deno.linkSync(tmp, path);
  } catch (e) {
    Deno.removeSync(tmp);
    throw e;
  }
  if (!replace) Deno.removeSync(tmp);
  const d = Deno.openSync(dir, { read: true });
  try {
    d.syncSync();
  } finally {
    d.close();
  }
}

/** What {@linkcode ensureTokenFile} found or did. */
export interface EnsuredToken {
  token: string;
  /** True when the file did not exist and a new token was written. */
  created: boolean;
}

/**
 * Returns the token in `path`, creating the file with a new random token (mode 0600) when it does
 * not exist. An existing file readable by group or others is tightened to 0600 (with a warning);
 * one that does not hold a usable token is an error, never silently replaced.
 */
export function ensureTokenFile(path: string, log?: Logger): EnsuredToken {
  let st: Deno.FileInfo | undefined;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new TokenFileError(`Cannot read token file "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  if (!st) {
    const token = generateToken();
    try {
      writeToken(path, token, false);
      return { token, created: true };
    } catch (e) {
      // Another process created it between our stat and link: use theirs.
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new TokenFileError(`Cannot create token file "${path}": ${(e as Error).message}`, {
          cause: e,
        });
      }
    }
  } else if (st.mode !== null && (st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
    try {
      Deno.chmodSync(path, 0o600);
      log?.warn("token file was readable by other users; set its mode to 0600", { path, mode });
    } catch (e) {
      log?.warn("token file is readable by other users and its mode cannot be changed", {
        path,
        mode,
        error: (e as Error).message,
      });
    }
  }
  return { token: readTokenFile(path), created: false };
}

/** Writes a new random token to `path` (mode 0600, atomically) and returns it. */
export function rotateTokenFile(path: string): string {
  const token = generateToken();
  try {
    writeToken(path, token, true);
  } catch (e) {
    throw new TokenFileError(`Cannot write token file "${path}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  return token;
}

/** Where the session generation of the token file `path` is kept. */
export function sessionsPath(path: string): string {
  return `${path}.sessions`;
}

const GENERATION_RE = /^[A-Za-z0-9_-]{22,64}$/;

/**
 * The access token of one gateway, read from its file. A change of the file (rotation by
 * `outpost token rotate`, or an edit) is noticed on the next check, so a rotated token takes
 * effect without a restart and the old one stops working at once.
 *
 * Browser sessions are signed with the token and a session generation, a random value kept in
 * `<token file>.sessions` (mode 0600). {@linkcode TokenStore.endSessions} (sign-out) replaces the
 * generation, which ends every session issued before, also across restarts.
 */
export class TokenStore implements TokenCheck {
  readonly path: string;
  readonly #log: Logger | undefined;
  #token: string;
  #stamp: string;
  #problem: string | undefined;
  readonly #sessions: SessionSigner;

  private constructor(path: string, token: string, stamp: string, log?: Logger) {
    this.path = path;
    this.#token = token;
    this.#stamp = stamp;
    this.#log = log;
    this.#sessions = new SessionSigner(this.#generationFile());
  }

  /** Opens the token in `path`, creating it on first run; see {@linkcode ensureTokenFile}. */
  static open(path: string, log?: Logger): { store: TokenStore; created: boolean } {
    const { token, created } = ensureTokenFile(path, log);
    const store = new TokenStore(path, token, TokenStore.#stampOf(path) ?? "", log);
    return { store, created };
  }

  /**
   * The generation's file: a missing or broken one gets a new generation. When a new one cannot
   * be written (a read-only directory), it still holds in memory: sessions end now, and again at
   * the next restart.
   */
  #generationFile(): GenerationStore {
    const file = sessionsPath(this.path);
    return {
      load: () => {
        try {
          const text = Deno.readTextFileSync(file).trim();
          if (GENERATION_RE.test(text)) return text;
        } catch { /* first run, or unreadable: start a new generation */ }
        return undefined;
      },
      save: (generation) => {
        try {
          writeToken(file, generation, true);
        } catch (e) {
          this.#log?.warn("cannot store the session generation; sessions end at every restart", {
            path: file,
            error: (e as Error).message,
          });
        }
      },
    };
  }

  /** Ends every session issued so far (sign-out): later checks refuse them, also after a restart. */
  endSessions(): void {
    this.#sessions.renew();
    this.#log?.info("signed out: every session of the gateway page ended");
  }

  static #stampOf(path: string): string | undefined {
    try {
      const st = Deno.statSync(path);
      return `${st.ino}:${st.mtime?.getTime()}:${st.size}:${st.ctime?.getTime()}`;
    } catch {
      return undefined;
    }
  }

  /** Re-reads the file when it changed; a missing or broken file keeps the last good token. */
  #refresh(): void {
    const stamp = TokenStore.#stampOf(this.path);
    if (stamp === this.#stamp) return;
    if (stamp === undefined) {
      this.#report(`token file "${this.path}" is gone; the last token read stays in use`);
      return;
    }
    try {
      const token = readTokenFile(this.path);
      this.#stamp = stamp;
      if (token !== this.#token) this.#log?.info("access token changed; the old one is refused");
      this.#token = token;
      this.#problem = undefined;
    } catch (e) {
      this.#report(`${(e as Error).message}; the last token read stays in use`);
    }
  }

  #report(problem: string): void {
    if (problem !== this.#problem) this.#log?.error(problem);
    this.#problem = problem;
  }

  /** True when `candidate` is the current token. */
  verify(candidate: string): boolean {
    this.#refresh();
    return secretEquals(candidate, this.#token);
  }

  /**
   * A browser session value: expiry and an HMAC of it (and of the session generation) keyed with
   * the token. It does not reveal the token, works only until `SESSION_MAX_AGE_SECONDS` pass, and
   * dies with a rotation or {@linkcode TokenStore.endSessions}.
   */
  newSession(now = Date.now()): string {
    this.#refresh();
    return this.#sessions.issue(this.#token, now);
  }

  /**
   * True when `value` is a session made with the current token in the current generation that
   * has not expired.
   */
  verifySession(value: string, now = Date.now()): boolean {
    return this.#sessions.check(
      () => {
        this.#refresh();
        return this.#token;
      },
      value,
      now,
    );
  }
}
