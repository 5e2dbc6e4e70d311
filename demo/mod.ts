/**
 * `deno task demo`: runs the gateway with simulated sensors, forwarding through a local MQTT
 * broker (Mosquitto when installed, else the embedded aedes broker) to a subscriber that plays
 * the cloud, and prints what to look at. Ctrl-C stops everything.
 *
 * Options: `--duration 20s` stops by itself; `--broker embedded` forces aedes; `--devices` adds
 * a release channel and three simulated ESP32 boards that the gateway updates (demo/devices.ts);
 * `--data DIR` keeps the buffer, keys and token there instead of data/demo (two demos at once each
 * need their own: the second gateway would refuse the first one's buffer).
 */
import { parseArgs } from "node:util";
import { resolve as resolvePath } from "node:path";
import { createServer } from "node:net";
import mqtt from "mqtt";
import { decodeBatch } from "../src/uplink/mod.ts";
import { parseDuration } from "../src/config/schema.ts";
import { Fleet, formatGrant } from "../src/fleet/mod.ts";
import { generateKey, importSigningKey, type PrivateKeyFile } from "../src/update/mod.ts";
import { deviceDemo } from "./devices.ts";
import { GATEWAY_PERMISSIONS, GATEWAY_V8_FLAGS } from "../src/runtime_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"];

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function findMosquitto(): string | undefined {
  return MOSQUITTO.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`broker did not listen on ${port}: ${e}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Starts a broker on `port`; returns its name and a stop function. */
async function startBroker(
  port: number,
  prefer: string,
): Promise<{ name: string; stop(): Promise<void> }> {
  const bin = prefer === "embedded" ? undefined : findMosquitto();
  if (bin) {
    const dir = await Deno.makeTempDir({ prefix: "outpost-demo-" });
    await Deno.chmod(dir, 0o755);
    await Deno.writeTextFile(
      `${dir}/mosquitto.conf`,
      `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n`,
    );
    const child = new Deno.Command(bin, {
      args: ["-c", `${dir}/mosquitto.conf`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(port);
    return {
      name: `Mosquitto (${bin}, pid ${child.pid})`,
      stop: async () => {
        child.kill("SIGTERM");
        await child.status;
      },
    };
  }
  const { Aedes } = await import("aedes");
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  return {
    name: prefer === "embedded"
      ? "embedded aedes broker"
      : "embedded aedes broker (Mosquitto not installed)",
    stop: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string" },
    broker: { type: "string" },
    devices: { type: "boolean" },
    data: { type: "string" },
  },
});
const duration = values.duration ? parseDuration(values.duration) : undefined;
const brokerPort = freePort();
const httpPort = freePort();
const dataDir = values.data ? resolvePath(values.data) : `${ROOT}data/demo`;
await Deno.mkdir(dataDir, { recursive: true });

/**
 * The operator key of the demo's fleet console (kept across runs): the gateway accepts only
 * commands it signed. The gateway runs a copy of config/demo.yaml that names the public half.
 */
async function operatorKey(): Promise<{ file: string; key: PrivateKeyFile }> {
  const file = `${dataDir}/operator.key`;
  let key: PrivateKeyFile;
  try {
    key = JSON.parse(await Deno.readTextFile(file));
    await importSigningKey(key);
  } catch {
    key = await generateKey();
    await Deno.writeTextFile(file, JSON.stringify(key, null, 2) + "\n", { mode: 0o600 });
    await Deno.chmod(file, 0o600);
  }
  await Deno.writeTextFile(`${dataDir}/operator.pub`, key.public + "\n");
  return { file, key };
}
const operator = await operatorKey();
const configPath = `${dataDir}/demo.yaml`;
const devices = values.devices ? await deviceDemo(`${dataDir}/devices`) : undefined;
await Deno.writeTextFile(
  configPath,
  (await Deno.readTextFile(`${ROOT}config/demo.yaml`)) + `
# Added by deno task demo: the operator key of its fleet console (private half ${operator.file}).
commands:
  operatorKeys:
    - { key: "\${file:${dataDir}/operator.pub}", scopes: [read, operate, admin], name: demo-console }
` + (devices?.yaml ?? ""),
);

const broker = await startBroker(brokerPort, values.broker ?? "auto");
const url = `mqtt://127.0.0.1:${brokerPort}`;
const cloud = await mqtt.connectAsync(url, { clientId: "demo-cloud" });
let received = 0;
let lastPrint = 0;
cloud.on("message", (topic, payload) => {
  const text = payload.toString();
  if (topic.endsWith("/status")) {
    let s: { state?: string; backlog?: number; version?: string } = {};
    try {
      s = JSON.parse(text);
    } catch { /* shown as undefined fields */ }
    console.log(`cloud ← ${topic}: ${s.state}, backlog ${s.backlog ?? "-"}, version ${s.version}`);
    return;
  }
  if (!topic.endsWith("/telemetry")) {
    // Alarms, command requests and replies share the prefix; show them as they are.
    if (!topic.includes("/cmd/")) console.log(`cloud ← ${topic}: ${text.slice(0, 200)}`);
    return;
  }
  let batch: ReturnType<typeof decodeBatch>;
  try {
    batch = decodeBatch(text);
  } catch (e) {
    console.log(`cloud ← ${topic}: not a telemetry batch (${(e as Error).message})`);
    return;
  }
  received += batch.readings.length;
  const now = Date.now();
  if (now - lastPrint < 2000) return;
  lastPrint = now;
  const r = batch.readings.at(-1)!;
  const first = batch.readings[0].seq;
  console.log(
    `cloud ← ${topic}: ${batch.readings.length} readings (seq ${first}–${r.seq}), ` +
      `e.g. ${r.device} ${r.metric}=${r.value}${r.unit ?? ""}; ${received} received in total`,
  );
});
await cloud.subscribeAsync("gateways/#", { qos: 1 });

const gateway = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    ...GATEWAY_PERMISSIONS,
    `--v8-flags=${GATEWAY_V8_FLAGS}`,
    `${ROOT}main.ts`,
    "run",
    "--config",
    configPath,
  ],
  env: {
    OUTPOST_DEMO_BROKER: url,
    OUTPOST_DEMO_DIR: dataDir,
    OUTPOST_DEMO_HTTP: `127.0.0.1:${httpPort}`,
  },
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

