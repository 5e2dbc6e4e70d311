/**
 * `deno task bench [--json] [--quick]`: measures the spine against its targets and prints a table
 * (or one JSON object per line with --json). Runs on loopback only.
 */
import { parseArgs } from "node:util";
import { Buffer } from "../src/buffer/buffer.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import { Pipeline } from "../src/pipeline.ts";
import { encodeBatches } from "../src/uplink/encode.ts";
import { startMosquitto } from "../test/helpers/mosquitto.ts";
import { makeReadings } from "./_data.ts";
import { GATEWAY_V8_FLAGS } from "../src/runtime_flags.ts";
import { benchModbus } from "../adapters/modbus/bench.ts";
import { benchRules } from "../src/edge/bench.ts";
import { measureWear } from "./wear.ts";
import { exportReadings } from "../src/buffer/export.ts";
import { buildChunk, CHUNK_ROWS } from "../src/buffer/series_index.ts";
import { DatabaseSync } from "node:sqlite";

/** One measured value. */
export interface Result {
  name: string;
  value: number;
  unit: string;
  target: string;
  ok: boolean;
}

const { values } = parseArgs({
  args: Deno.args,
  options: { json: { type: "boolean" }, quick: { type: "boolean" }, only: { type: "string" } },
});
const results: Result[] = [];
const T0 = Date.now() - 86_400_000;
const PENDING = values.quick ? 200_000 : 1_000_000;

function report(r: Result): void {
  results.push(r);
  if (values.json) {
    console.log(JSON.stringify({ name: r.name, value: r.value, unit: r.unit, target: r.target }));
  } else {
    console.error(`  measured ${r.name}: ${r.value} ${r.unit}`);
  }
}

function openBuffer(path: string): Buffer {
  return Buffer.open(
    bufferSchema.check({ path, integrityCheck: false, commitRows: 1000 }, new Ctx(), []) as never,
    { log: silentLogger() },
  );
}

