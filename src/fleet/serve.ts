/**
 * `outpost fleet serve`: the fleet page. Gateways live from their retained statuses, buttons that
 * restart or update one, a selection or all, each command's replies as they come, and CSV export
 * of a device's data with progress. Access takes a token, as the gateway page does: the page logs
 * in with it (`POST /login` → session cookie), scripts send `Authorization: Bearer`.
 *
 * This file wires the parts and routes requests: access, responses and listening come from the
 * shared HTTP layer (src/common/http/), commands and exports from serve_jobs.ts, the snapshot and
 * its event stream from serve_live.ts.
 */
import {
  asset,
  CSS,
  empty,
  type Handler,
  HTML,
  JAVASCRIPT,
  json,
  listen,
  type Listener,
  MemoryToken,
  methodNotAllowed,
  PageAccess,
  RequestError,
  Router,
  sameOrigin,
  type TlsPem,
  type TokenCheck,
  warnClearText,
} from "../common/http/mod.ts";
import { isLoopbackListen } from "../config/gateway.ts";
import { TokenStore } from "../http/token.ts";
import type { Logger } from "../log.ts";
import { type Fleet, FleetError } from "./client.ts";
import type { FleetPages } from "./config.ts";
import { FLEET_PAGE_HTML, FLEET_PAGE_STYLE } from "./page.ts";
// The page's script: plain JavaScript with JSDoc types that deno check and lint cover, served
// byte for byte as it is in the file (deno compile and deno bundle embed it).
import FLEET_PAGE_SCRIPT from "./page_script.js" with { type: "text" };
import FLEET_RESULTS_SCRIPT from "./page_results.js" with { type: "text" };
import FLEET_LISTS_SCRIPT from "./page_lists.js" with { type: "text" };
import FLEET_UPDATES_SCRIPT from "./page_updates.js" with { type: "text" };
import { CommandJobs, ExportJobs } from "./serve_jobs.ts";
import { fleetSnapshot, LiveStreams } from "./serve_live.ts";

/** The session cookie of the fleet page. */
const SESSION_COOKIE = "outpost_fleet_session";

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
  tls?: TlsPem;
  /** Allow a non-loopback address without TLS. */
  allowInsecureHttp?: boolean;
  log: Logger;
  /** Where CSV exports are written until downloaded; a new temp dir when absent. */
  exportDir?: string;
  /** Links to each gateway's own page when its status has none (`pages:` of the connection). */
  pages?: FleetPages;
}

/** A running fleet page server. */
export interface FleetServer {
  address: string;
  scheme: "http" | "https";
  url: string;
  close(): Promise<void>;
}

/** The fleet page's handlers, ready to be served or called without a socket. */
export interface FleetApp {
  /** Every path of the page and its API. */
  fetch: Handler;
  /** Ends the event streams, runs and exports. */
  stop(): void;
  /** Stops, and removes the export directory when the app made it. */
  close(): Promise<void>;
}

/**
 * The fleet page and its API: the page and its assets open, `POST /login` and `/logout`, and
 * `/api/…` behind the token (bearer or session cookie). Every POST must be same-origin.
 */
