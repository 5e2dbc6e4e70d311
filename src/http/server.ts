import { createHash } from "node:crypto";
import { isLoopbackListen } from "../config/gateway.ts";
import type { Gateway, GatewayStatus } from "../gateway.ts";
import type { Logger, LogRecord } from "../log.ts";
import {
  type Drain,
  DRAIN_WINDOW_MS,
  estimateDrain,
  type Rates,
  TrendHistory,
  type TrendOptions,
  type TrendPoint,
} from "./history.ts";
import { METRICS_CONTENT_TYPE, processStats, renderMetrics } from "./metrics.ts";
import { PAGE_HTML, PAGE_STYLE } from "./page.ts";
// The page's script: plain JavaScript with JSDoc types that deno check and lint cover, served
// byte for byte as it is in the file (deno compile and deno bundle embed it).
import PAGE_SCRIPT from "./page_script.js" with { type: "text" };
import { SESSION_MAX_AGE_SECONDS, type TokenStore } from "./token.ts";

/** PEM certificate and key for HTTPS (file contents, not paths). */
export interface TlsPem {
  cert: string;
  key: string;
}

/**
 * What `/api/dashboard` answers. The page script (page_script.js) reads it with this type, so a
 * change to a status field is checked there too.
 */
export interface DashboardResponse {
  now: number;
  status: GatewayStatus;
  rates: Rates;
  drain: Drain;
  /** New trend points per device and metric since the `after` cursor. */
  trends: Record<string, Record<string, TrendPoint[]>>;
  trendCursor: number;
  trendPoints: number;
  trendsUntracked: number;
  logs: LogRecord[];
}

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  gateway: Gateway;
  log: Logger;
  /** The access token every data path requires (all but `/healthz` and the page shell). */
  tokens: TokenStore;
  /** Serve HTTPS. */
  tls?: TlsPem;
  /** A loopback `host:port` serving only `/healthz` in plain HTTP (for supervisors under TLS). */
  healthListen?: string;
  /** The recent log lines, oldest first (the root logger's ring). */
  recentLogs?: (limit: number) => LogRecord[];
  /** Trend lines: sampling interval and bounds. */
  trends?: TrendOptions & { intervalMs?: number };
  /** The newest entries of the remote-command audit trail, oldest first (`/audit`). */
  audit?: (limit: number) => Promise<unknown[]>;
}

/** A running local HTTP server. */
export interface HttpServer {
  /** The address actually bound, `host:port`. */
  address: string;
  /** `http` or `https`. */
  scheme: "http" | "https";
  /** The address of the plain `/healthz` listener, when one was asked for. */
  healthAddress?: string;
  close(): Promise<void>;
}

/** Splits `host:port` (with `[v6]` hosts). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  return { hostname: host, port: Number(listen.slice(i + 1)) };
}

/** Reads the PEM files of `http.tls`; the error names the file that cannot be read. */
export function readTlsFiles(files: { cert: string; key: string }): TlsPem {
  const read = (what: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(`Cannot read http.tls.${what} "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  };
  return { cert: read("cert", files.cert), key: read("key", files.key) };
}

/**
 * The session cookie's name, one per gateway id: browsers do not keep cookies apart by port, and
 * an engineer with SSH tunnels to several gateways on localhost must stay signed in to each.
 */
function sessionCookieName(gatewayId: string): string {
  return `outpost_session_${createHash("sha256").update(gatewayId).digest("hex").slice(0, 12)}`;
}
const BASE_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};
const PAGE_HEADERS = {
  ...BASE_HEADERS,
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; " +
    "frame-ancestors 'none'",
};

function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { ...BASE_HEADERS, "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function asset(body: string, type: string): Response {
  return new Response(body, { headers: { ...PAGE_HEADERS, "content-type": type } });
}

function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function formatAddress(addr: Deno.NetAddr): string {
  return `${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
}

const PATHS = ["/", "/healthz", "/status", "/metrics", "/logs", "/audit", "/api/dashboard"];
const MAX_LOGIN_BODY = 4096;

/** One `Deno.serve` listener, resolved once it listens. */
function serve(
  listen: string,
  log: Logger,
  tls: TlsPem | undefined,
  handler: (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
): Promise<{ address: string; close: () => Promise<void> }> {
  const { hostname, port } = parseListen(listen);
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname,
        port,
        signal: ac.signal,
        ...(tls ? { cert: tls.cert, key: tls.key } : {}),
        onListen: (addr) => {
          resolve({
            address: formatAddress(addr),
            close: async () => {
              ac.abort();
              await server.finished;
            },
          });
        },
        onError: (e) => {
          log.error("HTTP handler failed", { error: (e as Error).message });
          return json({ error: "internal error" }, 500);
        },
      }, handler);
    } catch (e) {
      reject(new Error(`Cannot listen on "${listen}": ${(e as Error).message}`, { cause: e }));
    }
  });
}

