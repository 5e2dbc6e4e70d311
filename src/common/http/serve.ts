/**
 * Listening: one `Deno.serve` listener per address (HTTP or HTTPS), resolved once it listens,
 * and {@linkcode request}, which runs a handler on a request without a socket (for tests).
 */
import type { Logger } from "../../log.ts";
import type { ServeInfo } from "./auth.ts";
import { json } from "./response.ts";

/** Answers a request (what `Deno.serve` calls). */
export type Handler = (req: Request, info: ServeInfo) => Response | Promise<Response>;

/** PEM certificate and key for HTTPS (file contents, not paths). */
export interface TlsPem {
  cert: string;
  key: string;
}

/** Splits `host:port` (with `[v6]` hosts). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  return { hostname: host, port: Number(listen.slice(i + 1)) };
}

/** `host:port` of a bound address, with `[v6]` hosts. */
export function formatAddress(addr: Deno.NetAddr): string {
  return `${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
}

/** Options of {@linkcode listen}. */
export interface ListenOptions {
  log: Logger;
  /** Serve HTTPS with this certificate. */
  tls?: TlsPem;
  /** Logged when a handler throws, e.g. "HTTP handler failed"; the client gets a JSON 500. */
  failure: string;
}

/** A bound listener. */
export interface Listener {
  /** The address actually bound, `host:port`. */
  address: string;
  /** Stops listening and waits for open requests to end. */
  close(): Promise<void>;
}

/**
 * Serves `handler` on `listen` (`host:port`, port 0 picks a free one). Rejects with an error that
 * names the address when it cannot listen.
 */
export function listen(address: string, opts: ListenOptions, handler: Handler): Promise<Listener> {
  const { hostname, port } = parseListen(address);
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname,
        port,
        signal: ac.signal,
        ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
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
          opts.log.error(opts.failure, { error: (e as Error).message });
          return json({ error: "internal error" }, 500);
        },
      }, handler);
    } catch (e) {
      reject(new Error(`Cannot listen on "${address}": ${(e as Error).message}`, { cause: e }));
    }
  });
}

/**
 * Warns that a listener without TLS on an address other machines can reach sends the access
 * token and the data in clear; `allowedBy` names the setting that allowed it, `data` whose data.
 */
export function warnClearText(
  log: Logger,
  opts: { listen: string; allowedBy: string; data: string },
): void {
  log.warn(
    `serving without TLS on an address other machines can reach (${opts.allowedBy}): the ` +
      `access token and ${opts.data} cross the network in clear`,
    { listen: opts.listen },
  );
}

/**
 * Runs `handler` on a request for `path` without a socket, as if it came from 127.0.0.1.
 *
 * @example
 * ```ts
 * const res = await request(app.fetch, "/healthz");
 * ```
 */
export async function request(
  handler: Handler,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  const req = new Request(new URL(path, "http://127.0.0.1"), init);
  const info: ServeInfo = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    completed: Promise.resolve(),
  };
  return await handler(req, info);
}