export async function createFleetApp(
  fleet: Fleet,
  opts: Omit<FleetServerOptions, "listen" | "allowInsecureHttp">,
): Promise<FleetApp> {
  const { log } = opts;
  const exportDir = opts.exportDir ?? await Deno.makeTempDir({ prefix: "outpost-fleet-export-" });
  const ownDir = opts.exportDir === undefined;
  const lifetime = new AbortController();
  const changed = () => live.changed();
  const ctx = { fleet, log, signal: lifetime.signal, changed };
  const commands = new CommandJobs(ctx);
  const exports = new ExportJobs(ctx, exportDir);
  const snapshot = () => fleetSnapshot(fleet, commands.list, exports.list, opts.pages);
  const live = new LiveStreams(snapshot, lifetime.signal);
  const offChange = fleet.onChange(changed);
  const offConn = fleet.onConnection(changed);
  const access = new PageAccess({
    tokens: opts.tokens,
    cookie: SESSION_COOKIE,
    secure: opts.tls !== undefined,
    log,
    quiet: "further refusals are not logged for 1 min",
  });

  /** The page and its assets, without a token. */
  const page = new Router()
    .get("/", () => asset(FLEET_PAGE_HTML, HTML))
    .get("/fleet.css", () => asset(FLEET_PAGE_STYLE, CSS))
    .get("/fleet.js", () => asset(FLEET_PAGE_SCRIPT, JAVASCRIPT))
    .get("/fleet-results.js", () => asset(FLEET_RESULTS_SCRIPT, JAVASCRIPT))
    .get("/fleet-lists.js", () => asset(FLEET_LISTS_SCRIPT, JAVASCRIPT))
    .get("/fleet-updates.js", () => asset(FLEET_UPDATES_SCRIPT, JAVASCRIPT))
    .get("/favicon.ico", () => empty(204));
  /** `/api/…` once the request is authorized. */
  const api = new Router()
    .post("/api/commands", (req) => commands.start(req))
    .post("/api/exports", (req) => exports.start(req))
    .get("/api/fleet", () => json(snapshot()))
    .get("/api/events", (req) => live.open(() => access.authorize(req) === "ok"))
    .get(/\/api\/exports\/([0-9a-f-]{36})\.csv/, (_req, { params }) => exports.download(params[0]))
    .get(
      /\/api\/commands\/([0-9a-f-]{36})\/([^/]+)/,
      (_req, { params }) => commands.result(params[0], decodeSegment(params[1])),
    );

  const fetch: Handler = async (req, info) => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (req.method === "POST") {
      if (!sameOrigin(req)) return json({ error: "cross-origin request refused" }, 403);
      if (path === "/login") return await access.login(req, info);
      if (path === "/logout") return await access.logout(req);
    } else if (req.method !== "GET" && req.method !== "HEAD") {
      return methodNotAllowed(req.method, "GET, HEAD, POST");
    } else {
      const asset = page.route(req, info, url);
      if (asset) return await asset;
    }
    if (!path.startsWith("/api/")) return json({ error: `no such path ${path}` }, 404);
    if (access.authorize(req) !== "ok") {
      access.refuse(req, info, "a request without a valid token");
      return json(
        { error: "access token required: log in on the page or send Authorization: Bearer" },
        401,
        { "www-authenticate": 'Bearer realm="outpost-fleet"' },
      );
    }
    try {
      const answer = api.route(req, info, url);
      if (answer) return await answer;
    } catch (e) {
      if (e instanceof RequestError) return json({ error: e.message }, e.status);
      throw e;
    }
    if (req.method === "POST") return methodNotAllowed("POST", undefined, path);
    return json({ error: `no such path ${path}` }, 404);
  };

  const stop = () => {
    offChange();
    offConn();
    lifetime.abort();
    live.closeAll();
  };
  return {
    fetch,
    stop,
    close: async () => {
      stop();
      if (ownDir) await Deno.remove(exportDir, { recursive: true }).catch(() => {});
    },
  };
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
  const app = await createFleetApp(fleet, opts);
  let server: Listener;
  try {
    server = await listen(
      opts.listen,
      { log, tls: opts.tls, failure: "fleet page handler failed" },
      app.fetch,
    );
  } catch (e) {
    await app.close();
    throw new FleetError((e as Error).message, { cause: (e as Error).cause });
  }
  const scheme = secure ? "https" : "http";
  if (!secure && !isLoopbackListen(opts.listen)) {
    warnClearText(log, {
      listen: opts.listen,
      allowedBy: "--allow-insecure-http",
      data: "the fleet's data",
    });
  }
  return {
    address: server.address,
    scheme,
    url: `${scheme}://${server.address}/`,
    close: async () => {
      app.stop();
      await server.close();
      await app.close();
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
  /** Links to each gateway's own page when its status has none. */
  pages?: FleetPages;
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
    pages: opts.pages,
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

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new RequestError(400, `not a valid path segment: ${s}`);
  }
}

function readFirstLine(path: string): string {
  return Deno.readTextFileSync(path).split("\n")[0].trim();
}
