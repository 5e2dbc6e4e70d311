/**
 * Access to the fleet page: the token (from a token file or held in memory), the session cookie
 * the page logs in for, bearer tokens for scripts, same-origin POSTs, and rate-limited logging of
 * refusals.
 */
import { createHmac } from "node:crypto";
import { generateToken, secretEquals, SESSION_MAX_AGE_SECONDS } from "../http/token.ts";
import type { Logger } from "../log.ts";
import { BASE_HEADERS, cookieValue, json } from "./serve_http.ts";

const SESSION_COOKIE = "outpost_fleet_session";

/** What checks the token (the gateway's TokenStore, or an in-memory one). */
export interface TokenCheck {
  verify(candidate: string): boolean;
  newSession(now?: number): string;
  verifySession(value: string, now?: number): boolean;
}

/**
 * A token held in memory only (`outpost fleet serve` without `--token-file`): sessions as the
 * gateway page makes them, an HMAC of the expiry keyed with the token.
 */
export class MemoryToken implements TokenCheck {
  readonly #token: string;
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
  #mac(expires: number): string {
    return createHmac("sha256", this.#token).update(`outpost-fleet-session:${expires}`)
      .digest("base64url");
  }
  newSession(now = Date.now()): string {
    const expires = Math.floor(now / 1000) + SESSION_MAX_AGE_SECONDS;
    return `${expires}.${this.#mac(expires)}`;
  }
  verifySession(value: string, now = Date.now()): boolean {
    const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!m || Number(m[1]) * 1000 <= now) return false;
    return secretEquals(m[2], this.#mac(Number(m[1])));
  }
}

/** Who may use the page and its API: login, logout, and the check of each request. */
export class PageAuth {
  readonly #tokens: TokenCheck;
  readonly #secure: boolean;
  readonly #log: Logger;
  #warnedAt = -Infinity;

  constructor(tokens: TokenCheck, opts: { secure: boolean; log: Logger }) {
    this.#tokens = tokens;
    this.#secure = opts.secure;
    this.#log = opts.log;
  }

  /** True when the request carries a valid bearer token or, without one, a valid session. */
  authorized(req: Request): boolean {
    const header = req.headers.get("authorization");
    if (header !== null) {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
      return m !== null && this.#tokens.verify(m[1]);
    }
    const session = cookieValue(req, SESSION_COOKIE);
    return session !== undefined && this.#tokens.verifySession(session);
  }

  /** True when a POST comes from the page's own origin (or from a client that sends none). */
  sameOrigin(req: Request): boolean {
    const origin = req.headers.get("origin");
    return origin === null || origin === new URL(req.url).origin;
  }

  /** Logs a refusal, at most once a minute. */
  refuse(req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>, why: string): void {
    const now = Date.now();
    if (now - this.#warnedAt > 60_000) {
      this.#warnedAt = now;
      this.#log.warn(`refused ${why}; further refusals are not logged for 1 min`, {
        path: new URL(req.url).pathname,
        from: info.remoteAddr.hostname,
      });
    }
  }

  /** `POST /login` with the token (JSON or form): a session cookie, or 401. */
  async login(req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const text = await req.text();
    if (text.length > 4096) return json({ error: "request too large" }, 413);
    let token = "";
    try {
      token = (req.headers.get("content-type") ?? "").includes("application/json")
        ? String(JSON.parse(text)?.token ?? "")
        : new URLSearchParams(text).get("token") ?? "";
    } catch {
      return json({ error: 'expected {"token": "…"}' }, 400);
    }
    if (!this.#tokens.verify(token.trim())) {
      this.refuse(req, info, "a login with a wrong token");
      return json({ error: "token not accepted" }, 401);
    }
    return new Response(null, {
      status: 204,
      headers: {
        ...BASE_HEADERS,
        "set-cookie": this.#cookie(this.#tokens.newSession(), SESSION_MAX_AGE_SECONDS),
      },
    });
  }

  /** `POST /logout`: clears the session cookie. */
  logout(): Response {
    return new Response(null, {
      status: 204,
      headers: { ...BASE_HEADERS, "set-cookie": this.#cookie("", 0) },
    });
  }

  #cookie(value: string, maxAge: number): string {
    return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict` +
      (this.#secure ? "; Secure" : "");
  }
}
