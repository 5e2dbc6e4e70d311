import { parse } from "yaml";
import { readTokenFile, tokenPath } from "../../src/http/token.ts";
import { freePort, waitFor } from "./ports.ts";
import { collectOutput } from "./proc.ts";
import { GATEWAY_PERMISSIONS, GATEWAY_V8_FLAGS } from "../../src/runtime_flags.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A gateway process started by a test. */
export interface GatewayProcess {
  pid: number;
  httpPort: number;
  configPath: string;
  /** The access token file (created by the gateway on first run). */
  tokenFile: string;
  /** The current access token, read from the token file. */
  token(): string;
  /** GET `path` (e.g. `/metrics`) with the access token. */
  get(path: string): Promise<Response>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** GET /status as JSON (with the access token). */
  status(): Promise<Record<string, unknown> & { buffer: { pending: number; rows: number } }>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, then wait for the exit; returns the exit code. */
  stop(): Promise<number>;
  exited: Promise<Deno.CommandStatus>;
}

/** Options of {@linkcode startGateway}. */
export interface StartOptions {
  waitHealthy?: boolean;
  env?: Record<string, string>;
  /** This port and no other (a restart on the same port); else a free one. */
  httpPort?: number;
  /** The port to try first before free ones (to test the helper itself). */
  firstPort?: number;
  /** More keys of the `http:` section, one YAML line. */
  httpExtra?: string;
  /** Extra `deno run` flags (e.g. `--cpu-prof-dir=…` to profile the gateway). */
  denoFlags?: string[];
  /** V8 flags instead of production's (to compare them). */
  v8Flags?: string;
}

/** The port was taken between choosing it and the gateway binding it. */
class PortTaken extends Error {}

/**
 * Writes a YAML config (with `http.listen` on a free port added) and starts `outpost run`.
 * A free port can be taken (by another test's process) before the gateway binds it: the gateway
 * then exits with "Cannot listen", while /healthz on that port answers for the other process.
 * So the helper returns only once /status (with this gateway's token) names this process's pid,
 * and starts again on another port when the first was taken.
 */
export async function startGateway(
  dir: string,
  yaml: string,
  opts: StartOptions = {},
): Promise<GatewayProcess> {
  for (let attempt = 1;; attempt++) {
    const port = opts.httpPort ?? (attempt === 1 ? opts.firstPort : undefined) ?? freePort();
    try {
      return await startOnce(dir, yaml, port, opts);
    } catch (e) {
      if (!(e instanceof PortTaken) || opts.httpPort !== undefined || attempt >= 5) throw e;
    }
  }
}

async function startOnce(
  dir: string,
  yaml: string,
  httpPort: number,
  opts: StartOptions,
): Promise<GatewayProcess> {
  const configPath = `${dir}/site.yaml`;
  const extra = opts.httpExtra ? `  ${opts.httpExtra}\n` : "";
  await Deno.writeTextFile(
    configPath,
    `${yaml}\nhttp:\n  listen: 127.0.0.1:${httpPort}\n${extra}`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    // Production's permissions and V8 flags (heap cap), so every test proves the gateway works
    // with them.
    args: [
      "run",
      ...GATEWAY_PERMISSIONS,
      `--v8-flags=${opts.v8Flags ?? GATEWAY_V8_FLAGS}`,
      ...opts.denoFlags ?? [],
      MAIN,
      "run",
      "--config",
      configPath,
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  const { output, drained } = collectOutput(child);
  const exited = child.status.then(async (s) => {
    await drained;
    return s;
  });
  const base = `http://127.0.0.1:${httpPort}`;
  const doc = (parse(yaml) ?? {}) as {
    buffer?: { path?: string };
    http?: { tokenFile?: string };
  };
  const tokenFile = tokenPath({
    buffer: { path: doc.buffer?.path ?? "data/buffer.db" },
    http: { tokenFile: doc.http?.tokenFile },
  });
  const get = (path: string) =>
    fetch(`${base}${path}`, { headers: { authorization: `Bearer ${readTokenFile(tokenFile)}` } });
  const gw: GatewayProcess = {
    pid: child.pid,
    httpPort,
    configPath,
    tokenFile,
    token: () => readTokenFile(tokenFile),
    get,
    output,
    status: async () => {
      const r = await get("/status");
      if (!r.ok) throw new Error(`GET /status answered ${r.status}: ${await r.text()}`);
      return await r.json();
    },
    kill: async () => {
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch { /* already gone */ }
      await exited;
    },
    stop: async () => {
      try {
        Deno.kill(child.pid, "SIGTERM");
      } catch { /* already gone */ }
      return (await exited).code;
    },
    exited,
  };
  let done = false;
  exited.then(() => done = true);
  const ours = async () => {
    // Its token and its pid: not another process that holds the port.
    try {
      const r = await get("/status");
      return r.ok && (await r.json()).pid === child.pid;
    } catch {
      return false;
    }
  };
  const outcome = await waitFor(
    `gateway ${child.pid} to serve /status`,
    async () => {
      if (done) return "exited";
      const r = await fetch(`${base}/healthz`);
      await r.body?.cancel();
      return (!opts.waitHealthy || r.status === 200) && await ours() && "ready";
    },
    30_000,
    50,
  ).catch(async (e) => {
    if (!done) await gw.kill();
    throw new Error(`${(e as Error).message}\n--- gateway output ---\n${output()}`);
  });
  if (outcome === "exited") {
    const text = output();
    // Taken between freePort() and the gateway's bind: the caller tries another port.
    if (/Cannot listen on "127\.0\.0\.1:\d+"/.test(text)) {
      throw new PortTaken(`port ${httpPort} was taken:\n${text}`);
    }
    throw new Error(`gateway exited early:\n${text}`);
  }
  return gw;
}
