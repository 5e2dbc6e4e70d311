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
import { measureWear } from "./wear.ts";
import { e2eRows } from "./e2e.ts";
import { exportReadings } from "../src/buffer/export.ts";
import { buildChunk, CHUNK_ROWS, ChunkRecorder } from "../src/buffer/series_index.ts";
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

/**
 * The storage's own limit for the ingest figures: node:sqlite alone inserting the buffer's row
 * shape (`readings(seq, ts, sid, value)`, same page size, WAL, `synchronous = NORMAL`) in
 * transactions of 1000 rows (the bench's `commitRows`), 250 rows per statement, values prepared
 * beforehand: no validation, no series lookup, no grouping of callers. `n` is a multiple of 1000.
 */
function sqliteInsertLimit(path: string, n: number): number {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  db.exec(
    "CREATE TABLE readings(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sid INTEGER NOT NULL, value ANY) STRICT",
  );
  const rows = makeReadings(n, 0, T0);
  const sids = new Map<string, number>();
  const sidOf = rows.map((r) => {
    const k = `${r.device}\u0000${r.metric}`;
    let sid = sids.get(k);
    if (sid === undefined) sids.set(k, sid = sids.size + 1);
    return sid;
  });
  // Values flattened beforehand; 250 rows per statement, as the buffer binds them.
  const flat = new Array<number>(n * 4);
  for (let k = 0; k < n; k++) {
    flat[4 * k] = k + 1;
    flat[4 * k + 1] = rows[k].ts;
    flat[4 * k + 2] = sidOf[k];
    flat[4 * k + 3] = rows[k].value as number;
  }
  const insert = db.prepare(
    "INSERT INTO readings(seq, ts, sid, value) VALUES " + Array(250).fill("(?,?,?,?)").join(","),
  );
  const t = performance.now();
  for (let i = 0; i < n; i += 1000) {
    db.exec("BEGIN");
    for (let k = i; k < i + 1000; k += 250) insert.run(...flat.slice(4 * k, 4 * (k + 250)));
    db.exec("COMMIT");
  }
  const rate = Math.round(n / ((performance.now() - t) / 1000));
  db.close();
  return rate;
}

/** `value` of an Outpost figure as a share of its raw limit measured in the same run. */
function reportShare(name: string, value: number, limit: number, limitName: string): void {
  const pct = Math.round(value / limit * 100);
  report({ name, value: pct, unit: `% of ${limitName}`, target: "-", ok: true });
}

async function benchIngest(dir: string): Promise<string> {
  const path = `${dir}/ingest.db`;
  const buffer = openBuffer(path);
  const pipeline = new Pipeline({ buffer, log: silentLogger() });
  // Warm up the JIT on a throwaway buffer so "empty" measures the buffer, not compilation.
  const warm = openBuffer(`${dir}/warmup.db`);
  await ingestRate(new Pipeline({ buffer: warm, log: silentLogger() }), 200_000, 0);
  warm.close();
  // The raw limit just before and just after the figure; the better one counts (less noise).
  const limitA = sqliteInsertLimit(`${dir}/limit-a.db`, 300_000);
  const empty = await ingestRate(pipeline, 300_000, 0);
  const limit = Math.max(limitA, sqliteInsertLimit(`${dir}/limit-b.db`, 300_000));
  report({
    name: "ingest_empty",
    value: empty,
    unit: "readings/s",
    target: "≥ 300000",
    ok: empty >= 300_000,
  });
  report({
    name: "sqlite_insert_limit",
    value: limit,
    unit: "rows/s",
    target: "-",
    ok: true,
  });
  reportShare("ingest_empty_of_limit", empty, limit, "sqlite");
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
  reportShare(`ingest_${PENDING / 1000}k_pending_of_limit`, full, limit, "sqlite");
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
    report({ name: "drain_peak_rss", value: mb, unit: "MB", target: "≤ 110", ok: mb <= 110 });
    const raw = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--v8-flags=${GATEWAY_V8_FLAGS}`,
        new URL("./mqtt_limit.ts", import.meta.url).pathname,
        broker.tlsUrl,
        c.ca,
        c.clientCert,
        c.clientKey,
        String(PENDING),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const l = JSON.parse(new TextDecoder().decode(raw.stdout).trim().split("\n").at(-1)!);
    const limit = Math.round(l.readings / l.seconds);
    report({
      name: "mqtt_qos1_limit_mtls",
      value: limit,
      unit: "readings/s",
      target: "-",
      ok: true,
    });
    reportShare("drain_mtls_of_limit", rate, limit, "mqtt.js");
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

/**
 * Reading → action dispatch latency at 10,000 readings/s with 100 rules, uplink down (issue 7):
 * ten runs, each in a process of its own with the gateway's V8 flags; the worst p99 counts.
 */
async function benchRuleLatency(): Promise<void> {
  const runs: { p50Ms: number; p99Ms: number }[] = [];
  for (let i = 0; i < 10; i++) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--v8-flags=${GATEWAY_V8_FLAGS}`,
        new URL("../src/edge/bench.ts", import.meta.url).pathname,
        String(values.quick ? 3 : 5),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    runs.push(JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!));
  }
  const round = (n: number) => Math.round(n * 100) / 100;
  const p99s = runs.map((r) => r.p99Ms).sort((a, b) => a - b);
  const p50s = runs.map((r) => r.p50Ms).sort((a, b) => a - b);
  report({
    name: "rules_dispatch_p50",
    value: round(p50s[5]),
    unit: "ms (median)",
    target: "-",
    ok: true,
  });
  report({
    name: "rules_dispatch_p99_median",
    value: round(p99s[5]),
    unit: "ms (10 runs)",
    target: "-",
    ok: true,
  });
  const worst = p99s[9];
  report({
    name: "rules_dispatch_p99_worst",
    value: round(worst),
    unit: `ms (${p99s.filter((p) => p <= 5).length}/10 ≤ 5)`,
    target: "≤ 5 in 10/10",
    ok: worst <= 5,
  });
}

