/**
 * `outpost fleet serve`: the fleet page. Gateways live from their retained statuses, buttons that
 * restart or update one, a selection or all, each command's replies as they come, and CSV export
 * of a device's data with progress. Access takes a token, as the gateway page does: the page logs
 * in with it (`POST /login` → session cookie), scripts send `Authorization: Bearer`.
 *
 * This file wires the parts and routes requests: access in serve_auth.ts, commands and exports in
 * serve_jobs.ts, the snapshot and its event stream in serve_live.ts.
 */
import { isLoopbackListen } from "../config/gateway.ts";
import { parseListen } from "../http/server.ts";
import { TokenStore } from "../http/token.ts";
import type { Logger } from "../log.ts";
import { type Fleet, FleetError } from "./client.ts";
import { FLEET_PAGE_HTML, FLEET_PAGE_STYLE } from "./page.ts";
// The page's script: plain JavaScript with JSDoc types that deno check and lint cover, served
// byte for byte as it is in the file (deno compile and deno bundle embed it).
import FLEET_PAGE_SCRIPT from "./page_script.js" with { type: "text" };
import { MemoryToken, PageAuth, type TokenCheck } from "./serve_auth.ts";
import { asset, BASE_HEADERS, json, RequestError } from "./serve_http.ts";
import { CommandJobs, ExportJobs } from "./serve_jobs.ts";
import { fleetSnapshot, LiveStreams } from "./serve_live.ts";

/** Why a non-loopback address without TLS is refused, and what to do instead. */
export function insecureListenMessage(listen: string): string {
  return `"${listen}" accepts connections from other machines, and without TLS the access ` +
    `token and every gateway's data would cross the network in clear: give --https-cert ` +
    `and --https-key, listen on 127.0.0.1, or add --allow-insecure-http (trusted networks only)`;
}

/** Options of {@linkcode startFleetServer}. */
export interface FleetServerOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  tokens: TokenCheck;
  /** PEM contents; HTTPS when given. */
  tls?: { cert: string; key: string };
  /** Allow a non-loopback address without TLS. */
  allowInsecureHttp?: boolean;
  log: Logger;
  /** Where CSV exports are written until downloaded; a new temp dir when absent. */
  exportDir?: string;
}

/** A running fleet page server. */
export interface FleetServer {
  address: string;
  scheme: "http" | "https";
  url: string;
  close(): Promise<void>;
}

/** The parts a request is routed to. */
interface Routes {
  auth: PageAuth;
  live: LiveStreams;
  commands: CommandJobs;
  exports: ExportJobs;
  snapshot: () => unknown;
}

/** The page and its assets, without a token. */
function pageAsset(path: string): Response | undefined {
  switch (path) {
    case "/":
      return asset(FLEET_PAGE_HTML, "text/html; charset=utf-8");
    case "/fleet.css":
      return asset(FLEET_PAGE_STYLE, "text/css; charset=utf-8");
    case "/fleet.js":
      return asset(FLEET_PAGE_SCRIPT, "text/javascript; charset=utf-8");
    case "/favicon.ico":
      return new Response(null, { status: 204, headers: BASE_HEADERS });
  }
  return undefined;
}

/** `/api/…` once the request is authorized. */
async function api(r: Routes, req: Request, path: string): Promise<Response> {
  try {
    if (req.method === "POST") {
      if (path === "/api/commands") return await r.commands.start(req);
      if (path === "/api/exports") return await r.exports.start(req);
      return json({ error: `method POST not allowed on ${path}` }, 405);
    }
    if (path === "/api/fleet") return json(r.snapshot());
    if (path === "/api/events") return r.live.open(() => r.auth.authorized(req));
    const m = /^\/api\/exports\/([0-9a-f-]{36})\.csv$/.exec(path);
    if (m) return await r.exports.download(m[1]);
    return json({ error: `no such path ${path}` }, 404);
  } catch (e) {
    if (e instanceof RequestError) return json({ error: e.message }, e.status);
    throw e;
  }
}

/** Every request: assets, login and logout, then the API behind the token. */
async function route(
  r: Routes,
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (req.method === "GET" || req.method === "HEAD") {
    const page = pageAsset(path);
    if (page) return page;
  } else if (req.method !== "POST") {
    return json({ error: `method ${req.method} not allowed` }, 405, { allow: "GET, HEAD, POST" });
  }
  if (req.method === "POST") {
    if (!r.auth.sameOrigin(req)) return json({ error: "cross-origin request refused" }, 403);
    if (path === "/login") return await r.auth.login(req, info);
    if (path === "/logout") return r.auth.logout();
  }
  if (!path.startsWith("/api/")) return json({ error: `no such path ${path}` }, 404);
  if (!r.auth.authorized(req)) {
    r.auth.refuse(req, info, "a request without a valid token");
    return json(
      { error: "access token required: log in on the page or send Authorization: Bearer" },
      401,
      { "www-authenticate": 'Bearer realm="outpost-fleet"' },
    );
  }
  return await api(r, req, path);
}

