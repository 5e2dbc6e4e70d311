/**
 * Test helper: a private dbus-daemon with python3-dbusmock's BlueZ template on it, and a
 * Python controller (bluez_ctl.py) that adds adapters and devices and sends advertisements.
 */
import { waitFor } from "../../../test/helpers/ports.ts";

const PYTHON = "/usr/bin/python3";
const CTL = new URL("./bluez_ctl.py", import.meta.url).pathname;

/** Reads a process's stdout line by line. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<string> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`stream ended; partial line ${JSON.stringify(this.#buffer)}`);
      this.#buffer += value;
    }
  }
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

async function stop(child: Deno.ChildProcess | undefined): Promise<void> {
  if (!child) return;
  try {
    child.kill("SIGTERM");
  } catch {
    // already exited
  }
  await child.status;
}

/** A private bus with a mock BlueZ that tests can drive. */
export class BluezPeer {
  readonly address: string;
  readonly #dir: string;
  readonly #daemon: Deno.ChildProcess;
  readonly #daemonOut: Lines;
  #bluez?: Deno.ChildProcess;
  #ctl?: Deno.ChildProcess;
  #ctlOut?: Lines;
  #ctlIn?: WritableStreamDefaultWriter<Uint8Array>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, daemon: Deno.ChildProcess, out: Lines, address: string) {
    this.#dir = dir;
    this.#daemon = daemon;
    this.#daemonOut = out;
    this.address = address;
  }

  /** Starts dbus-daemon on a socket in a temp dir and the controller; BlueZ is not started. */
  static async start(): Promise<BluezPeer> {
    const dir = await Deno.makeTempDir({ prefix: "outpost-ble-" });
    const daemon = new Deno.Command("dbus-daemon", {
      args: ["--session", "--nofork", "--print-address=1", `--address=unix:path=${dir}/bus`],
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    const out = new Lines(daemon.stdout);
    const address = (await out.next()).trim();
    const peer = new BluezPeer(dir, daemon, out, address);
    try {
      peer.#ctl = new Deno.Command(PYTHON, {
        args: [CTL, address],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      peer.#ctlOut = new Lines(peer.#ctl.stdout);
      peer.#ctlIn = peer.#ctl.stdin.getWriter();
    } catch (e) {
      await peer.close();
      throw e;
    }
    return peer;
  }

  /** Starts the mock BlueZ (`org.bluez`) and waits until it owns its name. */
  async startBluez(): Promise<void> {
    this.#bluez = new Deno.Command(PYTHON, {
      args: ["-m", "dbusmock", "--template", "bluez5"],
      env: { DBUS_SYSTEM_BUS_ADDRESS: this.address },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitFor("mock BlueZ on the bus", () => this.cmd("has_bluez"));
  }

  /** Stops the mock BlueZ; its name leaves the bus. */
  async stopBluez(): Promise<void> {
    await stop(this.#bluez);
    this.#bluez = undefined;
  }

  /** Sends one command to the controller and returns its result. */
  cmd<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const run = async () => {
      await this.#ctlIn!.write(new TextEncoder().encode(JSON.stringify({ op, ...args }) + "\n"));
      const line = await this.#ctlOut!.next();
      if (line.startsWith("ok ")) return JSON.parse(line.slice(3)) as T;
      throw new Error(`bluez_ctl ${op}: ${line}`);
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  /** Stops every process this peer started and removes its temp dir. */
  async close(): Promise<void> {
    await this.#ctlIn?.close().catch(() => {});
    await this.#ctlOut?.cancel();
    await stop(this.#ctl);
    await this.stopBluez();
    await this.#daemonOut.cancel();
    await stop(this.#daemon);
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
