import { freePort, waitForPort } from "./ports.ts";
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
  port?: number;
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

/** Starts a private Mosquitto on free 127.0.0.1 ports; stop it with `stop()` (by its pid). */
export async function startMosquitto(opts: BrokerOptions = {}): Promise<Broker> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-mosquitto-" });
  await Deno.chmod(dir, 0o755);
  const port = opts.port ?? freePort();
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
    "log_dest none",
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
  const broker: Broker = {
    port,
    tlsPort,
    certs,
    url: `mqtt://127.0.0.1:${port}`,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    pid: 0,
    async start() {
      child = new Deno.Command(binary(), {
        args: ["-c", conf],
        stdout: "null",
        stderr: "null",
        stdin: "null",
      }).spawn();
      broker.pid = child.pid;
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
