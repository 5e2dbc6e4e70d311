import { defineAdapter, sleep } from "../../src/adapter.ts";
import type { Reading } from "../../src/reading.ts";
import { type SimulatedConfig, simulatedSchema } from "./config.ts";
import { mulberry32 as rng } from "../../src/rng.ts";

type MetricConfig = SimulatedConfig["metrics"][number];

/** Computes one metric's value at `t` for device `d`; `state` carries random-walk memory. */
export function patternValue(
  m: MetricConfig,
  t: number,
  d: number,
  state: Map<string, number>,
  random: () => number,
): number | boolean {
  const span = m.max - m.min;
  const phase = (d * 0.37) % 1;
  switch (m.pattern) {
    case "sine":
      return m.min + span * (0.5 + 0.5 * Math.sin(2 * Math.PI * (t / m.period + phase)));
    case "step":
      return Math.floor(t / m.period + phase * 4) % 2 === 0 ? m.min : m.max;
    case "constant":
      return m.min;
    case "toggle":
      return Math.floor(t / m.period + phase * 4) % 2 === 0;
    case "counter": {
      const key = `${d}:${m.name}`;
      const v = (state.get(key) ?? m.min) + random() * Math.max(span, 1) / 100;
      state.set(key, v);
      return v;
    }
    case "random-walk": {
      const key = `${d}:${m.name}`;
      const prev = state.get(key) ?? m.min + span * random();
      const next = Math.min(m.max, Math.max(m.min, prev + (random() - 0.5) * span * 0.02));
      state.set(key, next);
      return next;
    }
  }
}

function round(v: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
}

/** Simulated sensors: N devices whose metrics follow sine, random-walk or step patterns. */
export const simulated = defineAdapter<SimulatedConfig>({
  type: "simulated",
  schema: simulatedSchema,
  pollInterval: (config) => config.interval,
  async start({ config, emit, signal, log, setDeviceState }) {
    const random = rng(config.seed ?? Date.now());
    const state = new Map<string, number>();
    const silentUntil = new Array<number>(config.devices).fill(0);
    const started = Date.now();
    log.info("simulating devices", {
      devices: config.devices,
      metrics: config.metrics.length,
      interval: `${config.interval}ms`,
    });
    let next = Date.now();
    while (!signal.aborted) {
      const now = Date.now();
      if (config.failAfter !== undefined && now - started >= config.failAfter) {
        throw new Error(`simulated failure after ${config.failAfter}ms (failAfter)`);
      }
      const batch: Reading[] = [];
      for (let d = 0; d < config.devices; d++) {
        const device = `${config.prefix}-${d + 1}`;
        if (silentUntil[d] > now) continue;
        if (config.gaps && random() < config.gaps.probability) {
          silentUntil[d] = now + config.gaps.duration;
          setDeviceState(device, "offline", "simulated gap");
          continue;
        }
        if (silentUntil[d] !== 0) {
          silentUntil[d] = 0;
          setDeviceState(device, "online");
        }
        for (const m of config.metrics) {
          let v = patternValue(m, now - started, d, state, random);
          if (typeof v === "number") {
            if (config.spikes && random() < config.spikes.probability) v += config.spikes.magnitude;
            v = round(v, m.decimals);
          }
          batch.push({ device, metric: m.name, value: v, unit: m.unit, ts: now });
        }
      }
      if (batch.length) await emit(batch);
      next += config.interval;
      const wait = next - Date.now();
      // After a stall (suspend, overload) resume the schedule instead of bursting to catch up.
      if (wait < -config.interval) next = Date.now();
      await sleep(Math.max(0, wait), signal);
    }
  },
});
