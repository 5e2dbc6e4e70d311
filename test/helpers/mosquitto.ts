import { freePort, waitFor, waitForPort } from "./ports.ts";
import { type TestCerts, testCerts } from "./certs.ts";

/** A Mosquitto broker started for a test, on loopback ports of its own. */
export interface Broker {
  /** Plain MQTT port. */
  port: number;
  /** Mutual-TLS port (client certificate required), when started with `tls: true`. */
  tlsPort: number;
  certs?: TestCerts;
  url: string;
  tlsUrl: string;
  pid: number;
  /** Stops the broker (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same ports, after `stop()`. */
  start(): Promise<void>;
}

/** Options of {@linkcode startMosquitto}. */
export interface BrokerOptions {
  tls?: boolean;
  /** This port and no other; else a free one. */
  port?: number;
  /** The port to try first before free ones (to test the helper itself). */
  firstPort?: number;
  /** Keep sessions and queued messages across stop()/start() (saved on SIGTERM). */
  persistent?: boolean;
  /** Extra lines for mosquitto.conf. */
  extra?: string[];
}

const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"];

function binary(): string {
  for (const p of MOSQUITTO) {
    try {
      Deno.statSync(p);
      return p;
    } catch { /* next */ }
  }
  throw new Error("mosquitto not found: install Debian's mosquitto package (.ci/run does)");
}

/** Mosquitto could not bind a port of its config (taken since it was chosen). */
class PortTaken extends Error {}

/**
 * Starts a private Mosquitto on free 127.0.0.1 ports; stop it with `stop()` (by its pid). A free
 * port can be taken by another test's process before Mosquitto binds it, and then something else
 * answers on it: this waits for Mosquitto's own "running" line, and starts again on other ports
 * when it could not bind (ports the caller chose are not changed).
 */
export async function startMosquitto(opts: BrokerOptions = {}): Promise<Broker> {
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(attempt === 1 ? opts : { ...opts, firstPort: undefined });
    } catch (e) {
      if (!(e instanceof PortTaken) || opts.port !== undefined || attempt >= 5) throw e;
    }
  }
}

async function startOnce(opts: BrokerOptions): Promise<Broker> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-mosquitto-" });
  await Deno.chmod(dir, 0o755);
  const port = opts.port ?? opts.firstPort ?? freePort();
  const tlsPort = opts.tls ? freePort() : 0;
  const certs = opts.tls ? await testCerts() : undefined;
  const lines = [
    "per_listener_settings false",
    "allow_anonymous true",
    ...(opts.persistent
      // Run as root, Mosquitto drops to the `mosquitto` user, which cannot write the test's
      // directory: the save fails silently and sessions are gone after a restart. `user root`
      // keeps root (and is ignored when the tests do not run as root).
      ? ["persistence true", `persistence_location ${dir}/`, "autosave_interval 1", "user root"]
      : ["persistence false"]),
    // To stderr (unbuffered, unlike stdout into a pipe), which start() reads for "running" or a
    // bind error, and drains after.
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "max_inflight_messages 0",
    "max_queued_messages 100000",
    `listener ${port} 127.0.0.1`,
  ];
  if (certs) {
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${certs.ca}`,
      `certfile ${certs.serverCert}`,
      `keyfile ${certs.serverKey}`,
      "require_certificate true",
      "use_identity_as_username true",
    );
  }
  lines.push(...(opts.extra ?? []));
  const conf = `${dir}/mosquitto.conf`;
  await Deno.writeTextFile(conf, lines.join("\n") + "\n");
  let child: Deno.ChildProcess | undefined;
  let drained: Promise<void> = Promise.resolve();
  const broker: Broker = {
    port,
    tlsPort,
    certs,
    url: `mqtt://127.0.0.1:${port}`,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    pid: 0,
    async start() {
      const c = new Deno.Command(binary(), {
        args: ["-c", conf],
        stdout: "null",
        stderr: "piped",
        stdin: "null",
      }).spawn();
      child = c;
      broker.pid = c.pid;
      // The first lines (up to "running" or an error) are kept; the rest is drained unread.
      let head = "";
      let running = false;
      let exited = false;
      c.status.then(() => exited = true);
      drained = (async () => {
        for await (const chunk of c.stderr.pipeThrough(new TextDecoderStream())) {
          if (running || head.length > 16_384) continue;
          head += chunk;
          running = / running$/m.test(head);
        }
      })().catch(() => {});
      const outcome = await waitFor(
        `Mosquitto (pid ${c.pid}) on ${port}${tlsPort ? ` and ${tlsPort}` : ""} to run`,
        () => (running ? "running" : exited ? "exited" : false),
        10_000,
        10,
      ).catch(async (e) => {
        // Never a broker nobody can stop: the caller gets no handle to it.
        child = undefined;
        try {
          Deno.kill(c.pid, "SIGKILL");
        } catch { /* gone */ }
        await c.status;
        await drained;
        throw e;
      });
      if (outcome === "exited") {
        child = undefined;
        await drained;
        const taken = /Address already in use/.test(head);
        const why = `Mosquitto exited at start (${conf}):\n${head.trim()}`;
        throw taken ? new PortTaken(why) : new Error(why);
      }
      await waitForPort(port);
      if (tlsPort) await waitForPort(tlsPort);
    },
    async stop() {
      if (!child) return;
      const c = child;
      child = undefined;
      try {
        Deno.kill(c.pid, "SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          Deno.kill(c.pid, "SIGKILL");
        } catch { /* gone */ }
      }, 3000);
      await c.status;
      await drained;
      clearTimeout(timer);
      if (
        opts.persistent && !(await Deno.stat(`${dir}/mosquitto.db`).then(() => true, () => false))
      ) {
        throw new Error(`Mosquitto saved no sessions in ${dir}: persistence is not working`);
      }
    },
  };
  await broker.start();
  return broker;
}
