/**
 * Helpers of the self-update tests: release artifacts built by `build.ts --bundle` (cached by a
 * hash of the sources), a release channel served over loopback HTTP that can cut or stall a
 * download, release keys, and a device — an install root with A/B slots whose gateway runs under
 * {@linkcode FakeSystemd} with the real guard script — forwarding to a real Mosquitto.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { exportReadings } from "../../src/buffer/export.ts";
import { Slots } from "../../src/update/slots.ts";
import { FakeSystemd } from "./fake_systemd.ts";
import { freePort, waitFor } from "./ports.ts";
import { subscribe, type Subscriber } from "./subscriber.ts";

/** The repository root, with a trailing slash. */
export const ROOT = new URL("../..", import.meta.url).pathname;
/** The guard the unit runs as ExecStartPre=. */
export const GUARD = `${ROOT}config/systemd/outpost-guard.sh`;
/** This machine's build target: the one the devices install. */
export const TARGET = Deno.build.target;
const dec = new TextDecoder();

/** Runs a command; throws with its output when it fails. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${text}`);
  return text;
}

/** Runs the CLI from the sources. */
export const outpost = (...args: string[]): Promise<string> =>
  sh(Deno.execPath(), ["run", "-A", `${ROOT}main.ts`, ...args]);

/** The release artifacts of the tests: name → [version, TEST-ONLY behaviour, TEST-ONLY buffer
 * schema]. `next` knows one additive buffer schema step more than the others. */
const SPECS = {
  base: ["1.1.0"],
  good: ["2.0.0"],
  old: ["1.0.0"],
  exit: ["1.2.0", "exit"],
  unhealthy: ["1.3.0", "unhealthy"],
  hang: ["1.4.0", "hang"],
  next: ["2.1.0", undefined, "next"],
} as const;
type Spec = readonly [version: string, behaviour?: string, schema?: string];
/** Names of the test artifacts. */
export type ArtifactName = keyof typeof SPECS;
/** Version of each test artifact. */
export const VERSIONS = Object.fromEntries(
  Object.entries(SPECS).map(([k, v]) => [k, v[0]]),
) as Record<ArtifactName, string>;

async function sourceKey(): Promise<string> {
  const files: string[] = ["build.ts", "main.ts", "deno.json", "deno.lock"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory && e.name !== "testdata") await walk(p);
      else if (e.isFile && /\.(ts|json)$/.test(e.name) && !e.name.endsWith("_test.ts")) {
        files.push(p);
      }
    }
  };
  await walk("src");
  await walk("adapters");
  const h = createHash("sha256");
  for (const f of files.sort()) {
    h.update(`${f}\0`);
    h.update(await Deno.readFile(`${ROOT}${f}`).catch(() => new Uint8Array()));
  }
  return h.digest("hex").slice(0, 16);
}

let built: Promise<Record<ArtifactName, string>> | undefined;

/**
 * Every test artifact, bundled with `--test-hooks` (hold points inert unless asked for), once per
 * source tree: cached under $TMPDIR/outpost-test-artifacts/<hash of the sources>.
 */
export function artifacts(): Promise<Record<ArtifactName, string>> {
  built ??= (async () => {
    const cache = `${Deno.env.get("TMPDIR") ?? "/tmp"}/outpost-test-artifacts`;
    const dir = `${cache}/${await sourceKey()}`;
    const paths = Object.fromEntries(
      Object.keys(SPECS).map((k) => [k, `${dir}/${k}/outpost.js`]),
    ) as Record<ArtifactName, string>;
    const have = await Promise.all(
      Object.values(paths).map((p) => Deno.stat(p).then(() => true, () => false)),
    );
    if (have.every(Boolean)) return paths;
    await Deno.mkdir(cache, { recursive: true });
    const tmp = await Deno.makeTempDir({ dir: cache, prefix: ".build-" });
    await Promise.all(
      Object.entries(SPECS as Record<string, Spec>).map(([name, [version, behaviour, schema]]) =>
        sh(Deno.execPath(), [
          "run",
          "-A",
          `${ROOT}build.ts`,
          "--bundle",
          "--test-hooks",
          "--version",
          version,
          "--out",
          `${tmp}/${name}`,
          ...(behaviour ? ["--behaviour", behaviour] : []),
          ...(schema ? ["--test-schema", schema] : []),
        ])
      ),
    );
    // Another test file may have built the same sources meanwhile: either copy will do.
    await Deno.rename(tmp, dir).catch(() => Deno.remove(tmp, { recursive: true }));
    // Builds of older sources are of no further use.
    for await (const e of Deno.readDir(cache)) {
      const p = `${cache}/${e.name}`;
      const mtime = (await Deno.stat(p).catch(() => undefined))?.mtime?.getTime() ?? Date.now();
      if (p !== dir && Date.now() - mtime > 86_400_000) await Deno.remove(p, { recursive: true });
    }
    return paths;
  })();
  return built;
}

