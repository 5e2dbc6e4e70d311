import type { Gateway } from "../gateway.ts";
import type { Logger } from "../log.ts";
import { METRICS_CONTENT_TYPE, processStats, renderMetrics } from "./metrics.ts";

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  gateway: Gateway;
  log: Logger;
}

/** A running local HTTP server. */
export interface HttpServer {
  /** The address actually bound, `host:port`. */
  address: string;
  close(): Promise<void>;
}

/** Splits `host:port` (with `[v6]` hosts). */
export function parseListen(listen: string): { hostname: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  return { hostname: host, port: Number(listen.slice(i + 1)) };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

const PATHS = ["/healthz", "/status", "/metrics"];

/** Serves `/healthz`, `/status` and `/metrics` for the local operator and supervisors. */
export function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { hostname, port } = parseListen(opts.listen);
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer;
    try {
      server = Deno.serve({
        hostname,
        port,
        signal: ac.signal,
        onListen: (addr) => {
          const address = `${
            addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
          }:${addr.port}`;
          opts.log.info(`HTTP on http://${address} (${PATHS.join(", ")})`);
          resolve({
            address,
            close: async () => {
              ac.abort();
              await server.finished;
            },
          });
        },
        onError: (e) => {
          opts.log.error("HTTP handler failed", { error: (e as Error).message });
          return json({ error: "internal error" }, 500);
        },
      }, (req) => {
        const url = new URL(req.url);
        if (req.method !== "GET" && req.method !== "HEAD") {
          return json({ error: `method ${req.method} not allowed` }, 405);
        }
        switch (url.pathname) {
          case "/healthz": {
            const h = opts.gateway.health();
            return json(h, h.ok ? 200 : 503);
          }
          case "/status":
            return json(opts.gateway.status());
          case "/metrics":
            return new Response(
              renderMetrics(opts.gateway.status(), { process: processStats() }),
              { headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" } },
            );
          default:
            return json({ error: `no such path ${url.pathname}`, paths: PATHS }, 404);
        }
      });
    } catch (e) {
      reject(
        new Error(`Cannot listen on "${opts.listen}": ${(e as Error).message}`, { cause: e }),
      );
    }
  });
}
