import {
  type AdapterContext,
  defineAdapter,
  type EmitResult,
  isLoopbackListen,
  sleep,
  within,
} from "../../src/adapter.ts";
import { type HttpIngestConfig, httpIngestSchema } from "./config.ts";
import { TokenSet } from "./_auth.ts";
import { parseBody } from "./_body.ts";
import { RateLimiter } from "./_rate.ts";

export { type HttpIngestConfig, httpIngestSchema } from "./config.ts";
export { type BodyResult, parseBody } from "./_body.ts";
export { type TokenEntry, TokenSet } from "./_auth.ts";
export { RateLimiter, type TakeResult } from "./_rate.ts";

/** The ingest endpoint could not listen on its address. */
export class HttpListenError extends Error {
  override name = "HttpListenError";
}

type BodyText = { text: string } | { status: 400 | 408 | 413 | 503; error: string };

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Reads the PEM files of `tls`; the error names the file that cannot be read. */
async function readTls(tls: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const read = async (what: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new HttpListenError(`Cannot read tls.${what} "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  };
  return { cert: await read("cert", tls.cert), key: await read("key", tls.key) };
}

/** How long stop waits for client connections to close after the last response. */
const STOP_GRACE_MS = 3000;

function reply(status: number, body: unknown, headers?: Record<string, string>): Response {
  return Response.json(body, { status, headers });
}

/** Reads at most `max` bytes of the body within `timeoutMs`; stops reading at the first byte over. */
async function readBody(
  req: Request,
  max: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<BodyText> {
  if (!req.body) return { text: "" };
  const reader = req.body.getReader();
  const done = new AbortController();
  const timeout = sleep(timeoutMs, AbortSignal.any([signal, done.signal])).then(() =>
    signal.aborted ? "stopping" as const : "timeout" as const
  );
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const r = await Promise.race([reader.read(), timeout]);
      if (r === "timeout") {
        reader.cancel().catch(() => {});
        return { status: 408, error: `body not received within ${timeoutMs}ms` };
      }
      if (r === "stopping") {
        reader.cancel().catch(() => {});
        return { status: 503, error: "gateway is stopping; nothing stored, send again" };
      }
      if (r.done) break;
      size += r.value.byteLength;
      if (size > max) {
        reader.cancel().catch(() => {});
        return { status: 413, error: `body exceeds maxBody of ${max} bytes` };
      }
      chunks.push(r.value);
    }
  } catch (e) {
    return { status: 400, error: `cannot read body: ${(e as Error).message}` };
  } finally {
    done.abort();
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  try {
    return { text: decoder.decode(bytes) };
  } catch {
    return { status: 400, error: "body is not UTF-8 text" };
  }
}

function splitListen(listen: string): { hostname: string; port: number } {
  const at = listen.lastIndexOf(":");
  return {
    hostname: listen.slice(0, at).replace(/^\[|\]$/g, ""),
    port: Number(listen.slice(at + 1)),
  };
}

/** Builds the request handler of one adapter instance. */
function handler(
  config: HttpIngestConfig,
  deps: Pick<AdapterContext<HttpIngestConfig>, "emit" | "log" | "count" | "signal">,
): (req: Request) => Promise<Response> {
  const tokens = new TokenSet(config.tokens);
  const limiter = new RateLimiter(config.rate.perSecond, config.rate.burst);
  const { emit, log, count, signal } = deps;
  const refuse = (status: number, error: string, headers?: Record<string, string>) => {
    count(`status_${status}`);
    log.debug("request refused", { status, error });
    return reply(status, { error }, headers);
  };
  return async (req) => {
    const url = new URL(req.url);
    if (url.pathname !== config.path) {
      return refuse(404, `not found; POST readings to ${config.path}`);
    }
    if (req.method !== "POST") return refuse(405, "use POST", { Allow: "POST" });
    count("requests");
    const token = tokens.find(req.headers.get("authorization"));
    if (!token) {
      return refuse(401, "missing or wrong token; send Authorization: Bearer <token>", {
        "WWW-Authenticate": 'Bearer realm="outpost"',
      });
    }
    const length = req.headers.get("content-length");
    if (length !== null && Number(length) > config.maxBody) {
      count("refused_size");
      return refuse(413, `body of ${length} bytes exceeds maxBody of ${config.maxBody} bytes`);
    }
    const body = await readBody(req, config.maxBody, config.bodyTimeout, signal);
    if ("error" in body) {
      if (body.status === 413) count("refused_size");
      return refuse(body.status, body.error, body.status === 503 ? { "Retry-After": "5" } : {});
    }
    const now = Date.now();
    const parsed = parseBody(body.text, now, config.maxReadings);
    if ("error" in parsed) {
      if (parsed.reason) count(`refused_${parsed.reason}`);
      return refuse(parsed.status, parsed.error);
    }
    const { readings } = parsed;
    const perDevice = new Map<string, number>();
    for (let i = 0; i < readings.length; i++) {
      const device = readings[i].device;
      if (token.devices && !token.devices.has(device)) {
        return refuse(403, `token "${token.name}" may not post for device "${device}" (item ${i})`);
      }
      perDevice.set(device, (perDevice.get(device) ?? 0) + 1);
    }
    const rate = limiter.take(perDevice, now);
    if (!rate.ok) {
      if ("overBurst" in rate) {
        return refuse(
          413,
          `${
            perDevice.get(rate.device)
          } readings for device "${rate.device}" in one request; at most ${config.rate.burst} (rate.burst): split the batch`,
        );
      }
      const seconds = Math.max(1, Math.ceil(rate.retryAfterMs / 1000));
      return refuse(
        429,
        `device "${rate.device}" exceeds its rate of ${config.rate.perSecond}/s; retry in ${seconds}s`,
        { "Retry-After": String(seconds) },
      );
    }
    let result: EmitResult;
    try {
      result = await emit(readings);
    } catch (e) {
      count("emit_failures");
      log.error("emit failed", { readings: readings.length, error: e as Error });
      return refuse(503, `readings not stored: ${(e as Error).message}`, { "Retry-After": "1" });
    }
    count("readings", result.accepted);
    if (result.rejected) count("rejected", result.rejected);
    return reply(200, { accepted: result.accepted, rejected: result.rejected });
  };
}

/**
 * HTTP ingest: devices POST one reading or a batch as JSON with a bearer token, over HTTPS with
 * `tls`. Answers 200
 * `{"accepted":n}` only once the readings are durable in the buffer; 400/401/403/413/429 say why not.
 *
 * @example
 * ```yaml
 * - type: http
 *   name: ingest
 *   listen: 127.0.0.1:8788
 *   tokens:
 *     - token: ${INGEST_TOKEN}
 *       devices: [esp-1]
 * ```
 */
export const httpAdapter = defineAdapter<HttpIngestConfig>({
  type: "http",
  schema: httpIngestSchema,
  claims: (config) => ({ listen: [{ address: config.listen, at: ["listen"] }] }),
  async start({ config, emit, log, signal, count }) {
    const { hostname, port } = splitListen(config.listen);
    const tls = config.tls ? await readTls(config.tls) : undefined;
    const scheme = tls ? "https" : "http";
    let server: Deno.HttpServer;
    try {
      // No `signal` here: aborting it drops in-flight connections, so a device whose readings
      // were already stored would get no 200 and send them again. shutdown() lets them finish.
      server = Deno.serve({
        hostname,
        port,
        ...(tls ? { cert: tls.cert, key: tls.key } : {}),
        onListen: (addr) => {
          log.info("listening", {
            url: `${scheme}://${addr.hostname}:${addr.port}${config.path}`,
          });
          if (!tls && !isLoopbackListen(config.listen)) {
            log.warn(
              "serving without TLS on an address other machines can reach (allowInsecure): " +
                "device tokens and readings cross the network in clear",
              { listen: config.listen },
            );
          }
        },
        onError: (e) => {
          log.error("request failed", { error: e as Error });
          return reply(500, { error: "internal error" });
        },
      }, handler(config, { emit, log, count, signal }));
    } catch (e) {
      throw new HttpListenError(`Cannot listen on "${config.listen}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    const stopping = new Promise<void>((resolve) => {
      const stop = () => {
        server.shutdown();
        resolve();
      };
      if (signal.aborted) stop();
      else signal.addEventListener("abort", stop, { once: true });
    });
    await Promise.race([server.finished, stopping]);
    // shutdown() lets requests in flight finish. A client that stops sending mid-body (it got a
    // 503) would hold its connection, and so the gateway's stop, open: give up on it after a grace.
    const closed = await within(server.finished, STOP_GRACE_MS);
    if (!closed) {
      log.warn("stopped with client connections still open", { graceMs: STOP_GRACE_MS });
      server.unref();
    }
  },
});