/** Ingest through the pipeline (validation + grouped commits), adapters emitting 100 at a time. */
async function ingestRate(pipeline: Pipeline, n: number, start: number): Promise<number> {
  const chunks = [];
  for (let i = 0; i < n; i += 100) chunks.push(makeReadings(100, start + i, T0));
  const t = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (const c of chunks) {
    inflight.push(pipeline.emit("bench", c));
    if (inflight.length >= 50) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  return Math.round(n / ((performance.now() - t) / 1000));
}

async function benchIngest(dir: string): Promise<string> {
  const path = `${dir}/ingest.db`;
  const buffer = openBuffer(path);
  const pipeline = new Pipeline({ buffer, log: silentLogger() });
  // Warm up the JIT on a throwaway buffer so "empty" measures the buffer, not compilation.
  const warm = openBuffer(`${dir}/warmup.db`);
  await ingestRate(new Pipeline({ buffer: warm, log: silentLogger() }), 200_000, 0);
  warm.close();
  const empty = await ingestRate(pipeline, 300_000, 0);
  report({
    name: "ingest_empty",
    value: empty,
    unit: "readings/s",
    target: "≥ 300000",
    ok: empty >= 300_000,
  });
  // Fill to the pending level, then measure the same ingest on top of it.
  for (let i = 300_000; i < PENDING; i += 100_000) {
    await pipeline.emit("fill", makeReadings(100_000, i, T0));
  }
  const full = await ingestRate(pipeline, 300_000, PENDING);
  report({
    name: `ingest_${PENDING / 1000}k_pending`,
    value: full,
    unit: "readings/s",
    target: "≥ 300000, flat",
    ok: full >= 300_000 && full >= empty * 0.8,
  });
  report({
    name: "ingest_flatness",
    value: Math.round(full / empty * 100),
    unit: "% of empty",
    target: "≥ 80",
    ok: full >= empty * 0.8,
  });
  buffer.close();
  return path;
}

async function benchDrain(dir: string): Promise<void> {
  const path = `${dir}/drain.db`;
  const buffer = openBuffer(path);
  for (let i = 0; i < PENDING; i += 100_000) await buffer.append(makeReadings(100_000, i, T0));
  buffer.close();
  const broker = await startMosquitto({ tls: true });
  try {
    const c = broker.certs!;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--v8-flags=${GATEWAY_V8_FLAGS}`,
        new URL("./drain_worker.ts", import.meta.url).pathname,
        path,
        broker.tlsUrl,
        c.ca,
        c.clientCert,
        c.clientKey,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    const rate = Math.round(r.readings / r.seconds);
    report({
      name: "drain_mtls",
      value: rate,
      unit: "readings/s",
      target: "≥ 150000",
      ok: rate >= 150_000,
    });
    const perReading = Math.round(r.bytes / r.readings * 10) / 10;
    report({
      name: "wire_bytes_per_reading",
      value: perReading,
      unit: "bytes",
      target: "≤ 40",
      ok: perReading <= 40,
    });
    const mb = Math.round(r.peakRss / 1048576);
    report({ name: "drain_peak_rss", value: mb, unit: "MB", target: "≤ 120", ok: mb <= 120 });
  } finally {
    await broker.stop();
  }
}

function benchBilling(): void {
  const readings = makeReadings(100_000, 0, T0).map((r, i) => ({ ...r, seq: i + 1 }));
  const id = { gatewayId: "plant3-gw1", epoch: "a1b2c3d4e5f6" };
  for (
    const [name, limits] of [
      ["billable_5kb_per_1000_default", { maxBytes: 128 * 1024 }],
      ["billable_5kb_per_1000_target5kb", { maxBytes: 128 * 1024, targetBytes: 5 * 1024 }],
    ] as const
  ) {
    const batches = encodeBatches(readings, id, limits);
    const units = batches.reduce(
      (n, b) => n + Math.ceil(new TextEncoder().encode(b.payload).length / 5120),
      0,
    );
    const per1000 = Math.round(units / (readings.length / 1000) * 10) / 10;
    report({ name, value: per1000, unit: "messages", target: "≤ 20", ok: per1000 <= 20 });
  }
}

/** 200 Modbus TCP devices × 40 registers polled every second for 30 s (issue 3). */
async function benchModbusPolling(): Promise<void> {
  const r = await benchModbus({ devices: 200, registers: 40, seconds: values.quick ? 10 : 30 });
  const cpu = Math.round(r.cpuPercentOfOneCore * 10) / 10;
  report({
    name: "modbus_200x40_cpu",
    value: cpu,
    unit: "% of 1 core",
    target: "< 25",
    ok: cpu < 25,
  });
  report({
    name: "modbus_200x40_missed_cycles",
    value: r.missedCycles,
    unit: `of ${r.cycles}`,
    target: "0",
    ok: r.missedCycles === 0,
  });
}

/** Reading → action dispatch latency at 10,000 readings/s with 100 rules, uplink down (issue 7). */
async function benchRuleLatency(): Promise<void> {
  const r = await benchRules({ rate: 10_000, rules: 100, seconds: values.quick ? 3 : 5 });
  const round = (n: number) => Math.round(n * 100) / 100;
  report({ name: "rules_dispatch_p50", value: round(r.p50Ms), unit: "ms", target: "-", ok: true });
  report({
    name: "rules_dispatch_p99",
    value: round(r.p99Ms),
    unit: "ms",
    target: "≤ 5",
    ok: r.p99Ms <= 5,
  });
}

/**
 * Storage written per reading by a gateway process (HTTP ingest, MQTT uplink to Mosquitto), 50
 * devices at 30 readings/s: posted one at a time, then in posts of 150 (every 5 s).
 */
async function benchWear(): Promise<void> {
  const seconds = values.quick ? 10 : 30;
  const single = await measureWear({ devices: 50, rate: 30, perRequest: 1, seconds });
  report({
    name: "wear_bytes_per_reading_single",
    value: single.bytesPerReading,
    unit: "bytes",
    target: "≤ 512 (256)",
    ok: single.bytesPerReading <= 512,
  });
  report({
    name: "wear_mb_per_day_30rps",
    value: Math.round(single.bytesPerReading * 30 * 86_400 / 1e6),
    unit: "MB/day",
    target: "-",
    ok: true,
  });
  report({
    name: "wear_single_max_wait",
    value: single.maxLatencyMs,
    unit: "ms",
    target: "≤ 1100",
    ok: single.maxLatencyMs <= 1100,
  });
  const batched = await measureWear({ devices: 50, rate: 30, perRequest: 150, seconds });
  report({
    name: "wear_bytes_per_reading_batched",
    value: batched.bytesPerReading,
    unit: "bytes",
    target: "≤ 256",
    ok: batched.bytesPerReading <= 256,
  });
}

/**
 * A 30-day export of one device out of a 5M-reading buffer (100 devices), by the CLI's path
 * (`exportReadings`, read-only) and the remote query's (`Buffer.query` pages); and what the series
 * index costs ingest (one chunk built per CHUNK_ROWS readings, timed alone).
 */
async function benchQuery(dir: string): Promise<void> {
  const total = values.quick ? 1_000_000 : 5_000_000;
  const path = `${dir}/query.db`;
  const buffer = openBuffer(path);
  for (let i = 0; i < total; i += 100_000) await buffer.append(makeReadings(100_000, i, T0));
  const db = new DatabaseSync(path, { readOnly: true });
  const chunks = () =>
    Number((db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number }).n);
  while (chunks() < Math.floor(total / CHUNK_ROWS)) await new Promise((r) => setTimeout(r, 50));
  db.close();
  const from = Date.now() - 30 * 86_400_000;
  let t = performance.now();
  let n = 0;
  for (const _ of exportReadings(path, { device: "dev-7", from })) n++;
  const cli = Math.round(performance.now() - t);
  report({
    name: `query_30d_one_device_ms_${total / 1e6}M`,
    value: cli,
    unit: `ms (${n} rows)`,
    target: "≤ 1000",
    ok: cli <= 1000,
  });
  t = performance.now();
  let m = 0;
  for (let after = 0;;) {
    const page = buffer.query({ device: "dev-7", from, afterSeq: after, limit: 500 });
    if (page.length === 0) break;
    m += page.length;
    after = page[page.length - 1].seq;
  }
  const remote = Math.round(performance.now() - t);
  report({
    name: "query_30d_one_device_remote_path_ms",
    value: remote,
    unit: `ms (${m} rows)`,
    target: "≤ 2× CLI",
    ok: remote <= 2 * Math.max(cli, 100),
  });
  buffer.close();
  // The index's cost, alone: each of the last three chunks built again in a transaction that is
  // rolled back; the median counts.
  const w = new DatabaseSync(path);
  const times: number[] = [];
  for (let k = 1; k <= 3; k++) {
    const lo = total - k * CHUNK_ROWS;
    w.exec("BEGIN");
    w.exec(`DELETE FROM chunk_sids WHERE chunk = ${lo}`);
    w.exec(`DELETE FROM chunks WHERE lo = ${lo}`);
    t = performance.now();
    buildChunk(w, lo, lo + CHUNK_ROWS, true);
    times.push(performance.now() - t);
    w.exec("ROLLBACK");
  }
  w.close();
  const chunkMs = times.sort((a, b) => a - b)[1];
  // At the ingest target (300k readings/s) that many chunks a second, as a share of one core.
  const cost = Math.round(chunkMs * (300_000 / CHUNK_ROWS) / 10);
  report({
    name: "index_cost_at_300k_per_s",
    value: cost,
    unit: `% (${Math.round(chunkMs)} ms/chunk)`,
    target: "≤ 10",
    ok: cost <= 10,
  });
}

const dir = await Deno.makeTempDir({ prefix: "outpost-bench-" });
try {
  const only = values.only;
  if (!values.json) {
    console.error(
      `Outpost bench (${
        PENDING.toLocaleString("en")
      } pending; ${navigator.hardwareConcurrency} cores)`,
    );
  }
  if (!only || only === "ingest") await benchIngest(dir);
  if (!only || only === "drain") await benchDrain(dir);
  if (!only || only === "billing") benchBilling();
  if (!only || only === "modbus") await benchModbusPolling();
  if (!only || only === "rules") await benchRuleLatency();
  if (!only || only === "wear") await benchWear();
  if (!only || only === "query") await benchQuery(dir);
  for (
    const extra
      of (globalThis as { outpostBenchExtras?: (() => Promise<Result[]>)[] }).outpostBenchExtras ??
        []
  ) {
    for (const r of await extra()) report(r);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
if (!values.json) {
  const w = Math.max(...results.map((r) => r.name.length));
  console.log(
    `${"metric".padEnd(w)}  ${"value".padStart(10)}  ${"unit".padEnd(12)}  ${
      "target".padEnd(16)
    }  ok`,
  );
  for (const r of results) {
    console.log(
      `${r.name.padEnd(w)}  ${String(r.value).padStart(10)}  ${r.unit.padEnd(12)}  ${
        r.target.padEnd(16)
      }  ${r.ok ? "yes" : "NO"}`,
    );
  }
}
