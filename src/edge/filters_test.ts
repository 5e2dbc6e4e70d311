import assert from "node:assert/strict";
import { Ctx, INVALID } from "../config/schema.ts";
import type { Reading } from "../reading.ts";
import { type FilterConfig, filterSchema } from "./config.ts";
import { FilterStage } from "./filters.ts";

function filters(...raw: Record<string, unknown>[]): FilterStage {
  return new FilterStage(raw.map((f) => {
    const r = filterSchema.check(f, new Ctx(), []);
    if (r === INVALID) throw new Error("bad filter");
    return r as FilterConfig;
  }));
}

const T = 1_700_000_000_000;
const series = (device: string, values: number[], step = 1000): Reading[] =>
  values.map((value, i) => ({ device, metric: "p", value, ts: T + i * step }));
const values = (rs: Reading[]) => rs.map((r) => r.value);

Deno.test("range drops out-of-range values and counts them; globs pick the devices", () => {
  const f = filters({ device: "pump-*", range: { min: 0, max: 10 } });
  assert.deepEqual(values(f.process(series("pump-1", [1, -1, 11, 5]), "m")), [1, 5]);
  assert.deepEqual(values(f.process(series("fan-1", [-1, 11]), "m")), [-1, 11]);
  assert.equal(f.stats().range, 2);
});

Deno.test("deadband absolute and percent, measured from the last value kept", () => {
  const abs = filters({ deadband: { absolute: 0.5 } });
  assert.deepEqual(values(abs.process(series("d", [10, 10.2, 10.4, 10.6, 10.7, 10]), "m")), [
    10,
    10.6,
    10,
  ]);
  const pct = filters({ deadband: { percent: 10 } });
  assert.deepEqual(values(pct.process(series("d", [100, 105, 111, 115, 123]), "m")), [
    100,
    111,
    123,
  ]);
});

Deno.test("throttle keeps one value per interval; spike rejection uses the median", () => {
  const th = filters({ throttle: "5s" });
  assert.deepEqual(values(th.process(series("d", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), "m")), [
    1,
    6,
    11,
  ]);
  const sp = filters({ spike: { window: 5, maxDeviation: 3 } });
  const kept = sp.process(series("d", [10, 11, 10, 11, 50, 10, 11, 20, 20, 20, 20, 20]), "m");
  // 50 is a spike; a lasting step to 20 is accepted once the median has moved.
  assert.deepEqual(values(kept), [10, 11, 10, 11, 10, 11, 20, 20]);
  assert.equal(sp.stats().spike, 4);
});
