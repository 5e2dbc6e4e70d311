import { createHash } from "node:crypto";
import {
  asset,
  BASE_HEADERS,
  CSS,
  type Handler,
  HTML,
  JAVASCRIPT,
  json,
  listen,
  type Listener,
  methodNotAllowed,
  PageAccess,
  Router,
  type TlsPem,
  warnClearText,
} from "../common/http/mod.ts";
import { isLoopbackListen } from "../config/gateway.ts";
import type { Gateway, GatewayStatus } from "../gateway.ts";
import { jsonLogObject, type Logger, type LogRecord } from "../log.ts";
import { alarmRoutes } from "./alarms.ts";
import {
  type Drain,
  DRAIN_WINDOW_MS,
  estimateDrain,
  type Rates,
  TrendHistory,
  type TrendOptions,
  type TrendPoint,
} from "./history.ts";
import { historyRoutes } from "./history_api.ts";
import { METRICS_CONTENT_TYPE, processStats, renderMetrics } from "./metrics.ts";
import { PAGE_HTML, PAGE_SCRIPTS, PAGE_STYLE } from "./page.ts";
import type { TokenStore } from "./token.ts";

export type { TlsPem } from "../common/http/mod.ts";

/**
 * What `/api/dashboard` answers. The page's scripts (page_script.js and its panels) read it with
 * this type, so a change to a status field is checked there too.
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
  /** Answers `/devices/…` (device artifacts; it checks device tokens itself, and asks
   * `pageAuthorized` whether a request carries the page's token). */
  devices?: (req: Request, pageAuthorized: () => boolean) => Promise<Response>;
  /** More Prometheus text for `/metrics`. */
  moreMetrics?: () => string;
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

/** The gateway's HTTP handlers, ready to be served or called without a socket. */
export interface GatewayApp {
  /** Every path of the main listener. */
  fetch: Handler;
  /** The plain `/healthz`-only listener's handler. */
  health: Handler;
  /** Stops trend sampling. */
  stop(): void;
}

/**
 * The gateway page (`/`), `/status`, `/metrics`, `/logs`, `/audit` and `/api/dashboard` behind
 * the access token, and `/healthz` open for supervisors. The token comes as
 * `Authorization: Bearer …` or, for the page, as a session cookie that `POST /login` issues.
 */
export function createGatewayApp(opts: Omit<HttpServerOptions, "listen">): GatewayApp {
  const { gateway, log } = opts;
  const access = new PageAccess({
    tokens: opts.tokens,
    cookie: sessionCookieName(gateway.status().gatewayId),
    secure: opts.tls !== undefined,
    log,
    quiet: "further refusals counted silently for 1 min",
  });
  const trends = new TrendHistory(opts.trends);
  const sampleEvery = opts.trends?.intervalMs ?? 2000;

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

  const healthz = () => {
    const h = gateway.health();
    return json(h, h.ok ? 200 : 503);
  };
  const limit = (url: URL) =>
    Math.min(1000, Math.max(1, Number(url.searchParams.get("n") ?? "100") || 100));

  /** What anyone may fetch, and sign-in and sign-out. */
  const open = new Router()
    .post("/login", (req, { info }) => access.login(req, info))
    .post("/logout", (req) => access.logout(req))
    // Whether the caller is signed in, so the page asks for the token without touching the API
    // (an unsigned visit must not count as a refused request).
    .get("/session", (req) => json({ signedIn: access.authorize(req) === "ok" }))
    .get("/healthz", healthz)
    .get("/", () => asset(PAGE_HTML, HTML))
    .get("/page.css", () => asset(PAGE_STYLE, CSS));
  for (const [path, script] of Object.entries(PAGE_SCRIPTS)) {
    open.get(path, () => asset(script, JAVASCRIPT));
  }
  const history = historyRoutes(() => gateway.buffer);
  /** What the token opens. */
  const data = new Router()
    .get("/status", () => json(gateway.status()))
    .get("/metrics", () =>
      new Response(
        renderMetrics(gateway.status(), {
          process: processStats(),
          http: { unauthorized: access.refused },
          alarms: gateway.edge?.metrics(),
        }) + (opts.moreMetrics?.() ?? ""),
        { headers: { ...BASE_HEADERS, "content-type": METRICS_CONTENT_TYPE } },
      ))
    .get(
      "/logs",
      (_req, { url }) => json({ lines: (opts.recentLogs?.(limit(url)) ?? []).map(jsonLogObject) }),
    )
    .get("/audit", async (_req, { url }) => json({ audit: await opts.audit?.(limit(url)) ?? [] }))
    .get("/api/dashboard", (_req, { url }) => dashboard(url))
    .get("/api/history", (_req, { url }) => history.history(url))
    .get("/api/history/series", (_req, { url }) => history.series(url))
    .get("/api/history.csv", (_req, { url }) => history.csv(url));
  /** What the token opens, alarm acknowledgements and clears among it. */
  const alarms = alarmRoutes(new Router(), gateway, log);
  const paths = ["/", "/healthz", ...data.paths, ...alarms.paths];

  const fetch: Handler = async (req, info) => {
    const url = new URL(req.url);
    const path = url.pathname;
    const page = open.route(req, info, url);
    if (page) return await page;
    if (opts.devices && path.startsWith("/devices/")) {
      return await opts.devices(req, () => access.authorize(req) === "ok");
    }
    if (req.method === "POST" && !alarms.has(path)) {
      return methodNotAllowed("POST", "GET, HEAD", path);
    }
    if (req.method !== "GET" && req.method !== "HEAD" && req.method !== "POST") {
      return methodNotAllowed(req.method, "GET, HEAD, POST");
    }
    if (!data.has(path) && !alarms.has(path)) {
      return json({ error: `no such path ${path}`, paths }, 404);
    }
    const auth = access.authorize(req);
    if (auth !== "ok") {
      access.refuse(
        req,
        info,
        auth === "wrong" ? "a request with a wrong token or session" : undefined,
      );
      return json(
        {
          error: "access token required: send Authorization: Bearer <token> " +
            "(outpost token show --config FILE prints it)",
        },
        401,
        { "www-authenticate": 'Bearer realm="outpost"' },
      );
    }
    const answer = alarms.route(req, info, url) ?? data.route(req, info, url);
    return answer ? await answer : methodNotAllowed(req.method, "POST", path);
  };

  const health: Handler = (req) =>
    new URL(req.url).pathname === "/healthz"
      ? healthz()
      : json({ error: "only /healthz is served here" }, 404);

  return { fetch, health, stop: () => clearInterval(sampler) };
}

/** Serves {@linkcode createGatewayApp} on `listen` (and `/healthz` alone on `healthListen`). */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { log, tokens } = opts;
  const secure = opts.tls !== undefined;
  const app = createGatewayApp(opts);
  const failure = "HTTP handler failed";
  let main: Listener;
  try {
    main = await listen(opts.listen, { log, tls: opts.tls, failure }, app.fetch);
  } catch (e) {
    app.stop();
    throw e;
  }
  let health: Listener | undefined;
  if (opts.healthListen) {
    try {
      health = await listen(opts.healthListen, { log, failure }, app.health);
    } catch (e) {
      app.stop();
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
    warnClearText(log, {
      listen: opts.listen,
      allowedBy: "http.allowInsecure",
      data: "the gateway's data",
    });
  }
  return {
    address: main.address,
    scheme,
    healthAddress: health?.address,
    close: async () => {
      app.stop();
      await Promise.all([main.close(), health?.close()]);
    },
  };
}
