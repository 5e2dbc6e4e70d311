/**
 * The end-to-end path with a real Mosquitto on both sides: devices (a publisher process) send QoS
 * 1 messages of three readings to a local broker; a gateway process (the `mqtt` adapter, persistent
 * session) stores and forwards them over mutual TLS to an upstream broker, where a subscriber counts
 * every reading: lost, duplicated, and how long each took from the device's publish.
 */
import mqtt from "mqtt";
import { startMosquitto } from "../test/helpers/mosquitto.ts";
import { startGateway } from "../test/helpers/gateway.ts";
import type { Result } from "./mod.ts";

/** Options of {@linkcode measureE2e}. */
export interface E2eOptions {
  /** Messages per second offered by the devices (3 readings each). */
  rate: number;
  /** How long the devices publish. */
  seconds: number;
  devices?: number;
  /** Longest wait after the last publish for the rest to arrive upstream. */
  settleSeconds?: number;
  /** V8 flags of the gateway instead of production's. */
  v8Flags?: string;
  /** Writes a CPU profile of the gateway (and a markdown summary) into this directory. */
  profileDir?: string;
}

/** Result of {@linkcode measureE2e}. */
export interface E2eResult {
  /** Messages the devices sent, and those their broker acknowledged. */
  sent: number;
  acked: number;
  /** Messages per second the devices reached. */
  offeredRate: number;
  /** Distinct readings received upstream, per second from the first publish to the last arrival. */
  deliveredRate: number;
  /**
   * Readings sent that never arrived upstream (their devices' broker acknowledged every message in
   * the runs measured; `acked` tells).
   */
  lost: number;
  /** Readings that arrived more than once. */
  duplicates: number;
  /** Device publish → upstream arrival, ms. */
  latencyP50: number;
  latencyP99: number;
  /** Gateway CPU over the run, % of one core, and its peak RSS (bytes). */
  gatewayCpu: number;
  /** Gateway CPU time per message acknowledged to the devices, µs. */
  gatewayCpuUsPerMessage: number;
  gatewayPeakRss: number;
  /** Most readings waiting in the gateway's buffer for the uplink (sampled every 250 ms). */
  peakPending: number;
}

const METRICS: Record<string, number> = { a: 0, b: 1, c: 2 };

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? 0) * 1024;
}

interface Published {
  sent: number;
  acked: number;
  seconds: number;
}

/** Runs the devices (e2e_publisher.ts) to the end. */
async function publish(
  url: string,
  rate: number,
  seconds: number,
  devices: number,
): Promise<Published> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./e2e_publisher.ts", import.meta.url).pathname,
      url,
      String(rate),
      String(seconds),
      String(devices),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

/**
 * The limit of the same path without a gateway: the same devices and broker, and mqtt.js alone
 * subscribed (QoS 1, persistent session, PUBACK at once) counting messages. Messages per second
 * from the first publish to the last arrival.
 */
export async function measureE2eLimit(opts: E2eOptions): Promise<number> {
  const broker = await startMosquitto();
  const sub = await mqtt.connectAsync(broker.url, { clientId: "e2e-limit", clean: false });
  try {
    let got = 0;
    let last = 0;
    sub.on("message", () => {
      got++;
      last = performance.now();
    });
    await sub.subscribeAsync("dev/#", { qos: 1 });
    const t0 = performance.now();
    const pub = await publish(broker.url, opts.rate, opts.seconds, opts.devices ?? 100);
    const settle = performance.now() + 60_000;
    while (got < pub.acked && performance.now() < settle) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return Math.round(got / ((last - t0) / 1000));
  } finally {
    await sub.endAsync();
    await broker.stop();
  }
}

