/**
 * Who may use a page and its API: `Authorization: Bearer <token>` for scripts, a session cookie
 * that `POST /login` issues for the page, same-origin checks on state-changing requests, and
 * rate-limited logging of refusals.
 */
import type { Logger } from "../../log.ts";
import { cookieValue, sessionCookie } from "./cookie.ts";
import { empty, json, readText, RequestError } from "./response.ts";
import { SESSION_MAX_AGE_SECONDS, type TokenCheck } from "./session.ts";

/** Largest `POST /login` body. */
const MAX_LOGIN_BODY = 4096;

/** What a request's credentials amount to: none at all, a wrong one, or a valid one. */
export type Authorization = "ok" | "missing" | "wrong";

/** The connection a request came in on (what `Deno.serve` hands a handler). */
export type ServeInfo = Deno.ServeHandlerInfo<Deno.NetAddr>;

/** Options of {@linkcode PageAccess}. */
export interface PageAccessOptions {
  tokens: TokenCheck;
  /** The session cookie's name. */
  cookie: string;
  /** Served over HTTPS: the cookie is `Secure`. */
  secure: boolean;
  log: Logger;
  /** Ends the warning about a refusal, e.g. "further refusals counted silently for 1 min". */
  quiet: string;
}

/** True when the request comes from the page's own origin, or from a client that sends none. */
export function sameOrigin(req: Request): boolean {
  const origin = req.headers.get("origin");
  return origin === null || origin === new URL(req.url).origin;
}

/** Access to one server's page and API. */
export class PageAccess {
  readonly #tokens: TokenCheck;
  readonly #cookie: string;
  readonly #secure: boolean;
  readonly #log: Logger;
  readonly #quiet: string;
  #warnedAt = -Infinity;
  /** Requests refused so far (missing or wrong credentials, wrong logins). */
  refused = 0;

  constructor(opts: PageAccessOptions) {
    this.#tokens = opts.tokens;
    this.#cookie = opts.cookie;
    this.#secure = opts.secure;
    this.#log = opts.log;
    this.#quiet = opts.quiet;
  }

  /** A bearer token when the request has an `Authorization` header, else the session cookie. */
  authorize(req: Request): Authorization {
    const header = req.headers.get("authorization");
    if (header !== null) {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
      return m !== null && this.#tokens.verify(m[1]) ? "ok" : "wrong";
    }
    const session = cookieValue(req, this.#cookie);
    if (session === undefined || session === "") return "missing";
    return this.#tokens.verifySession(session) ? "ok" : "wrong";
  }

  /**
   * Counts a refusal; with a reason it is also logged, at most once a minute, with the path and
   * the peer's address (never the credential).
   */
  refuse(req: Request, info: ServeInfo, why?: string): void {
    this.refused++;
    const now = Date.now();
    if (why !== undefined && now - this.#warnedAt > 60_000) {
      this.#warnedAt = now;
      this.#log.warn(`refused ${why}; ${this.#quiet}`, {
        path: new URL(req.url).pathname,
        from: info.remoteAddr.hostname,
      });
    }
  }

  #setCookie(value: string, maxAge: number): Record<string, string> {
    return { "set-cookie": sessionCookie(this.#cookie, value, { maxAge, secure: this.#secure }) };
  }

  /** `POST /login` with the token (JSON `{"token": …}` or a form): a session cookie, or 401. */
  async login(req: Request, info: ServeInfo): Promise<Response> {
    if (!sameOrigin(req)) return json({ error: "cross-origin login refused" }, 403);
    let text: string;
    try {
      text = await readText(req, MAX_LOGIN_BODY);
    } catch (e) {
      if (e instanceof RequestError) return json({ error: e.message }, e.status);
      throw e;
    }
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
    return empty(204, this.#setCookie(this.#tokens.newSession(), SESSION_MAX_AGE_SECONDS));
  }

  /**
   * `POST /logout`: with a valid session or token every session ends (a new generation), so a
   * copied cookie is as dead as the browser's. Without one it only clears the caller's cookie,
   * so nobody can sign others out; a cross-origin request is refused like a cross-origin login.
   */
  async logout(req: Request): Promise<Response> {
    await req.body?.cancel();
    if (!sameOrigin(req)) return json({ error: "cross-origin logout refused" }, 403);
    if (this.authorize(req) === "ok") this.#tokens.endSessions();
    return empty(204, this.#setCookie("", 0));
  }
}
