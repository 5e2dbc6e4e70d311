/**
 * The `exec` adapter: runs an external program that prints readings as JSON lines on stdout, so
 * a site can add a protocol in any language without rebuilding the gateway.
 *
 * @module
 */
import {
  type AdapterContext,
  backoffDelay,
  defineAdapter,
  sleep,
  within,
} from "../../src/adapter.ts";
import type { Reading } from "../../src/reading.ts";
import { type ExecConfig, execSchema } from "./config.ts";
import { LineSplitter } from "./_lines.ts";
import { parseLine } from "./_parse.ts";
import { RefusalLog, sample } from "../../src/limits.ts";

export type { ExecConfig } from "./config.ts";

/** The program cannot be started (not found, not executable, bad working directory). */
export class ExecError extends Error {
  /** Creates the error; the message names the command. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ExecError";
  }
}

type Ctx = AdapterContext<ExecConfig>;

/** How long a program's leftover children may keep its pipes open after it exited. */
const PIPE_GRACE_MS = 1000;
/** Longest stderr line text put into one log record. */
const MAX_LOGGED_CHARS = 4096;
/** Sends `sig` to the program's process group (it runs in its own session), else to it alone. */
function signalGroup(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(-pid, sig);
  } catch {
    try {
      Deno.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }
}

/** SIGTERM, then SIGKILL once `graceMs` passed without an exit. */
async function terminate(
  pid: number,
  exited: Promise<unknown>,
  graceMs: number,
  ctx: Ctx,
): Promise<void> {
  signalGroup(pid, "SIGTERM");
  if (!(await within(exited, graceMs))) {
    ctx.log.warn("program ignored SIGTERM; killing it", { pid, after: `${graceMs}ms` });
    ctx.count("kills");
    signalGroup(pid, "SIGKILL");
  }
}

async function emitSafe(ctx: Ctx, readings: Reading[]): Promise<void> {
  try {
    await ctx.emit(readings);
  } catch (e) {
    ctx.count("errors");
    ctx.log.error("emit failed", { readings: readings.length, error: e as Error });
  }
}

/** Reads readings from stdout; emitting before reading on gives backpressure to the program. */
async function pumpStdout(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ctx: Ctx,
): Promise<void> {
  let batch: Reading[] = [];
  const refusals = new RefusalLog(ctx.log);
  const max = ctx.config.maxLineLength;
  const splitter = new LineSplitter(max, {
    line(text) {
      const parsed = parseLine(text, Date.now());
      if ("error" in parsed) {
        ctx.count("invalid_lines");
        if (parsed.reason) ctx.count(`refused_${parsed.reason}`);
        refusals.refused(parsed.reason ?? "invalid", "skipped stdout line", {
          error: parsed.error,
          sample: sample(text),
        });
      } else batch.push(...parsed.readings);
    },
    tooLong(bytes) {
      ctx.count("invalid_lines");
      ctx.count("refused_line_length");
      refusals.refused("line_length", "skipped stdout line", {
        error: `line of ${bytes} bytes exceeds maxLineLength ${max}`,
      });
    },
  });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      splitter.push(value);
      if (batch.length) {
        const b = batch;
        batch = [];
        await emitSafe(ctx, b);
      }
    }
  } catch {
    // Cancelled after the program exited; what was read is still flushed below.
  }
  splitter.end();
  if (batch.length) await emitSafe(ctx, batch);
}

/** Logs stderr lines, at most `stderrLinesPerSecond`. */
async function pumpStderr(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ctx: Ctx,
): Promise<void> {
  const limit = ctx.config.stderrLinesPerSecond;
  let window = 0;
  let inWindow = 0;
  let dropped = 0;
  const log = (text: string) => {
    const now = Date.now();
    if (now - window >= 1000) {
      if (dropped) ctx.log.warn("dropped stderr lines of a flood", { dropped });
      window = now;
      inWindow = 0;
      dropped = 0;
    }
    if (++inWindow > limit) {
      dropped++;
      ctx.count("stderr_dropped");
      return;
    }
    ctx.log.info(text.length > MAX_LOGGED_CHARS ? text.slice(0, MAX_LOGGED_CHARS) + "..." : text, {
      stream: "stderr",
    });
  };
  const splitter = new LineSplitter(ctx.config.maxLineLength, {
    line: (text) => text.trim() && log(text),
    tooLong: (bytes) => log(`(skipped a stderr line of ${bytes} bytes)`),
  });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      splitter.push(value);
    }
  } catch {
    // Cancelled after the program exited.
  }
  splitter.end();
}

/** Runs the program once; resolves with how it ended. */
async function runOnce(ctx: Ctx): Promise<string> {
  const { config, signal, log } = ctx;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(config.command, {
      args: config.args,
      env: config.env,
      clearEnv: config.clearEnv,
      cwd: config.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // Its own session and process group, so stopping reaches the children it started.
      detached: true,
    }).spawn();
  } catch (e) {
    throw new ExecError(
      `Cannot start "${config.command}"${config.cwd ? ` in "${config.cwd}"` : ""}: ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  const pid = child.pid;
  log.info("program started", { command: config.command, pid });
  const out = child.stdout.getReader();
  const err = child.stderr.getReader();
  const pumps = Promise.all([pumpStdout(out, ctx), pumpStderr(err, ctx)]);
  const exited = child.status;
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping = terminate(pid, exited, config.stopTimeout, ctx));
  signal.addEventListener("abort", stop, { once: true });
  const status = await exited;
  signal.removeEventListener("abort", stop);
  await stopping;
  // Children it left behind may hold the pipes open; they go with it.
  signalGroup(pid, "SIGTERM");
  if (!(await within(pumps, PIPE_GRACE_MS))) {
    signalGroup(pid, "SIGKILL");
    await Promise.all([out.cancel(), err.cancel()]);
    await pumps;
  }
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}

/** Runs an external program and turns its JSON-lines stdout into readings, restarting it on exit. */
export const exec = defineAdapter<ExecConfig>({
  type: "exec",
  schema: execSchema,
  async start(ctx) {
    const { config, signal, log } = ctx;
    const bounds = { min: config.restartDelay, max: config.maxRestartDelay };
    let attempt = 0;
    while (!signal.aborted) {
      const started = Date.now();
      let outcome: string;
      try {
        outcome = await runOnce(ctx);
      } catch (e) {
        ctx.count("errors");
        outcome = `failed: ${(e as Error).message}`;
      }
      if (signal.aborted) {
        log.info(`program stopped; it ${outcome}`);
        break;
      }
      if (Date.now() - started >= config.stableAfter) attempt = 0;
      const delay = backoffDelay(attempt++, bounds, { jitter: "none" });
      ctx.count("restarts");
      log.warn(`program ${outcome}; restarting`, { command: config.command, in: `${delay}ms` });
      await sleep(delay, signal);
    }
  },
});
