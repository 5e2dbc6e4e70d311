import assert from "node:assert/strict";
import { Buffer, CSV_HEADER, csvLine, exportReadings } from "../buffer/mod.ts";
import { bufferSchema } from "../config/gateway.ts";
import { Ctx, INVALID } from "../config/schema.ts";
import { silentLogger } from "../log.ts";
import { downsample, historyRoutes, parseHistoryRange } from "./history_api.ts";

const DAY = 86_400_000;
const END = Date.UTC(2026, 10, 30);

async function seeded(dir: string): Promise<Buffer> {
  const config = bufferSchema.check({ path: `${dir}/b.db`, retention: "90d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  // 40 days of one reading every 10 min for 50 devices, interleaved, plus a text metric.
  let batch = [];
  for (let ts = END - 40 * DAY, i = 0; ts < END; ts += 600_000, i++) {
    for (let d = 1; d <= 50; d++) {
      batch.push({ device: `m-${d}`, metric: "power", value: (i % 144) + d, unit: "kW", ts });
    }
    batch.push({ device: "m-7", metric: "door", value: i % 2 === 0, ts });
    if (i % 100 === 0) batch.push({ device: "m-7", metric: "mode", value: `auto ${i}`, ts });
    if (batch.length >= 5000) {
      await buf.append(batch);
      batch = [];
    }
  }
  await buf.append(batch);
  buf.flush();
  return buf;
}

Deno.test("downsample() gives at most the asked buckets per metric, with the true min, max, mean and last", async () => {
  const dir = await Deno.makeTempDir();
  const buf = await seeded(dir);
  try {
    const q = parseHistoryRange(
      new URLSearchParams({ device: "m-7", from: String(END - 30 * DAY), to: String(END) }),
    );
    assert.equal(q.buckets, 500);
    const h = await downsample(buf, q);
    assert.deepEqual(Object.keys(h.metrics), ["door", "power"]);
    assert.equal(h.bucketMs, Math.ceil(30 * DAY / 500));
    const power = h.metrics.power.points;
    assert.ok(power.length <= 500 && power.length >= 499, `${power.length} points`);
    assert.equal(h.metrics.power.unit, "kW");
    // Brute force over the same rows.
    const rows = buf.query({
      device: "m-7",
      metric: "power",
      from: q.from,
      to: q.to,
      limit: 1e6,
    });
    assert.equal(h.rows, rows.length * 2 + h.text.mode.n);
    const first = rows.filter((r) => r.ts < q.from + h.bucketMs).map((r) => r.value as number);
    const [ts, avg, min, max, last, n] = power[0];
    assert.equal(ts, q.from);
    assert.equal(n, first.length);
    assert.equal(min, Math.min(...first));
    assert.equal(max, Math.max(...first));
    assert.equal(last, first.at(-1));
    assert.ok(Math.abs(avg - first.reduce((a, b) => a + b, 0) / first.length) < 1e-9);
    assert.equal(h.metrics.door.points[0][2], 0);
    assert.equal(h.metrics.door.points[0][3], 1);
    assert.equal(h.text.mode.last.startsWith("auto "), true);
  } finally {
    buf.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseHistoryRange() names the parameter that is wrong", () => {
  assert.throws(() => parseHistoryRange(new URLSearchParams({})), /device: required/);
  assert.throws(
    () => parseHistoryRange(new URLSearchParams({ device: "a", from: "yesterday" })),
    /from: expected ms since epoch or ISO 8601, got "yesterday"/,
  );
  assert.throws(
    () => parseHistoryRange(new URLSearchParams({ device: "a", from: "10", to: "5" })),
    /to \(5\) must be after from \(10\)/,
  );
  assert.throws(
    () => parseHistoryRange(new URLSearchParams({ device: "a", buckets: "0" })),
    /buckets: expected an integer 1–2000, got "0"/,
  );
  const q = parseHistoryRange(
    new URLSearchParams({ device: "a", to: "2026-12-01T00:00:00Z" }),
  );
  assert.equal(q.from, Date.UTC(2026, 11, 1) - DAY);
});

Deno.test("the CSV download of a range is byte for byte what outpost export writes", async () => {
  const dir = await Deno.makeTempDir();
  const buf = await seeded(dir);
  try {
    const routes = historyRoutes(() => buf);
    const from = END - 7 * DAY + 123;
    const to = END - DAY;
    const res = await routes.csv(
      new URL(`http://x/api/history.csv?device=m-7&from=${from}&to=${to}`),
    );
    assert.equal(res.headers.get("content-type"), "text/csv; charset=utf-8");
    assert.match(res.headers.get("content-disposition")!, /^attachment; filename="m-7_2026-11-23T/);
    const got = await res.text();
    const want =
      [CSV_HEADER, ...[...exportReadings(buf.path, { device: "m-7", from, to })].map(csvLine)]
        .join("\n") + "\n";
    assert.equal(got, want);
    assert.ok(got.split("\n").length > 1000);
    const bad = await routes.history(new URL("http://x/api/history?device=m-7&buckets=x"));
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /buckets/);
    const series = await (await routes.series(new URL("http://x/"))).json();
    assert.deepEqual(series.devices["m-7"], ["door", "mode", "power"]);
    assert.equal(Object.keys(series.devices).length, 50);
  } finally {
    buf.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downsample() lets the event loop run between pages of rows", async () => {
  const dir = await Deno.makeTempDir();
  const buf = await seeded(dir);
  try {
    let ticks = 0;
    const tick = setInterval(() => ticks++, 0);
    const h = await downsample(
      buf,
      parseHistoryRange(new URLSearchParams({ device: "m-7", from: "0", to: String(END) })),
    );
    clearInterval(tick);
    assert.ok(h.rows > 10_000, `${h.rows} rows`);
    assert.ok(ticks >= 1, "a timer ran while it read");
  } finally {
    buf.close();
    await Deno.remove(dir, { recursive: true });
  }
});
