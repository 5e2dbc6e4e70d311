import type { HttpConfig } from "../config/gateway.ts";
import type { Logger } from "../log.ts";
import type { TlsPem } from "../common/http/mod.ts";
import { readTlsFiles } from "./server.ts";
import { readTokenFile, TokenFileError, tokenPath, TokenStore } from "./token.ts";

/** The parts of the gateway config the local HTTP server and its clients read. */
export interface LocalHttpConfig {
  http: HttpConfig;
  buffer: { path: string };
}

/** What the gateway needs to serve: address, token, TLS material. */
export interface HttpAccess {
  listen: string;
  tokens: TokenStore;
  tls?: TlsPem;
  healthListen?: string;
}

/**
 * Reads what the local HTTP server needs before the gateway starts, so a bad token file or an
 * unreadable certificate stops the process before anything runs. On first run it creates the
 * token file and tells `announce` where it is, once. The token itself is never printed: stdout
 * goes to the journal, which more users can read than the 0600 token file.
 */
export function openHttpAccess(
  config: LocalHttpConfig,
  opts: { log: Logger; announce: (msg: string, fields: Record<string, unknown>) => void },
): HttpAccess {
  const path = tokenPath(config);
  const { store, created } = TokenStore.open(path, opts.log);
  if (created) {
    opts.announce(
      `generated the access token of the gateway page, /status and /metrics in ${path} ` +
        `(mode 0600); outpost token show prints it, outpost token rotate replaces it`,
      { tokenFile: path },
    );
  }
  return {
    listen: config.http.listen,
    tokens: store,
    tls: config.http.tls ? readTlsFiles(config.http.tls) : undefined,
    healthListen: config.http.healthListen,
  };
}

/** How a tool on the gateway's machine reaches its HTTP server (`outpost status`, ...). */
export interface LocalClient {
  /** e.g. `http://127.0.0.1:8787`. */
  base: string;
  /** GET `path` with the token; rejects with a readable error when the gateway is not there. */
  get(path: string): Promise<Response>;
  close(): void;
}

/** The loopback URL of a listen address (wildcards become loopback), `https` under TLS. */
export function localUrl(http: Pick<HttpConfig, "listen" | "tls">): string {
  const host = http.listen.replace(/^0\.0\.0\.0:/, "127.0.0.1:").replace(/^\[::\]:/, "[::1]:");
  return `${http.tls ? "https" : "http"}://${host}`;
}

/** Where a gateway run with the default config listens and keeps its token. */
const DEFAULTS: LocalHttpConfig = {
  http: { listen: "127.0.0.1:8787", enabled: true, allowInsecure: false },
  buffer: { path: "data/buffer.db" },
};

/**
 * A client of the local gateway: the URL from the config (or `url`), the token from its token
 * file (or `tokenFile`); without a config, the defaults. Under TLS it trusts `ca`, else the
 * configured certificate file.
 */
export function localClient(
  config: LocalHttpConfig | undefined,
  opts: { url?: string; tokenFile?: string; ca?: string } = {},
): LocalClient {
  config ??= DEFAULTS;
  const base = (opts.url ?? localUrl(config.http)).replace(/\/$/, "");
  const file = opts.tokenFile ?? tokenPath(config);
  let token: string;
  try {
    token = readTokenFile(file);
  } catch (e) {
    const denied = (e as Error).cause instanceof Deno.errors.PermissionDenied;
    throw new TokenFileError(
      `${(e as Error).message}${
        denied ? " (it is readable by the gateway's user only: run this as that user or root)" : ""
      }`,
      { cause: e },
    );
  }
  const caFile = opts.ca ?? (base.startsWith("https:") ? config.http.tls?.cert : undefined);
  const client = caFile
    ? Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(caFile)] })
    : undefined;
  return {
    base,
    async get(path) {
      try {
        return await fetch(`${base}${path}`, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(5000),
          ...(client ? { client } : {}),
        });
      } catch (e) {
        throw new Error(`Cannot reach the gateway at "${base}": ${(e as Error).message}`, {
          cause: e,
        });
      }
    },
    close: () => client?.close(),
  };
}