/** Runs the devices → gateway → upstream path once and counts what arrived. */
export async function measureE2e(opts: E2eOptions): Promise<E2eResult> {
  const devices = opts.devices ?? 100;
  const dir = await Deno.makeTempDir({ prefix: "outpost-e2e-" });
  const local = await startMosquitto();
  const up = await startMosquitto({ tls: true });
  const c = up.certs!;
  const expected = Math.ceil(opts.rate * opts.seconds);
  const seen = new Uint8Array(expected * 3);
  const latencies: number[] = [];
  let received = 0;
  let duplicates = 0;
  let lastArrival = 0;
  const sub = await mqtt.connectAsync(up.tlsUrl, {
    ca: Deno.readTextFileSync(c.ca),
    cert: Deno.readTextFileSync(c.clientCert),
    key: Deno.readTextFileSync(c.clientKey),
    clean: true,
  });
  sub.on("message", (_topic, payload) => {
    const m = JSON.parse(new TextDecoder().decode(payload)) as {
      t0: number;
      series: [string, string, string | null][];
      r: [number, number, number][];
    };
    const now = Date.now();
    for (const [s, dt, value] of m.r) {
      const k = value * 3 + METRICS[m.series[s][1]];
      if (seen[k]) duplicates++;
      else {
        seen[k] = 1;
        received++;
      }
      latencies.push(now - (m.t0 + dt));
    }
    lastArrival = performance.now();
  });
  await sub.subscribeAsync("e2e/telemetry", { qos: 1 });
  const gw = await startGateway(
    dir,
    `
gateway: { id: e2e-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${up.tlsUrl}
  tls: { ca: ${c.ca}, cert: ${c.clientCert}, key: ${c.clientKey} }
  topic: e2e/telemetry
adapters:
  - type: mqtt
    name: devices
    url: ${local.url}
    clientId: outpost-e2e
    cleanSession: false
    subscriptions:
      - topic: "dev/{device}"
        format: json
        qos: 1
        timestampField: ts
        fields: { a: a, b: b, c: c }
`,
    {
      waitHealthy: true,
      v8Flags: opts.v8Flags,
      denoFlags: opts.profileDir ? [`--cpu-prof-dir=${opts.profileDir}`, "--cpu-prof-md"] : [],
    },
  );
  let peakRss = 0;
  let peakPending = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, rssOf(gw.pid));
    } catch { /* exited */ }
  }, 100);
  const pendingSampler = setInterval(() => {
    gw.status().then((s) => peakPending = Math.max(peakPending, s.buffer.pending), () => {});
  }, 250);
  try {
    // Wait for the adapter's subscription before the devices start.
    for (let i = 0; i < 200; i++) {
      const s = await gw.status() as unknown as {
        adapters: { name: string; counters: Record<string, number> }[];
      };
      if (s.adapters.find((a) => a.name === "devices")?.counters.subscribed) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const cpu0 = cpuTicks(gw.pid);
    const t0 = performance.now();
    const pub = await publish(local.url, opts.rate, opts.seconds, devices);
    // The rest arrives, or nothing more comes for 10 s.
    const settle = performance.now() + (opts.settleSeconds ?? 120) * 1000;
    let last = received;
    let quietSince = performance.now();
    while (received < pub.sent * 3 && performance.now() < settle) {
      await new Promise((r) => setTimeout(r, 100));
      if (received !== last) {
        last = received;
        quietSince = performance.now();
      } else if (performance.now() - quietSince > 10_000) break;
    }
    const span = (lastArrival - t0) / 1000;
    const cpuS = (cpuTicks(gw.pid) - cpu0) / 100;
    const cpu = cpuS / span * 100;
    let lost = 0;
    // Which messages a broker left unacknowledged is not known: all that were sent count.
    for (let n = 0; n < pub.sent * 3; n++) if (!seen[n]) lost++;
    latencies.sort((a, b) => a - b);
    const pick = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    return {
      sent: pub.sent,
      acked: pub.acked,
      offeredRate: Math.round(pub.sent / pub.seconds),
      deliveredRate: Math.round(received / 3 / span),
      lost,
      duplicates,
      latencyP50: pick(0.5),
      latencyP99: pick(0.99),
      gatewayCpu: Math.round(cpu),
      gatewayCpuUsPerMessage: Math.round(cpuS / pub.acked * 1e6 * 10) / 10,
      gatewayPeakRss: peakRss,
      peakPending,
    };
  } finally {
    clearInterval(sampler);
    clearInterval(pendingSampler);
    await sub.endAsync();
    await gw.stop();
    await local.stop();
    await up.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Devices → local Mosquitto → gateway (`mqtt` adapter, persistent session) → upstream Mosquitto
 * over mutual TLS → a subscriber counting every reading: 30,000 messages/s × 3 readings for 10 s;
 * and the same devices and broker with mqtt.js alone subscribed (the path's limit here): the
 * bench's `e2e_*` rows.
 */
export async function e2eRows(quick: boolean): Promise<Result[]> {
  const rows: Result[] = [];
  const report = (r: Result) => rows.push(r);
  const opts = { rate: 30_000, seconds: quick ? 5 : 10 };
  const limit = await measureE2eLimit(opts);
  const r = await measureE2e(opts);
  report({
    name: "e2e_rate_offered",
    value: r.offeredRate,
    unit: "msgs/s (3 rdg)",
    target: "≥ 30000",
    ok: r.offeredRate >= 29_000,
  });
  report({
    name: "e2e_rate_delivered",
    value: r.deliveredRate,
    unit: "msgs/s",
    target: "≥ offered",
    ok: r.deliveredRate >= r.offeredRate * 0.97,
  });
  report({ name: "e2e_qos1_limit", value: limit, unit: "msgs/s", target: "-", ok: true });
  report({
    name: "e2e_delivered_of_limit",
    value: Math.round(r.deliveredRate / limit * 100),
    unit: "% of mqtt.js",
    target: "-",
    ok: true,
  });
  report({
    name: "e2e_lost",
    value: r.lost,
    unit: `readings (of ${r.sent * 3}, ${r.sent - r.acked} msgs unacked)`,
    target: "0",
    ok: r.lost === 0,
  });
  report({ name: "e2e_duplicates", value: r.duplicates, unit: "readings", target: "-", ok: true });
  report({ name: "e2e_latency_p99", value: r.latencyP99, unit: "ms", target: "-", ok: true });
  report({
    name: "e2e_gateway_cpu_per_msg",
    value: r.gatewayCpuUsPerMessage,
    unit: "µs",
    target: "-",
    ok: true,
  });
  report({
    name: "e2e_gateway_peak_backlog",
    value: r.peakPending,
    unit: "readings",
    target: "-",
    ok: true,
  });
  report({
    name: "e2e_gateway_peak_rss",
    value: Math.round(r.gatewayPeakRss / 1048576),
    unit: "MB",
    target: "-",
    ok: true,
  });
  return rows;
}

if (import.meta.main) {
  // `deno run -A bench/e2e.ts [rate] [seconds]`: one run, one JSON line.
  const rate = Number(Deno.args[0] ?? 30_000);
  const seconds = Number(Deno.args[1] ?? 10);
  const profileDir = Deno.env.get("OUTPOST_E2E_PROFILE");
  const v8Flags = Deno.env.get("OUTPOST_E2E_V8_FLAGS");
  console.log(JSON.stringify(await measureE2e({ rate, seconds, profileDir, v8Flags })));
}