/**
 * Storage written per reading by a gateway process (HTTP ingest, MQTT uplink to Mosquitto), 50
 * devices at 30 readings/s: posted one at a time, then in posts of 150 (every 5 s); and the same
 * gateway's RSS once the 50 devices fall quiet for 5 s.
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
  report({
    name: "idle_rss_50_devices",
    value: Math.round(single.idleRss / 1048576),
    unit: "MB",
    target: "-",
    ok: true,
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
  // The index's cost, alone: each of the last five chunks built again in a transaction that is
  // rolled back, as the buffer does it (each row noted as its commit writes it, then the chunk
  // written from those notes); the median of the thread's CPU time counts, so a busy machine
  // taking the core away does not count as cost. `index_chunk_scan_ms`: the same chunk built by
  // a GROUP BY over its rows (after a restart mid-chunk).
  const w = new DatabaseSync(path);
  const times: number[] = [];
  const scans: number[] = [];
  const recorder = new ChunkRecorder();
  // CPU time of this (the main) thread: the GC threads cleaning up after the 5M readings made
  // above would count in the process's.
  const threadMs = () =>
    Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]) / 1e6;
  const cpuMs = (since: number) => threadMs() - since;
  for (let k = 1; k <= 5; k++) {
    const lo = total - k * CHUNK_ROWS;
    const rows = w.prepare(
      "SELECT seq, ts, sid FROM readings WHERE seq > ? AND seq <= ? ORDER BY seq",
    ).all(lo, lo + CHUNK_ROWS).map((r) => [Number(r.seq), Number(r.ts), Number(r.sid)]);
    const clear = () => {
      w.exec(`DELETE FROM chunk_sids WHERE chunk = ${lo}`);
      w.exec(`DELETE FROM chunks WHERE lo = ${lo}`);
    };
    w.exec("BEGIN");
    clear();
    let cpu = threadMs();
    for (const [seq, ts, sid] of rows) recorder.record(seq, sid, ts, false);
    recorder.build(w, lo, true);
    times.push(cpuMs(cpu));
    clear();
    cpu = threadMs();
    buildChunk(w, lo, lo + CHUNK_ROWS, true);
    scans.push(cpuMs(cpu));
    w.exec("ROLLBACK");
  }
  w.close();
  if (recorder.fromMemory !== 5) throw new Error("the index bench did not build from memory");
  const chunkMs = times.sort((a, b) => a - b)[2];
  const scanMs = scans.sort((a, b) => a - b)[2];
  report({
    name: "index_chunk_scan_ms",
    value: Math.round(scanMs * 10) / 10,
    unit: "ms/chunk",
    target: "-",
    ok: true,
  });
  // At the ingest target (300k readings/s) that many chunks a second, as a share of one core.
  const cost = Math.round(chunkMs * (300_000 / CHUNK_ROWS) / 10);
  report({
    name: "index_cost_at_300k_per_s",
    value: cost,
    unit: `% (${Math.round(chunkMs * 10) / 10} ms/chunk)`,
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
  if (!only || only === "e2e") { for (const r of await e2eRows(values.quick === true)) report(r); }
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