/** A download held part-way by the channel server. */
export interface Stall {
  /** Resolves with the bytes sent before the server stopped sending. */
  sent: Promise<number>;
  /** Sends the rest. */
  resume(): void;
  /** Breaks the connection. */
  cut(): void;
}

/** Control of a test channel server. */
export interface ChannelServer {
  url: string;
  /** Every request: path and Range header. */
  requests: string[];
  /** Answer manifest requests with 503 while true. */
  holdManifest: boolean;
  /** The next artifact download without a Range header sends half and is cut. */
  cutNextArtifact: boolean;
  /** The next artifact download without a Range header sends half, then waits. */
  stallNext(): Stall;
  close(): Promise<void>;
}

interface StallEntry {
  stall: Stall;
  decision: Promise<"resume" | "cut">;
  decide(how: "resume" | "cut"): void;
  sent(n: number): void;
}

/** A static file server for a channel directory, with Range support, cuts and stalls. */
export function channelServer(dir: string): ChannelServer {
  const port = freePort();
  const ac = new AbortController();
  const stalls: StallEntry[] = [];
  const pending: StallEntry[] = [];
  const srv: ChannelServer = {
    url: `http://127.0.0.1:${port}`,
    requests: [],
    holdManifest: false,
    cutNextArtifact: false,
    stallNext() {
      const decision = Promise.withResolvers<"resume" | "cut">();
      const sent = Promise.withResolvers<number>();
      const entry: StallEntry = {
        stall: {
          sent: sent.promise,
          resume: () => decision.resolve("resume"),
          cut: () => decision.resolve("cut"),
        },
        decide: decision.resolve,
        sent: sent.resolve,
        decision: decision.promise,
      };
      stalls.push(entry);
      pending.push(entry);
      return entry.stall;
    },
    close: async () => {
      for (const s of stalls) s.decide("cut");
      ac.abort();
      await server.finished;
    },
  };
  const server = Deno.serve(
    { port, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      const rangeHeader = req.headers.get("range");
      srv.requests.push(`${path} ${rangeHeader ?? ""}`);
      if (path.endsWith("/manifest.json") && srv.holdManifest) {
        return new Response("release server busy", { status: 503 });
      }
      let data: Uint8Array<ArrayBuffer>;
      try {
        data = await Deno.readFile(`${dir}${path}`);
      } catch {
        return new Response("not found", { status: 404 });
      }
      const range = /^bytes=(\d+)-$/.exec(rangeHeader ?? "");
      const artifact = path.includes("/artifacts/") && !range;
      if (artifact && (srv.cutNextArtifact || pending.length)) {
        const half = data.subarray(0, data.length >> 1);
        const rest = data.subarray(data.length >> 1);
        const stall = srv.cutNextArtifact ? undefined : pending.shift();
        srv.cutNextArtifact = false;
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(half);
            stall?.sent(half.length);
          },
          async pull(c) {
            const how = stall ? await stall.decision : "cut";
            if (how === "cut") {
              c.error(new Error("test server: download cut"));
            } else {
              c.enqueue(rest);
              c.close();
            }
          },
        });
        return new Response(body, { headers: { "content-length": String(data.length) } });
      }
      if (range) {
        const from = Number(range[1]);
        return new Response(data.subarray(from), {
          status: 206,
          headers: { "content-range": `bytes ${from}-${data.length - 1}/${data.length}` },
        });
      }
      return new Response(data);
    },
  );
  return srv;
}

/** A release key pair made by `outpost release keygen`. */
export async function keypair(dir: string): Promise<{ key: string; pub: string }> {
  const out = await outpost("release", "keygen", "--out", dir);
  const key = /private key (\S+)/.exec(out)![1];
  const pub = (await Deno.readTextFile(key.replace(/\.key$/, ".pub"))).trim();
  assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600);
  return { key, pub };
}

