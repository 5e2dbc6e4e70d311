/**
 * `outpost fleet serve`: the fleet page. Gateways live from their retained statuses, buttons that
 * restart or update one, a selection or all, each command's replies as they come, and CSV export
 * of a device's data with progress. Access takes a token, as the gateway page does: the page logs
 * in with it (`POST /login` → session cookie), scripts send `Authorization: Bearer`.
 */
import { createHmac } from "node:crypto";
import { isLoopbackListen } from "../config/gateway.ts";
import { parseListen } from "../http/server.ts";
import { generateToken, secretEquals, SESSION_MAX_AGE_SECONDS, TokenStore } from "../http/token.ts";
import type { Logger } from "../log.ts";
import { type Fleet, FleetError, type GatewayView } from "./client.ts";
import { exportCsv, type ExportProgress } from "./export.ts";
import { type CommandRun, expectsRestart, type RunSummary, type TargetResult } from "./run.ts";
import { FLEET_PAGE_HTML, FLEET_PAGE_SCRIPT, FLEET_PAGE_STYLE } from "./page.ts";

/** Commands the page may send. */
export const PAGE_COMMANDS = ["ping", "restart", "update-check", "update-apply"] as const;

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

interface Op {
  id: string;
  cmd: string;
  targets: readonly string[] | "all";
  args: Record<string, unknown>;
  createdAt: number;
  run: CommandRun;
  summary: RunSummary;
  settled: boolean;
}

interface ExportJob {
  id: string;
  gateway: string;
  device: string;
  metric?: string;
  from: number;
  to?: number;
  createdAt: number;
  state: "running" | "done" | "error";
  progress: ExportProgress;
  error?: string;
  file: string;
  name: string;
}

const SESSION_COOKIE = "outpost_fleet_session";
const MAX_BODY = 64 * 1024;
const KEEP_OPS = 50;
const KEEP_EXPORTS = 10;
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

function gatewayJson(g: GatewayView) {
  return {
    id: g.id,
    state: g.state,
    stale: g.stale,
    version: g.version,
    backlog: g.backlog,
    oldestPendingAgeMs: g.oldestPendingAgeMs,
    lastSeen: g.lastSeen,
    startedAt: g.startedAt,
    reason: g.reason,
    operator: g.operator,
  };
}

function targetJson(t: TargetResult) {
  return {
    gatewayId: t.gatewayId,
    state: t.state,
    finished: t.finished,
    ok: t.ok,
    sentAt: t.sentAt,
    finishedAt: t.finishedAt ?? null,
    error: t.error ?? null,
    note: t.note ?? null,
    progress: t.progress ?? null,
    before: t.before,
    after: t.after ?? null,
    result: t.result === undefined ? null : t.result,
  };
}

async function readJson(req: Request): Promise<Record<string, unknown>> {
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > MAX_BODY) throw new RequestError(413, "request too large");
  const text = await req.text();
  if (text.length > MAX_BODY) throw new RequestError(413, "request too large");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RequestError(400, "expected a JSON body");
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new RequestError(400, "expected a JSON object");
  }
  return body as Record<string, unknown>;
}