/** Serves `handler` on `opts.listen`; resolves with the bound `host:port`. */
async function listen(
  opts: FleetServerOptions,
  signal: AbortSignal,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Promise<{ address: string; server: Deno.HttpServer<Deno.NetAddr> }> {
  const { hostname, port } = parseListen(opts.listen);
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  const address = await new Promise<string>((resolve, reject) => {
    try {
      server = Deno.serve({
        hostname,
        port,
        signal,
        ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
        onListen: (addr) => {
          const a = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
          resolve(`${a}:${addr.port}`);
        },
        onError: (e) => {
          opts.log.error("fleet page handler failed", { error: (e as Error).message });
          return json({ error: "internal error" }, 500);
        },
      }, handler);
    } catch (e) {
      reject(
        new FleetError(`Cannot listen on "${opts.listen}": ${(e as Error).message}`, { cause: e }),
      );
    }
  });
  return { address, server: server! };
}

/**
 * Starts the fleet page on `listen`. A non-loopback address without TLS is refused unless
 * `allowInsecureHttp`, as the gateway's own page does.
 */
export async function startFleetServer(
  fleet: Fleet,
  opts: FleetServerOptions,
): Promise<FleetServer> {
  const { log } = opts;
  if (!isLoopbackListen(opts.listen) && !opts.tls && !opts.allowInsecureHttp) {
    throw new FleetError(insecureListenMessage(opts.listen));
  }
  const secure = opts.tls !== undefined;
  const exportDir = opts.exportDir ?? await Deno.makeTempDir({ prefix: "outpost-fleet-export-" });
  const ownDir = opts.exportDir === undefined;
  const lifetime = new AbortController();
  const changed = () => live.changed();
  const ctx = { fleet, log, signal: lifetime.signal, changed };
  const commands = new CommandJobs(ctx);
  const exports = new ExportJobs(ctx, exportDir);
  const snapshot = () => fleetSnapshot(fleet, commands.list, exports.list);
  const live = new LiveStreams(snapshot, lifetime.signal);
  const offChange = fleet.onChange(changed);
  const offConn = fleet.onConnection(changed);
  const routes: Routes = {
    auth: new PageAuth(opts.tokens, { secure, log }),
    live,
    commands,
    exports,
    snapshot,
  };
  const stop = () => {
    offChange();
    offConn();
    lifetime.abort();
    live.closeAll();
  };
  const { address, server } = await listen(
    opts,
    lifetime.signal,
    (req, info) => route(routes, req, info),
  ).catch(async (e) => {
    stop();
    if (ownDir) await Deno.remove(exportDir, { recursive: true }).catch(() => {});
    throw e;
  });
  const scheme = secure ? "https" : "http";
  if (!secure && !isLoopbackListen(opts.listen)) {
    log.warn(
      "serving without TLS on an address other machines can reach (--allow-insecure-http): " +
        "the access token and the fleet's data cross the network in clear",
      { listen: opts.listen },
    );
  }
  return {
    address,
    scheme,
    url: `${scheme}://${address}/`,
    close: async () => {
      stop();
      await server.finished;
      if (ownDir) await Deno.remove(exportDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Options of {@linkcode serveFleet}. */
export interface ServeOptions {
  listen: string;
  tokenFile?: string;
  httpsCert?: string;
  httpsKey?: string;
  allowInsecureHttp: boolean;
  log: Logger;
  /** Prints the address and token for the operator. */
  print: (text: string) => void;
  /** Stops serving. */
  signal: AbortSignal;
}

/** `outpost fleet serve`: serves until `signal`; returns the exit status. */
export async function serveFleet(fleet: Fleet, opts: ServeOptions): Promise<number> {
  let tokens: TokenCheck;
  let tokenLine: string;
  if (opts.tokenFile) {
    const { store, created } = TokenStore.open(opts.tokenFile, opts.log);
    tokens = store;
    tokenLine = created
      ? `access token (new, saved in ${opts.tokenFile}, mode 0600): ${
        readFirstLine(opts.tokenFile)
      }`
      : `access token: the one in ${opts.tokenFile}`;
  } else {
    const mem = new MemoryToken();
    tokens = mem;
    tokenLine = `access token (for this run only): ${mem.token}`;
  }
  const read = (path: string, what: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new FleetError(`Cannot read ${what} "${path}": ${(e as Error).message}`, { cause: e });
    }
  };
  const tls = opts.httpsCert && opts.httpsKey
    ? { cert: read(opts.httpsCert, "--https-cert"), key: read(opts.httpsKey, "--https-key") }
    : undefined;
  const server = await startFleetServer(fleet, {
    listen: opts.listen,
    tokens,
    tls,
    allowInsecureHttp: opts.allowInsecureHttp,
    log: opts.log,
  });
  opts.print(`fleet page on ${server.url} (broker ${fleet.url}, prefix ${fleet.prefix})`);
  opts.print(tokenLine);
  opts.print(
    fleet.keyid
      ? `commands signed with operator key ${fleet.keyid}; each gateway's ping reply shows its scopes`
      : "no operator key (--key FILE): gateways refuse every command but ping",
  );
  // One fleet-wide ping: every gateway online says which scopes it grants this console's key;
  // a gateway seen online later gets its own, once.
  const asked = new Set(fleet.gateways().filter((g) => g.state === "online").map((g) => g.id));
  fleet.send("ping", { targets: "all", timeoutMs: 10_000, signal: opts.signal });
  const unwatch = fleet.onChange((id) => {
    const g = fleet.gateway(id);
    if (!g || g.state !== "online" || g.operator !== undefined || asked.has(id)) return;
    asked.add(id);
    fleet.send("ping", { targets: [id], timeoutMs: 10_000, signal: opts.signal });
  });
  if (!opts.signal.aborted) {
    await new Promise<void>((resolve) =>
      opts.signal.addEventListener("abort", () => resolve(), { once: true })
    );
  }
  unwatch();
  opts.log.info("stopping the fleet page");
  await server.close();
  return 0;
}

function readFirstLine(path: string): string {
  return Deno.readTextFileSync(path).split("\n")[0].trim();
}
