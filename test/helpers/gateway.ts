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

/** Writes a YAML config (with `http.listen` on a free port added) and starts `outpost run`. */
export async function startGateway(
  dir: string,
  yaml: string,
  opts: {
    waitHealthy?: boolean;
    env?: Record<string, string>;
    httpPort?: number;
    /** More keys of the `http:` section, one YAML line. */
    httpExtra?: string;
    /** Extra `deno run` flags (e.g. `--cpu-prof-dir=…` to profile the gateway). */
    denoFlags?: string[];
    /** V8 flags instead of production's (to compare them). */
    v8Flags?: string;
  } = {},
): Promise<GatewayProcess> {
  const httpPort = opts.httpPort ?? freePort();
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
  await waitFor(
    `gateway ${child.pid} to serve /status`,
    async () => {
      if (done) throw new Error(`gateway exited early:\n${output()}`);
      const r = await fetch(`${base}/healthz`);
      await r.body?.cancel();
      return opts.waitHealthy ? r.status === 200 : true;
    },
    30_000,
    50,
  );
  return gw;
}
