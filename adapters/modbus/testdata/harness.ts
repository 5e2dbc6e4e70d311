/**
 * Test and benchmark support: runs `server.ts` as a child process and gives an adapter a context
 * that records what it emits, counts and reports.
 */
import type { AdapterContext, DeviceState, WriteRequest } from "../../../src/adapter.ts";
import { createLogger, type Logger, silentLogger } from "../../../src/log.ts";
import type { Reading } from "../../../src/reading.ts";

const SERVER = new URL("./server.ts", import.meta.url).pathname;

/** A running test server process. */
export interface ServerProcess {
  /** Request lines logged so far (parsed JSON), oldest first. */
  requests: {
    unit: number;
    fc: number;
    address: number;
    count: number;
    ex?: number;
    silent?: true;
  }[];
  /** Sends a stdin command and waits for its acknowledgement. */
  send(command: string): Promise<void>;
  /** Kills the process and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts `server.ts` with `args` and resolves once it serves. */
export async function startServer(args: string[]): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SERVER, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const requests: ServerProcess["requests"] = [];
  let acks = 0;
  let ready!: () => void;
  let failed!: (e: Error) => void;
  const isReady = new Promise<void>((res, rej) => {
    ready = res;
    failed = rej;
  });
  const reading = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of child.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line === "ready") ready();
        else {
          const msg = JSON.parse(line);
          if (msg.ack) acks++;
          else requests.push(msg);
        }
      }
    }
    failed(new Error(`test server ${args.join(" ")} exited before it was ready`));
  })();
  await isReady;
  const writer = child.stdin.getWriter();
  let stopped = false;
  return {
    requests,
    async send(command: string) {
      const want = acks + 1;
      await writer.write(new TextEncoder().encode(command + "\n"));
      const deadline = Date.now() + 5000;
      while (acks < want) {
        if (Date.now() > deadline) throw new Error(`test server did not acknowledge "${command}"`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      await writer.close().catch(() => {});
      await child.status;
      await reading;
    },
  };
}

/** A context that records an adapter's output. */
export interface Recorder<C> {
  ctx: AdapterContext<C>;
  readings: Reading[];
  states: Map<string, { state: DeviceState; reason?: string }>;
  /** Every state change in order. */
  stateLog: { device: string; state: DeviceState; ts: number }[];
  counters: Map<string, number>;
  write(req: WriteRequest): Promise<void>;
  controller: AbortController;
}

/** Builds a context around `config`; `verbose` sends the adapter's log to stderr. */
export function recorder<C>(config: C, options: { verbose?: boolean } = {}): Recorder<C> {
  const controller = new AbortController();
  const readings: Reading[] = [];
  const states: Recorder<C>["states"] = new Map();
  const stateLog: Recorder<C>["stateLog"] = [];
  const counters = new Map<string, number>();
  let writer: ((r: WriteRequest) => Promise<void>) | undefined;
  const log: Logger = options.verbose
    ? createLogger({ level: "debug" }).child("modbus")
    : silentLogger();
  const ctx: AdapterContext<C> = {
    name: "test",
    config,
    log,
    signal: controller.signal,
    emit: (rs) => {
      readings.push(...rs);
      return Promise.resolve({ accepted: rs.length, rejected: 0, seqs: [] });
    },
    setDeviceState: (device, state, reason) => {
      states.set(device, { state, reason });
      stateLog.push({ device, state, ts: Date.now() });
    },
    count: (name, by = 1) => counters.set(name, (counters.get(name) ?? 0) + by),
    setWriter: (w) => {
      writer = w;
    },
  };
  return {
    ctx,
    readings,
    states,
    stateLog,
    counters,
    controller,
    write: (req) => {
      if (!writer) throw new Error("the adapter registered no writer");
      return writer(req);
    },
  };
}
