import type { Reading } from "../src/reading.ts";

/** Realistic readings: `devices` devices × 4 metrics, 2-decimal values, one sample per device per ms tick. */
export function makeReadings(n: number, start: number, t0: number, devices = 100): Reading[] {
  const metrics = [["temperature", "C"], ["pressure", "bar"], ["flow", "m3/h"], ["power", "kW"]];
  const out: Reading[] = new Array(n);
  for (let k = 0; k < n; k++) {
    const i = start + k;
    const d = i % devices;
    const m = metrics[Math.floor(i / devices) % metrics.length];
    out[k] = {
      device: `dev-${d}`,
      metric: m[0],
      value: Math.round((20 + 10 * Math.sin(i / 1000) + d / 10) * 100) / 100,
      unit: m[1],
      ts: t0 + Math.floor(i / (devices * metrics.length)) * 1000,
    };
  }
  return out;
}