class RequestError extends Error {
  override name = "RequestError";
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function parseTargets(v: unknown): readonly string[] | "all" {
  if (v === "all") return "all";
  if (
    !Array.isArray(v) || v.length === 0 ||
    !v.every((x) => typeof x === "string" && x && x !== "fleet" && !/[/#+\s]/.test(x))
  ) {
    throw new RequestError(400, 'targets: expected "all" or a list of gateway ids');
  }
  return [...new Set(v as string[])];
}

function timeArg(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const t = typeof v === "number" ? v : Date.parse(String(v));
  if (!Number.isFinite(t)) throw new RequestError(400, `${what}: expected a time, got ${v}`);
  return t;
}

/**
 * Starts the fleet page on `listen`. A non-loopback address without TLS is refused unless
 * `allowInsecureHttp`, as the gateway's own page does.
 */
export async function startFleetServer(
  fleet: Fleet,
  opts: FleetServerOptions,
): Promise<FleetServer> {
  const { log, tokens } = opts;
  if (!isLoopbackListen(opts.listen) && !opts.tls && !opts.allowInsecureHttp) {
    throw new FleetError(insecureListenMessage(opts.listen));
  }
  const secure = opts.tls !== undefined;
  const exportDir = opts.exportDir ?? await Deno.makeTempDir({ prefix: "outpost-fleet-export-" });
  const ownDir = opts.exportDir === undefined;
  const ops: Op[] = [];
  const exports: ExportJob[] = [];
  // Each live stream with the check of the credentials it was opened with: a logout elsewhere,
  // an expired session or a rotated token ends it at the next push.
  const streams = new Map<ReadableStreamDefaultController<Uint8Array>, () => boolean>();
  const lifetime = new AbortController();
  const enc = new TextEncoder();
  let warnedAt = -Infinity;

  const snapshot = () => ({
    now: Date.now(),
    broker: fleet.url,
    prefix: fleet.prefix,
    keyid: fleet.keyid,
    connected: fleet.connected,
    lastError: fleet.lastError,
    gateways: fleet.gateways().map(gatewayJson),
    ops: ops.map((o) => ({
      id: o.id,
      cmd: o.cmd,
      targets: o.targets,
      args: o.args,
      createdAt: o.createdAt,
      settled: o.settled,
      summary: o.summary,
      results: o.run.results().map(targetJson),
    })),
    exports: exports.map((x) => ({
      id: x.id,
      gateway: x.gateway,
      device: x.device,
      metric: x.metric ?? null,
      from: x.from,
      to: x.to ?? null,
      createdAt: x.createdAt,
      state: x.state,
      progress: x.progress,
      error: x.error ?? null,
      name: x.name,
    })),
  });

  // Push the whole snapshot on a change, at most every 200 ms, and every 2 s for the ages.
  let pushTimer: ReturnType<typeof setTimeout> | undefined;
  const push = () => {
    pushTimer = undefined;
    if (!streams.size) return;
    const bytes = enc.encode(`event: fleet\ndata: ${JSON.stringify(snapshot())}\n\n`);
    for (const [c, stillAuthorized] of streams) {
      try {
        if (stillAuthorized()) c.enqueue(bytes);
        else {
          streams.delete(c);
          c.close();
        }
      } catch {
        streams.delete(c);
      }
    }
  };
  const changed = () => {
    pushTimer ??= setTimeout(push, 200);
  };
  const tick = setInterval(changed, 2000);
  lifetime.signal.addEventListener("abort", () => {
    clearInterval(tick);
    clearTimeout(pushTimer);
  });
  const offChange = fleet.onChange(changed);
  const offConn = fleet.onConnection(changed);

  const refuse = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>, why: string) => {
    const now = Date.now();
    if (now - warnedAt > 60_000) {
      warnedAt = now;
      log.warn(`refused ${why}; further refusals are not logged for 1 min`, {
        path: new URL(req.url).pathname,
        from: info.remoteAddr.hostname,
      });
    }
  };

  const authorized = (req: Request): boolean => {
    const header = req.headers.get("authorization");
    if (header !== null) {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
      return m !== null && tokens.verify(m[1]);
    }
    const session = cookieValue(req, SESSION_COOKIE);
    return session !== undefined && tokens.verifySession(session);
  };

  const cookie = (value: string, maxAge: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict` +
    (secure ? "; Secure" : "");

  const sameOrigin = (req: Request) => {
    const origin = req.headers.get("origin");
    return origin === null || origin === new URL(req.url).origin;
  };

  const login = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
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

  const startCommand = async (req: Request) => {
    const body = await readJson(req);
    const cmd = String(body.cmd ?? "");
    if (!(PAGE_COMMANDS as readonly string[]).includes(cmd)) {
      throw new RequestError(400, `cmd: expected one of ${PAGE_COMMANDS.join(", ")}`);
    }
    const targets = parseTargets(body.targets);
    const args: Record<string, unknown> = {};
    if (cmd === "update-apply" && typeof body.version === "string" && body.version.trim()) {
      args.version = body.version.trim();
    }
    const timeoutMs = cmd === "update-apply" ? 600_000 : cmd === "restart" ? 120_000 : 60_000;
    const run = fleet.send(cmd, {
      targets,
      args,
      timeoutMs,
      followRestart: expectsRestart(cmd),
      signal: lifetime.signal,
    });
    const op: Op = {
      id: run.id,
      cmd,
      targets,
      args,
      createdAt: Date.now(),
      run,
      summary: run.summary(),
      settled: false,
    };
    ops.unshift(op);
    ops.splice(KEEP_OPS);
    run.onUpdate(() => {
      op.summary = run.summary();
      changed();
    });
    run.done.then((s) => {
      op.summary = s;
      op.settled = true;
      log.info(`${cmd}: ${s.ok} of ${s.total} ok`, {
        failed: s.failed,
        timedOut: s.timedOut,
        targets: targets === "all" ? "all" : targets.join(","),
      });
      changed();
    });
    log.info(`page: ${cmd} sent`, {
      targets: targets === "all" ? `all (${run.results().length} online)` : targets.join(","),
    });
    changed();
    return json({ op: op.id, targets: run.results().map((t) => t.gatewayId) }, 202);
  };

  const startExport = async (req: Request) => {
    const body = await readJson(req);
    const gateway = String(body.gateway ?? "");
    const device = String(body.device ?? "");
    const metric = typeof body.metric === "string" && body.metric ? body.metric : undefined;
    if (!gateway || /[/#+\s]/.test(gateway)) throw new RequestError(400, "gateway: required");
    if (!device) throw new RequestError(400, "device: required");
    const from = timeArg(body.from, "from");
    const to = timeArg(body.to, "to");
    if (from === undefined) throw new RequestError(400, "from: required");
    if (to !== undefined && to <= from) throw new RequestError(400, "to must be after from");
    const id = crypto.randomUUID();
    const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, "_");
    const job: ExportJob = {
      id,
      gateway,
      device,
      metric,
      from,
      to,
      createdAt: Date.now(),
      state: "running",
      progress: { pages: 0, rows: 0, lastTs: null },
      file: `${exportDir}/${id}.csv`,
      name: `${safe(gateway)}-${safe(device)}${metric ? `-${safe(metric)}` : ""}.csv`,
    };
    exports.unshift(job);
    for (const old of exports.splice(KEEP_EXPORTS)) {
      await Deno.remove(old.file).catch(() => {});
    }
    changed();
    exportCsv(fleet, {
      gatewayId: gateway,
      device,
      metric,
      from,
      to,
      out: job.file,
      signal: lifetime.signal,
      onProgress: (p) => {
        job.progress = p;
        changed();
      },
    }).then((r) => {
      job.progress = { pages: r.pages, rows: r.rows, lastTs: r.lastTs };
      job.state = "done";
      log.info(`export of ${gateway}/${device}: ${r.rows} rows in ${r.pages} page(s)`);
    }, (e) => {
      job.state = "error";
      job.error = (e as Error).message;
      log.warn(`export of ${gateway}/${device} failed: ${job.error}`);
    }).finally(changed);
    return json({ export: id }, 202);
  };

  const download = async (id: string) => {
    const job = exports.find((x) => x.id === id);
    if (!job) return json({ error: "no such export" }, 404);
    if (job.state !== "done") return json({ error: `export is ${job.state}` }, 409);
    const file = await Deno.open(job.file, { read: true });
    return new Response(file.readable, {
      headers: {
        ...BASE_HEADERS,
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${job.name}"`,
      },
    });
  };

  const events = (req: Request) => {
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
        streams.set(c, () => authorized(req));
        c.enqueue(enc.encode(`retry: 1000\nevent: fleet\ndata: ${JSON.stringify(snapshot())}\n\n`));
      },
      cancel() {
        streams.delete(ctl);
      },
    });
    return new Response(body, {
      headers: { ...BASE_HEADERS, "content-type": "text/event-stream; charset=utf-8" },
    });
  };

  const handler = async (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (req.method === "GET" || req.method === "HEAD") {
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
    } else if (req.method !== "POST") {
      return json({ error: `method ${req.method} not allowed` }, 405, { allow: "GET, HEAD, POST" });
    }
    if (req.method === "POST") {
      if (!sameOrigin(req)) return json({ error: "cross-origin request refused" }, 403);
      if (path === "/login") return await login(req, info);
      if (path === "/logout") {
        return new Response(null, {
          status: 204,
          headers: { ...BASE_HEADERS, "set-cookie": cookie("", 0) },
        });
      }
    }
    if (!path.startsWith("/api/")) return json({ error: `no such path ${path}` }, 404);
    if (!authorized(req)) {
      refuse(req, info, "a request without a valid token");
      return json(
        { error: "access token required: log in on the page or send Authorization: Bearer" },
        401,
        { "www-authenticate": 'Bearer realm="outpost-fleet"' },
      );
    }
    try {
      if (req.method === "POST") {
        if (path === "/api/commands") return await startCommand(req);
        if (path === "/api/exports") return await startExport(req);
        return json({ error: `method POST not allowed on ${path}` }, 405);
      }
      if (path === "/api/fleet") return json(snapshot());
      if (path === "/api/events") return events(req);
      const m = /^\/api\/exports\/([0-9a-f-]{36})\.csv$/.exec(path);
      if (m) return await download(m[1]);
      return json({ error: `no such path ${path}` }, 404);
    } catch (e) {
      if (e instanceof RequestError) return json({ error: e.message }, e.status);
      throw e;
    }
  };

  const { hostname, port } = parseListen(opts.listen);
  let httpServer: Deno.HttpServer<Deno.NetAddr> | undefined;
  const address = await new Promise<string>((resolve, reject) => {
    try {
      httpServer = Deno.serve({
        hostname,
        port,
        signal: lifetime.signal,
        ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
        onListen: (addr) => {
          const a = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
          resolve(`${a}:${addr.port}`);
        },
        onError: (e) => {
          log.error("fleet page handler failed", { error: (e as Error).message });
          return json({ error: "internal error" }, 500);
        },
      }, handler);
    } catch (e) {
      reject(
        new FleetError(`Cannot listen on "${opts.listen}": ${(e as Error).message}`, { cause: e }),
      );
    }
  }).catch(async (e) => {
    offChange();
    offConn();
    lifetime.abort();
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
      offChange();
      offConn();
      lifetime.abort();
      for (const c of streams.keys()) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      streams.clear();
      await httpServer?.finished;
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
