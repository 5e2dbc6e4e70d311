import { Buffer } from "../buffer/buffer.ts";
import { bufferSchema } from "../config/gateway.ts";
import { Ctx } from "../config/schema.ts";
import { silentLogger } from "../log.ts";
import { Pipeline } from "../pipeline.ts";
import type { Reading } from "../reading.ts";
import { type RuleConfig, ruleSchema } from "./config.ts";
import { Edge } from "./mod.ts";

/** Options of {@linkcode benchRules}. */
export interface BenchRulesOptions {
  /** Readings per second fed into the pipeline. */
  rate: number;
  /** Rules, each on its own metric; readings are spread evenly over them. */
  rules: number;
  seconds: number;
}

/** Latency percentiles of {@linkcode benchRules}. */
export interface BenchRulesResult {
  p50Ms: number;
  p99Ms: number;
  /** Transitions measured. */
  samples: number;
}

/**
 * Measures reading → action dispatch latency with no uplink: readings go through the real
 * pipeline (validation, rules stage, SQLite buffer) in 10 ms batches, every 10th reading of a
 * metric crosses its rule’s threshold, and the time from the batch's scheduled emit to the rule's
 * in-process transition callback is recorded.
 *
 * @example
 * ```ts ignore
 * const { p50Ms, p99Ms } = await benchRules({ rate: 10_000, rules: 100, seconds: 5 });
 * ```
 */
export async function benchRules(opts: BenchRulesOptions): Promise<BenchRulesResult> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-bench-rules-" });
  const config = bufferSchema.check(
    { path: `${dir}/buffer.db`, integrityCheck: false },
    new Ctx(),
    [],
  ) as Parameters<typeof Buffer.open>[0];
  const buffer = Buffer.open(config, { log: silentLogger() });
  const pipeline = new Pipeline({ buffer, log: silentLogger() });
  const rules = Array.from({ length: opts.rules }, (_, i) =>
    ruleSchema.check(
      { name: `r${i}`, when: { device: "bench", metric: `m${i}`, above: 50, clearBelow: 40 } },
      new Ctx(),
      [],
    ) as RuleConfig);
  const latencies: number[] = [];
  let scheduled = 0;
  const edge = Edge.start({
    config: { filters: [], aggregate: [], rules },
    bufferPath: config.path,
    emit: (source, readings) => pipeline.emit(source, readings),
    write: () => Promise.resolve(),
    uplink: undefined,
    log: silentLogger(),
    onTransition: () => latencies.push(performance.now() - scheduled),
  });
  pipeline.setStages(edge.stages);
  const perBatch = Math.max(1, Math.round(opts.rate / 100));
  const batches = opts.seconds * 100;
  const start = performance.now();
  const pending: Promise<unknown>[] = [];
  let n = 0;
  for (let b = 0; b < batches; b++) {
    const due = start + b * 10;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const readings: Reading[] = [];
    const ts = Date.now();
    for (let i = 0; i < perBatch; i++, n++) {
      const m = n % opts.rules;
      const k = Math.floor(n / opts.rules);
      readings.push({ device: "bench", metric: `m${m}`, value: k % 20 < 10 ? 10 : 90, ts });
    }
    // Latency counts from the moment the readings enter the pipeline (an adapter's emit).
    scheduled = performance.now();
    pending.push(pipeline.emit("bench", readings));
    if (pending.length > 20) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await edge.stop();
  buffer.close();
  await Deno.remove(dir, { recursive: true });
  latencies.sort((a, b) => a - b);
  const pick = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return { p50Ms: round(pick(0.5)), p99Ms: round(pick(0.99)), samples: latencies.length };
}

if (import.meta.main) {
  // `deno run -A src/edge/bench.ts [seconds]`: one JSON line (the bench runs it in a process of
  // its own, with the gateway's V8 flags).
  const seconds = Number(Deno.args[0] ?? 5);
  console.log(JSON.stringify(await benchRules({ rate: 10_000, rules: 100, seconds })));
}