console.log(`
Outpost demo
  broker      ${broker.name} on ${url}
  gateway     pid ${gateway.pid}, config ${configPath} (config/demo.yaml + operator key), buffer ${dataDir}/buffer.db
  operator    key ${operator.key.keyid} in ${operator.file} (private: keep it to yourself), scopes read, operate, admin
              deno task start fleet --broker ${url} --key ${operator.file}
              deno task start fleet send status --gateway demo-gw --broker ${url} --key ${operator.file}
  look at     http://127.0.0.1:${httpPort}/   (gateway page; sign in with the token in ${dataDir}/http-token)
              deno task start status --url http://127.0.0.1:${httpPort} --token-file ${dataDir}/http-token
              deno task start export --db ${dataDir}/buffer.db --device sim-1 --since 1h
              mosquitto_sub -p ${brokerPort} -t 'gateways/#' -v     (if mosquitto-clients is installed)
  stop        Ctrl-C
`);

if (devices) {
  console.log(`  devices     deno task start devices status --config ${configPath}\n`);
  await devices.start(url);
}

const { promise: done, resolve } = Promise.withResolvers<void>();

/** The demo's fleet console: one signed ping, retried until the gateway listens for commands. */
async function consolePing(signal: AbortSignal): Promise<void> {
  const fleet = await Fleet.connect({
    connection: { url },
    key: await importSigningKey(operator.key),
  });
  try {
    while (!signal.aborted) {
      const run = fleet.send("ping", { targets: ["demo-gw"], timeoutMs: 1000, signal });
      await run.done;
      const t = run.results()[0];
      if (t?.ok) {
        const r = t.result as { version?: string; operator?: unknown };
        console.log(
          `fleet console → ping demo-gw (signed): pong, version ${r.version}, ${
            formatGrant(r.operator)
          }`,
        );
        return;
      }
      if (t?.error) {
        console.log(`fleet console → ping demo-gw: ${t.error.code}: ${t.error.message}`);
        return;
      }
    }
  } finally {
    await fleet.close();
  }
}
const pinging = new AbortController();
const pinged = consolePing(pinging.signal).catch((e) =>
  console.log(`fleet console: ${(e as Error).message}`)
);
const onSig = () => resolve();
Deno.addSignalListener("SIGINT", onSig);
Deno.addSignalListener("SIGTERM", onSig);
const timer = duration ? setTimeout(resolve, duration) : undefined;
gateway.status.then(() => resolve());
await done;
clearTimeout(timer);
pinging.abort();
await pinged;
Deno.removeSignalListener("SIGINT", onSig);
Deno.removeSignalListener("SIGTERM", onSig);
try {
  gateway.kill("SIGTERM");
} catch { /* already gone */ }
const status = await gateway.status;
await devices?.stop();
await cloud.endAsync();
await broker.stop();
console.log(
  `demo finished: the cloud received ${received} readings; gateway exit status ${status.code}`,
);
Deno.exit(status.code === 0 && received > 0 ? 0 : 1);
