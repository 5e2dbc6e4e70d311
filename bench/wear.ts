/**
 * Storage bytes a gateway process writes per reading: a real gateway (HTTP ingest adapter, MQTT
 * uplink to a local Mosquitto), devices posting over HTTP, `write_bytes` of `/proc/<pid>/io`.
 */
import { startMosquitto } from "../test/helpers/mosquitto.ts";
import { type GatewayProcess, startGateway } from "../test/helpers/gateway.ts";
import { freePort, waitFor } from "../test/helpers/ports.ts";

/** Options of {@linkcode measureWear}. */
export interface WearOptions {
  /** Devices posting. */
  devices: number;
  /** Readings per second, all devices together. */
  rate: number;
  /** Readings per request: 1 posts one at a time; more sends them in batches of this size. */
  perRequest: number;
  /** Measured span (after a warm-up of 3 s). */
  seconds: number;
  /** Extra `buffer:` keys, as YAML flow text (e.g. `commitWindow: 20ms`). */
  buffer?: string;
  /** Quiet span after the load before `idleRss` is read (default 5 s). */
  idleSeconds?: number;
}

/** Result of {@linkcode measureWear}. */
export interface WearResult {
  readings: number;
  writeBytes: number;
  bytesPerReading: number;
  /** Slowest answer to a post (ms): the longest a device waited for its 200. */
  maxLatencyMs: number;
  /** Buffer commits in the measured span. */
  commits: number;
  /** Gateway RSS at the end, bytes. */
  rss: number;
  /** Gateway RSS after `idleSeconds` with no posts (all devices seen, everything forwarded). */
  idleRss: number;
}

/** `write_bytes` of a process: bytes it caused to be sent to the storage layer. */
export function writeBytesOf(pid: number): number {
  const io = Deno.readTextFileSync(`/proc/${pid}/io`);
  const m = /^write_bytes:\s*(\d+)/m.exec(io);
  if (!m) throw new Error(`/proc/${pid}/io has no write_bytes line`);
  return Number(m[1]);
}

function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? 0) * 1024;
}

async function commitsOf(gw: GatewayProcess): Promise<number> {
  return ((await gw.status()).buffer as unknown as { commits: number }).commits;
}

/** Runs a gateway under a steady HTTP load and measures what it writes to storage. */
export async function measureWear(opts: WearOptions): Promise<WearResult> {
  // On the real disk (not tmpfs): tmpfs writes are not counted in write_bytes.
  const dir = await Deno.makeTempDir({ prefix: "outpost-wear-", dir: Deno.cwd() });
  const broker = await startMosquitto();
  const ingestPort = freePort();
  const token = "wear-bench-token-0123456789";
  const gw = await startGateway(
    dir,
    `
gateway: { id: wear-gw }
buffer: { path: ${dir}/buffer.db${opts.buffer ? `, ${opts.buffer}` : ""} }
uplink: { type: mqtt, url: ${broker.url} }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingestPort}
    tokens: [{ token: ${token} }]
    rate: { perSecond: 10000, burst: 10000 }
`,
    { waitHealthy: true },
  );
  try {
    const url = `http://127.0.0.1:${ingestPort}/ingest`;
    let posted = 0;
    let maxLatency = 0;
    let failed = 0;
    const inflight = new Set<Promise<void>>();
    const post = (device: number, counting: boolean) => {
      const now = Date.now();
      const body = Array.from({ length: opts.perRequest }, (_, i) => ({
        device: `dev-${device}`,
        metric: "temperature",
        value: Math.round((20 + Math.sin((now + i) / 10_000) * 5) * 100) / 100,
        unit: "C",
        ts: now,
      }));
      const t = performance.now();
      const p = fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(opts.perRequest === 1 ? body[0] : body),
      }).then(async (r) => {
        await r.body?.cancel();
        if (r.status !== 200) failed++;
        else if (counting) {
          posted += opts.perRequest;
          maxLatency = Math.max(maxLatency, performance.now() - t);
        }
      }, () => void failed++).finally(() => inflight.delete(p));
      inflight.add(p);
    };
    const requestsPerSecond = opts.rate / opts.perRequest;
    const run = async (seconds: number, counting: boolean) => {
      const start = performance.now();
      for (let k = 0;; k++) {
        const at = start + k * 1000 / requestsPerSecond;
        if (at - start >= seconds * 1000) break;
        const wait = at - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        post(k % opts.devices, counting);
      }
      await Promise.all(inflight);
    };
    await run(3, false);
    const commitsBefore = await commitsOf(gw);
    const before = writeBytesOf(gw.pid);
    await run(opts.seconds, true);
    // Everything the measured readings caused: their acknowledgements too.
    await waitFor(
      "the uplink to confirm every reading",
      async () => {
        const s = await gw.status();
        return s.buffer.pending === 0;
      },
      30_000,
      100,
    );
    const writeBytes = writeBytesOf(gw.pid) - before;
    const commits = (await commitsOf(gw)) - commitsBefore;
    if (failed > 0) throw new Error(`${failed} posts failed`);
    const rss = rssOf(gw.pid);
    // A deliberate quiet span (not a synchronisation): what the gateway holds when idle.
    await new Promise((r) => setTimeout(r, (opts.idleSeconds ?? 5) * 1000));
    return {
      readings: posted,
      writeBytes,
      bytesPerReading: Math.round(writeBytes / Math.max(1, posted)),
      maxLatencyMs: Math.round(maxLatency),
      commits,
      rss,
      idleRss: rssOf(gw.pid),
    };
  } finally {
    await gw.kill();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const [rate, perRequest, seconds, buffer] = Deno.args;
  console.log(
    JSON.stringify(
      await measureWear({
        devices: 50,
        rate: Number(rate ?? 30),
        perRequest: Number(perRequest ?? 1),
        seconds: Number(seconds ?? 20),
        buffer,
      }),
    ),
  );
}
