/**
 * Benchmark of the `modbus` adapter: many TCP devices polled every second, measuring the CPU the
 * adapter's process spends and the poll cycles it misses.
 *
 * @module
 */
import process from "node:process";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { modbusSchema } from "./config.ts";
import { modbus } from "./mod.ts";
import { recorder, startServer } from "./testdata/harness.ts";

/** Options of {@linkcode benchModbus}. */
export interface BenchModbusOptions {
  /** Devices (unit ids 1…n on one server process, one connection each); at most 247. */
  devices?: number;
  /** Consecutive holding registers per device, read as uint16 metrics. */
  registers?: number;
  /** Measured time after every device answered once. */
  seconds?: number;
}

/** What {@linkcode benchModbus} measured. */
export interface BenchModbusResult {
  /** CPU time (user + system) of this process over the window, as % of one core. */
  cpuPercentOfOneCore: number;
  /** Poll ticks skipped because a cycle ran longer than its interval. */
  missedCycles: number;
  /** Poll cycles completed in the window (ideal: devices × seconds). */
  cycles: number;
  /** Readings emitted in the window. */
  readings: number;
}

/**
 * Starts a Modbus TCP server process serving `devices` unit ids, polls them all every second
 * with the adapter for `seconds`, and reports CPU use and missed cycles.
 *
 * @example
 * ```ts
 * const r = await benchModbus({ devices: 200, registers: 40, seconds: 30 });
 * console.log(`${r.cpuPercentOfOneCore.toFixed(1)}% of a core, ${r.missedCycles} missed`);
 * ```
 */
export async function benchModbus(options: BenchModbusOptions = {}): Promise<BenchModbusResult> {
  const devices = options.devices ?? 200;
  const registers = options.registers ?? 40;
  const seconds = options.seconds ?? 30;
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const server = await startServer(["--tcp", String(port), "--units", `1-${devices}`, "--quiet"]);
  const ctx = new Ctx();
  const config = modbusSchema.check(
    {
      devices: Array.from({ length: devices }, (_, i) => ({
        name: `dev-${i + 1}`,
        unitId: i + 1,
        tcp: { host: "127.0.0.1", port },
        groups: [{
          interval: "1s",
          registers: Array.from({ length: registers }, (_, r) => ({
            name: `r${r}`,
            function: "holding",
            address: r,
          })),
        }],
      })),
    },
    ctx,
    [],
  );
  if (config === INVALID) throw new Error(`bench config invalid: ${JSON.stringify(ctx.issues)}`);
  const rec = recorder(config);
  const running = modbus.start(rec.ctx);
  try {
    const deadline = Date.now() + 30_000;
    while (rec.readings.length < devices * registers) {
      if (Date.now() > deadline) throw new Error("bench devices did not all answer within 30s");
      await new Promise((r) => setTimeout(r, 50));
    }
    const counter = (n: string) => rec.counters.get(n) ?? 0;
    const [polls0, missed0, readings0] = [
      counter("polls"),
      counter("missed_cycles"),
      rec.readings.length,
    ];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - t0;
    const result = {
      cpuPercentOfOneCore: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
      missedCycles: counter("missed_cycles") - missed0,
      cycles: counter("polls") - polls0,
      readings: rec.readings.length - readings0,
    };
    // Keep memory flat over long runs: the recorder is only needed for counting.
    rec.readings.length = 0;
    return result;
  } finally {
    rec.controller.abort();
    await running;
    await server.stop();
  }
}
