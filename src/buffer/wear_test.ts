import assert from "node:assert/strict";
import { lifeYears, parseEndurance, parseWriteBytes, WearMeter } from "./wear.ts";
import { adapters } from "../../adapters/mod.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { ConfigError, parseConfig } from "../config/load.ts";
import { Gateway } from "../gateway.ts";
import { createLogger } from "../log.ts";
import { parsePrometheus, sampleValue } from "../../test/helpers/prometheus.ts";
import { processStats, renderMetrics } from "../http/metrics.ts";

Deno.test("parseEndurance() reads TBW in decimal units as card makers state it", () => {
  assert.equal(parseEndurance("30TB"), 30e12);
  assert.equal(parseEndurance("150 TBW"), 150e12);
  assert.equal(parseEndurance("600gb"), 600e9);
  assert.equal(parseEndurance("1.5PB"), 1.5e15);
  assert.equal(parseEndurance("30"), undefined);
  assert.equal(parseEndurance("0TB"), undefined);
  assert.equal(parseEndurance("30 TiB"), undefined);
});

Deno.test("lifeYears() divides endurance by the daily rate", () => {
  // 30 TB at 600 MB a day: 50,000 days.
  assert.equal(Math.round(lifeYears(30e12, 600e6)), Math.round(50_000 / 365.25));
  assert.equal(lifeYears(30e12, 0), Infinity);
});

Deno.test("parseWriteBytes() takes write_bytes, not wchar, from /proc/<pid>/io", () => {
  const io =
    "rchar: 10\nwchar: 999999\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 0\n";
  assert.equal(parseWriteBytes(io), 81920);
  assert.equal(parseWriteBytes("rchar: 1\n"), null);
  // The real file of this process parses.
  assert.equal(typeof parseWriteBytes(Deno.readTextFileSync("/proc/self/io")), "number");
});

Deno.test("WearMeter: the rate per day over the last hour, and the years of life at that rate", () => {
  let now = 0;
  let bytes = 5_000_000; // written before the meter started (opening): not part of the rate
  const m = new WearMeter({ read: () => bytes, now: () => now, enduranceBytes: 30e12 });
  assert.equal(m.stats().bytesPerDay, null, "no rate before 10 s of data");
  // 7 KB/s for an hour: 604.8 MB a day.
  for (let s = 1; s <= 3600; s++) {
    now = s * 1000;
    bytes += 7000;
    if (s % 30 === 0) m.stats();
  }
  let st = m.stats();
  assert.equal(st.writtenBytes, 5_000_000 + 3600 * 7000);
  assert.equal(st.bytesPerDay, 604_800_000);
  assert.equal(st.enduranceBytes, 30e12);
  assert.equal(st.lifeYears, Math.round(30e12 / 604_800_000 / 365.25 * 10) / 10);
  // The rate follows the last hour: 10× the writes for two hours show as 10× the rate.
  for (let s = 3601; s <= 3 * 3600; s++) {
    now = s * 1000;
    bytes += 70_000;
    if (s % 30 === 0) m.stats();
  }
  st = m.stats();
  assert.ok(
    Math.abs(st.bytesPerDay! - 6_048_000_000) / 6_048_000_000 < 0.02,
    `rate ${st.bytesPerDay}`,
  );
  m.setEndurance(undefined);
  assert.equal(m.stats().lifeYears, null);
});

Deno.test("buffer.storageEndurance is checked at load: a bad value names the key", () => {
  const yaml = (v: string) => `gateway: { id: g }\nbuffer: { storageEndurance: ${v} }\n`;
  const ok = parseConfig(yaml("30TB"), gatewaySchema(adapters));
  assert.equal(ok.buffer.storageEndurance, 30e12);
  assert.throws(
    () => parseConfig(yaml("lots"), gatewaySchema(adapters)),
    (e: unknown) =>
      e instanceof ConfigError && /buffer\.storageEndurance/.test(e.message) &&
      /30TB/.test(e.message),
  );
});

Deno.test("status and /metrics carry storage written, the rate per day and the card's life", async () => {
  const dir = await Deno.makeTempDir();
  const config = parseConfig(
    `
gateway: { id: wear-gw }
buffer: { path: ${dir}/buffer.db, storageEndurance: 30TB }
adapters:
  - { type: simulated, name: sim, devices: 3, interval: 20ms }
`,
    gatewaySchema(adapters),
  );
  const gw = Gateway.start({
    config,
    adapters,
    log: createLogger({ sink: () => {} }),
    version: "t",
  });
  try {
    const st = gw.status();
    assert.equal(st.storage.enduranceBytes, 30e12);
    assert.equal(typeof st.storage.writtenBytes, "number");
    const m = parsePrometheus(renderMetrics(st, { process: processStats() }));
    assert.equal(sampleValue(m, "outpost_storage_written_bytes_total"), st.storage.writtenBytes);
    assert.equal(m.get("outpost_storage_written_bytes_total")?.type, "counter");
    assert.equal(m.get("outpost_buffer_commits_total")?.type, "counter");
    // Rate and life once there is a rate (the status of a fixed figure).
    const later = structuredClone(st);
    later.storage = { ...st.storage, bytesPerDay: 600e6, lifeYears: 136.9 };
    const m2 = parsePrometheus(renderMetrics(later, { process: processStats() }));
    assert.equal(sampleValue(m2, "outpost_storage_written_bytes_per_day"), 600e6);
    assert.equal(sampleValue(m2, "outpost_storage_life_years"), 136.9);
  } finally {
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