/**
 * A release directory made by `outpost release init` (root, targets and timestamp keys, root.json
 * version 1), in the shape of {@linkcode keypair}: `key` is the directory (publish with
 * `--root-dir`), `pub` the root.json a device pins.
 */
export async function releaseDir(dir: string): Promise<{ key: string; pub: string }> {
  await outpost("release", "init", "--out", dir);
  return { key: dir, pub: `${dir}/root.json` };
}

/** `outpost release publish` of an artifact for this machine's target on channel "stable"; a
 * release directory ({@linkcode releaseDir}) among `keys` publishes with the roles. */
export const publish = (
  channel: string,
  artifact: string,
  version: string,
  keys: string[],
  ...more: string[]
): Promise<string> =>
  outpost(
    "release",
    "publish",
    "--channel",
    channel,
    "--artifact",
    artifact,
    "--version",
    version,
    "--target",
    TARGET,
    ...keys.flatMap((k) => k.endsWith(".key") ? ["--key", k] : ["--root-dir", k]),
    // The devices follow "stable", whatever the channel directory is called.
    ...(more.includes("--channel-name") ? [] : ["--channel-name", "stable"]),
    ...more,
  );

/** What /status shows under `update`. */
export interface UpdateView {
  phase?: string;
  target: string;
  committed: { slot: string; version: string };
  trial?: { slot: string; version: string; attempts: number };
  lastCheck?: { result: string; code?: string; reason?: string; version?: string };
  lastRollback?: { version: string; reason: string };
  history?: { result: string; version?: string; reason?: string }[];
  metadataExpires?: number;
  metadataStale?: string;
  /** The executable the gateway runs on and its Deno version. */
  runtime?: { path: string; deno: string };
}

/** The parts of /status the update tests read. */
export interface StatusView {
  gatewayId: string;
  version: string;
  pid: number;
  health: { ok: boolean };
  buffer: { rows: number; pending: number };
  uplink: { connected: boolean } | null;
  update: UpdateView;
}

/** Options of {@linkcode device}. */
export interface DeviceOptions {
  channelUrl: string;
  pubkeys: string[];
  /** MQTT broker URL the gateway forwards to. */
  broker: string;
  /** Install root; a temp dir when absent. */
  installRoot?: string;
  /** update.healthDeadline; 20 s when absent (a loaded CI box starts Deno slowly). */
  healthDeadline?: string;
  checkInterval?: string;
  /** WatchdogSec= of the fake systemd, ms. */
  watchdogMs?: number;
  /** TimeoutStartSec= of the fake systemd, ms (30 s when absent). */
  startTimeoutMs?: number;
  /** More YAML under `update:`. */
  updateExtra?: string;
  /** More top-level YAML sections (e.g. `commands:` with operator keys). */
  extraYaml?: string;
  /** update.channelName; "stable" when absent. */
  channelName?: string;
  /** A root.json (`release init`) to pin in the install root. */
  rootFile?: string;
}

/** A gateway installed in A/B slots and run by a fake systemd. */
export interface Device {
  id: string;
  dir: string;
  slots: Slots;
  config: string;
  log: string;
  buffer: string;
  unit: FakeSystemd;
  /** Starts the unit (guard, then `current/outpost run`), as at boot; `env` for this boot only. */
  boot(env?: Record<string, string>): Promise<void>;
  /** SIGKILL of the whole unit (process group). */
  powerCut(): Promise<void>;
  status(): Promise<StatusView>;
  /** Polls /status until `pred` holds; the error carries the log. */
  waitStatus(
    what: string,
    pred: (s: StatusView) => boolean,
    timeoutMs?: number,
  ): Promise<StatusView>;
  /** A subscriber on this gateway's topics at the broker. */
  subscriber(): Promise<Subscriber>;
  close(): Promise<void>;
}

let deviceCount = 0;

/** The bearer token the gateway wrote next to its buffer file on first run, when it has one. */
export async function authHeaders(bufferDir: string): Promise<Record<string, string>> {
  const token = await Deno.readTextFile(`${bufferDir}/http-token`).catch(() => undefined);
  return token ? { authorization: `Bearer ${token.trim()}` } : {};
}