/**
 * Serves the gateway page (`/`), `/status`, `/metrics`, `/logs`, `/audit` and `/api/dashboard` behind the
 * access token, and `/healthz` open for supervisors. The token comes as
 * `Authorization: Bearer …` or, for the page, as a session cookie that `POST /login` issues.
 */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { gateway, log, tokens } = opts;
  const secure = opts.tls !== undefined;
  const sessionCookie = sessionCookieName(gateway.status().gatewayId);
  const trends = new TrendHistory(opts.trends);
  const sampleEvery = opts.trends?.intervalMs ?? 2000;
  const counters = { unauthorized: 0 };
  let warnedAt = -Infinity;

  const sample = () => {
    try {
      trends.sample(gateway.pipeline.lastValues(), {
        accepted: gateway.pipeline.stats().accepted,
        forwarded: gateway.forwarder?.stats().forwardedReadings ?? null,
      });
    } catch (e) {
      log.debug("trend sample failed", { error: (e as Error).message });
    }
  };
  sample();
  const sampler = setInterval(sample, sampleEvery);

  /** Counts a refusal; a wrong credential (not a missing one) is also logged, once a minute. */
  const refuse = (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    why: string | undefined,
  ) => {
    counters.unauthorized++;
    const now = Date.now();
    if (why !== undefined && now - warnedAt > 60_000) {
      warnedAt = now;
      log.warn(`refused ${why}; further refusals counted silently for 1 min`, {
        path: new URL(req.url).pathname,
        from: info.remoteAddr.hostname,
      });
    }
  };

  /** "ok", "missing" (no credential at all) or "wrong". */
  const authorize = (req: Request): "ok" | "missing" | "wrong" => {
    const header = req.headers.get("authorization");
    if (header !== null) {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
      return m !== null && tokens.verify(m[1]) ? "ok" : "wrong";
    }
    const session = cookieValue(req, sessionCookie);
    if (session === undefined || session === "") return "missing";
    return tokens.verifySession(session) ? "ok" : "wrong";
  };

  const cookie = (value: string, maxAge: number) =>
    `${sessionCookie}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict` +
    (secure ? "; Secure" : "");

  const login = async (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    const origin = req.headers.get("origin");
    if (origin !== null && origin !== new URL(req.url).origin) {
      return json({ error: "cross-origin login refused" }, 403);
    }
    const length = Number(req.headers.get("content-length") ?? "0");
    if (length > MAX_LOGIN_BODY) return json({ error: "request too large" }, 413);
    const text = await req.text();
    if (text.length > MAX_LOGIN_BODY) return json({ error: "request too large" }, 413);
    let token = "";
    try {
      token = (req.headers.get("content-type") ?? "").includes("application/json")
        ? String(JSON.parse(text)?.token ?? "")
        : new URLSearchParams(text).get("token") ?? "";
    } catch {
      return json({ error: 'expected {"token": "…"}' }, 400);
    }
    if (!tokens.verify(token.trim())) {
      refuse(req, info, "a login with a wrong token");
      return json({ error: "token not accepted" }, 401);
    }
    return new Response(null, {
      status: 204,
      headers: {
        ...BASE_HEADERS,
        "set-cookie": cookie(tokens.newSession(), SESSION_MAX_AGE_SECONDS),
      },
    });
  };

  /**
   * Signs out: with a valid session or token every session ends (the generation changes), so a
   * copied cookie is as dead as the browser's. Without one it only clears the caller's cookie, so
   * nobody can sign others out; a cross-origin request is refused like a cross-origin login.
   */
  const logout = async (req: Request): Promise<Response> => {
    await req.body?.cancel();
    const origin = req.headers.get("origin");
    if (origin !== null && origin !== new URL(req.url).origin) {
      return json({ error: "cross-origin logout refused" }, 403);
    }
    if (authorize(req) === "ok") tokens.endSessions();
    return new Response(null, {
      status: 204,
      headers: { ...BASE_HEADERS, "set-cookie": cookie("", 0) },
    });
  };

  const dashboard = (url: URL): Response => {
    const status = gateway.status();
    const after = Number(url.searchParams.get("after") ?? "0");
    const n = Math.min(500, Math.max(0, Number(url.searchParams.get("logs") ?? "100") || 0));
    const rates = trends.rates();
    const body: DashboardResponse = {
      now: Date.now(),
      status,
      rates,
      drain: estimateDrain(status, trends.rates(DRAIN_WINDOW_MS)),
      // A cursor from before a restart (ahead of ours) gets everything again.
      trends: trends.trends(Number.isSafeInteger(after) && after <= trends.cursor ? after : 0),
      trendCursor: trends.cursor,
      trendPoints: trends.points,
      trendsUntracked: trends.untracked,
      logs: n && opts.recentLogs ? opts.recentLogs(n) : [],
    };
    return json(body);
  };

  const handler = async (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (req.method === "POST") {
      if (path === "/login") return await login(req, info);
      if (path === "/logout") return logout(req);
      return json({ error: `method POST not allowed on ${path}` }, 405, { allow: "GET, HEAD" });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json({ error: `method ${req.method} not allowed` }, 405, { allow: "GET, HEAD, POST" });
    }
    switch (path) {
      case "/healthz": {
        const h = gateway.health();
        return json(h, h.ok ? 200 : 503);
      }
      case "/":
        return asset(PAGE_HTML, "text/html; charset=utf-8");
      case "/page.css":
        return asset(PAGE_STYLE, "text/css; charset=utf-8");
      case "/page.js":
        return asset(PAGE_SCRIPT, "text/javascript; charset=utf-8");
    }
    if (!PATHS.includes(path)) return json({ error: `no such path ${path}`, paths: PATHS }, 404);
    const auth = authorize(req);
    if (auth !== "ok") {
      refuse(req, info, auth === "wrong" ? "a request with a wrong token or session" : undefined);
      return json(
        {
          error: "access token required: send Authorization: Bearer <token> " +
            "(outpost token show --config FILE prints it)",
        },
        401,
        { "www-authenticate": 'Bearer realm="outpost"' },
      );
    }
    switch (path) {
      case "/status":
        return json(gateway.status());
      case "/metrics":
        return new Response(
          renderMetrics(gateway.status(), { process: processStats(), http: counters }),
          { headers: { ...BASE_HEADERS, "content-type": METRICS_CONTENT_TYPE } },
        );
      case "/logs": {
        const n = Math.min(1000, Math.max(1, Number(url.searchParams.get("n") ?? "100") || 100));
        return json({ lines: opts.recentLogs?.(n) ?? [] });
      }
      case "/audit": {
        const n = Math.min(1000, Math.max(1, Number(url.searchParams.get("n") ?? "100") || 100));
        return json({ audit: await opts.audit?.(n) ?? [] });
      }
      default:
        return dashboard(url);
    }
  };

  let main: { address: string; close: () => Promise<void> };
  try {
    main = await serve(opts.listen, log, opts.tls, handler);
  } catch (e) {
    clearInterval(sampler);
    throw e;
  }
  let health: { address: string; close: () => Promise<void> } | undefined;
  if (opts.healthListen) {
    try {
      health = await serve(opts.healthListen, log, undefined, (req) => {
        if (new URL(req.url).pathname !== "/healthz") {
          return json({ error: "only /healthz is served here" }, 404);
        }
        const h = gateway.health();
        return json(h, h.ok ? 200 : 503);
      });
    } catch (e) {
      clearInterval(sampler);
      await main.close();
      throw e;
    }
  }
  const scheme = secure ? "https" : "http";
  log.info(`gateway page on ${scheme}://${main.address}/ (token required; /healthz open)`, {
    tokenFile: tokens.path,
    ...(health ? { healthz: `http://${health.address}/healthz` } : {}),
  });
  if (!secure && !isLoopbackListen(opts.listen)) {
    log.warn(
      "serving without TLS on an address other machines can reach (http.allowInsecure): the " +
        "access token and the gateway's data cross the network in clear",
      { listen: opts.listen },
    );
  }
  return {
    address: main.address,
    scheme,
    healthAddress: health?.address,
    close: async () => {
      clearInterval(sampler);
      await Promise.all([main.close(), health?.close()]);
    },
  };
}