/** Lays out an install root with the base artifact (1.1.0) committed in slot a. */
export async function device(opts: DeviceOptions): Promise<Device> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-device-" });
  const a = await artifacts();
  const installRoot = opts.installRoot ?? `${dir}/opt`;
  const slots = new Slots(installRoot);
  await slots.init(a.base, VERSIONS.base);
  // A root.json among the keys (from releaseDir) is pinned; the others are trusted keys.
  const rootFile = opts.rootFile ?? opts.pubkeys.find((k) => k.endsWith("/root.json"));
  if (rootFile) await Deno.copyFile(rootFile, `${installRoot}/root.json`);
  const trusted = opts.pubkeys.filter((k) => !k.endsWith("/root.json"));
  const httpPort = freePort();
  const id = `upd-${Deno.pid}-${++deviceCount}`;
  const config = `${dir}/site.yaml`;
  const buffer = `${dir}/buffer.db`;
  await Deno.writeTextFile(
    config,
    `gateway: { id: ${id} }
buffer: { path: ${buffer}, commitInterval: 20ms, minFreeDisk: 0 }
uplink:
  type: mqtt
  url: ${opts.broker}
  reconnect: { min: 100ms, max: 500ms }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 100ms }
http: { listen: 127.0.0.1:${httpPort} }
update:
  channel: ${opts.channelUrl}
  channelName: ${opts.channelName ?? "stable"}
  installRoot: ${installRoot}
  checkInterval: ${opts.checkInterval ?? "1s"}
  healthDeadline: ${opts.healthDeadline ?? "20s"}
  allowInsecure: true
  trustedKeys: [${trusted.map((k) => JSON.stringify(k)).join(", ")}]
${opts.updateExtra ?? ""}
${opts.extraYaml ?? ""}`,
  );
  const log = `${dir}/gateway.log`;
  const base = `http://127.0.0.1:${httpPort}`;
  const unit = new FakeSystemd({
    execStart: [`${installRoot}/current/outpost`, "run", "--config", config],
    execStartPre: [GUARD, installRoot],
    log,
    watchdogMs: opts.watchdogMs,
    startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    restartMs: 200,
  });
  const subs: Subscriber[] = [];
  const dev: Device = {
    id,
    dir,
    slots,
    config,
    log,
    buffer,
    unit,
    async boot(env) {
      await unit.start(env);
    },
    powerCut: () => unit.powerCut(),
    async status() {
      const r = await fetch(`${base}/status`, {
        headers: await authHeaders(dir),
        signal: AbortSignal.timeout(5000),
      });
      const body = await r.json();
      // Other test runs on this machine pick free ports too; never read a stranger's status.
      if (body.gatewayId !== id) throw new Error(`${base} is not ${id} but ${body.gatewayId}`);
      return body;
    },
    async waitStatus(what, pred, timeoutMs = 60_000) {
      try {
        return await waitFor(
          what,
          async () => {
            const s = await dev.status();
            return pred(s) ? s : undefined;
          },
          timeoutMs,
          100,
        );
      } catch (e) {
        throw new Error(
          `${id}: ${(e as Error).message}\n--- gateway log ---\n${await Deno.readTextFile(log)
            .catch(() => "")}`,
        );
      }
    },
    async subscriber() {
      const s = await subscribe(opts.broker, `gateways/${id}/#`);
      subs.push(s);
      return s;
    },
    async close() {
      await unit.close();
      for (const s of subs) await s.close().catch(() => {});
    },
  };
  return dev;
}

/** Seqs and content of every reading the buffer file holds (read-only, beside a live writer). */
export function bufferContents(path: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const r of exportReadings(path)) {
    out.set(r.seq, JSON.stringify([r.device, r.metric, r.value, r.ts]));
  }
  return out;
}

/**
 * Asserts that readings flow: new ones reach the subscriber, and every reading `before` holds
 * (a snapshot of the buffer after a power cut) arrives there with the same content.
 */
export async function assertFlowing(
  dev: Device,
  sub: Subscriber,
  before: Map<number, string>,
): Promise<void> {
  const seen = sub.unique().size;
  await waitFor(
    `${dev.id}: new readings at the broker`,
    () => sub.unique().size >= seen + 10,
    30_000,
  );
  await waitFor(
    `${dev.id}: every reading the buffer held at the power cut at the broker`,
    () => [...before.keys()].every((seq) => sub.unique().has(seq)),
    30_000,
  );
  const u = sub.unique();
  for (const [seq, content] of before) {
    const r = u.get(seq)!;
    assert.equal(JSON.stringify([r.device, r.metric, r.value, r.ts]), content, `seq ${seq}`);
  }
}
