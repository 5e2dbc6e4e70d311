/**
 * The gateway page's history panel end to end: a gateway process on a buffer prepared with 40
 * days of readings of many devices, Debian's Chromium driven by Playwright, and `outpost export`
 * for the CSV the page downloads. Also: every device shows online/offline and when it was last
 * seen, whatever its adapter (simulated, http).
 */
import assert from "node:assert/strict";
import { Buffer } from "../src/buffer/mod.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DAY = 86_400_000;
const INGEST_TOKEN = "history-test-ingest-token";

/** 40 days of one reading every 2 min of 42 meters (1,209,600 readings), ending a minute ago. */
async function prepare(path: string): Promise<number> {
  const config = bufferSchema.check({ path, retention: "60d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  const end = Date.now() - 60_000;
  let batch = [];
  for (let ts = end - 40 * DAY, i = 0; ts < end; ts += 120_000, i++) {
    for (let m = 1; m <= 42; m++) {
      // A daily cycle plus the meter's own offset: the chart has a shape to check.
      const v = 50 + 40 * Math.sin((2 * Math.PI * (ts % DAY)) / DAY) + m;
      batch.push({
        device: `meter-${m}`,
        metric: "power",
        value: Math.round(v * 10) / 10,
        unit: "kW",
        ts,
      });
    }
    if (batch.length >= 10_000) {
      await buf.append(batch);
      batch = [];
    }
  }
  await buf.append(batch);
  const rows = buf.lastSeq;
  buf.close();
  return rows;
}

async function exportCsv(config: string, from: number, to: number): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "export",
      "--config",
      config,
      "--device",
      "meter-7",
      "--from",
      String(from),
      "--until",
      String(to),
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name:
    "history in Chromium: 24 h and 30 d of one device out of 1.2 million readings, downsampled by the gateway, CSV as outpost export writes it; presence for every adapter",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-history-" });
  await Deno.mkdir(`${dir}/data`);
  const rows = await prepare(`${dir}/data/buffer.db`);
  assert.equal(rows, 1_209_600);
  const ingest = freePort();
  const gw = await startGateway(
    dir,
    `
gateway: { id: hist-gw, site: "Substation 4" }
buffer: { path: ${dir}/data/buffer.db, retention: 60d }
adapters:
  - type: simulated
    name: sim
    devices: 2
    interval: 500ms
    prefix: pump
    metrics:
      - { name: pressure, pattern: sine, unit: bar, min: 2, max: 6, period: 10s, decimals: 3 }
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    offlineAfter: 3s
    tokens:
      - { name: boards, token: ${INGEST_TOKEN} }
`,
    { waitHealthy: true },
  );
  const browser = await launchBrowser();
  try {
    const page = await browser.browser.newPage({
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
      timezoneId: "UTC",
    });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const base = `http://127.0.0.1:${gw.httpPort}`;
    await page.goto(base + "/");
    await page.locator("#token").fill(gw.token());
    await page.locator("#login-submit").click();
    await page.locator("#app").waitFor({ state: "visible" });

    await t.step("devices of every adapter show online and when they were last seen", async () => {
      const post = await fetch(`http://127.0.0.1:${ingest}/ingest`, {
        method: "POST",
        headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ device: "esp-1", metric: "t", value: 21.5 }),
      });
      assert.equal(post.status, 200, await post.text());
      for (const id of ["pump-1", "esp-1"]) {
        const badge = page.locator(`[data-device="${id}"] .badge.presence`);
        await badge.waitFor({ timeout: 15_000 });
        assert.equal(await badge.innerText(), "online");
        assert.match(
          await page.locator(`[data-device="${id}"] .seen`).innerText(),
          /^seen \d+ s ago$/,
        );
      }
      for (const name of ["sim", "ingest"]) {
        assert.equal(
          await page.locator(`tr[data-adapter="${name}"] td:nth-child(6)`).innerText(),
          "all up",
        );
      }
      // The http device sends nothing more: offline after its entry's offlineAfter (3 s).
      await page.locator(`[data-device="esp-1"] .badge.presence.bad`).waitFor({ timeout: 15_000 });
      assert.equal(
        await page.locator(`[data-device="esp-1"] .badge.presence`).innerText(),
        "offline",
      );
      const st = await gw.status() as unknown as {
        adapters: {
          name: string;
          devices: Record<string, { state: string; lastSeen: number; reason: string }>;
        }[];
      };
      const esp = st.adapters.find((a) => a.name === "ingest")!.devices["esp-1"];
      assert.equal(esp.state, "offline");
      assert.match(esp.reason, /^no reading for \d+ s \(offline after 3 s\)$/);
      assert.ok(Date.now() - esp.lastSeen >= 3000);
    });

    const chooseDevice = async () => {
      await page.locator('#hist-device option[value="meter-7"]').waitFor({ state: "attached" });
      await page.locator("#hist-device").selectOption("meter-7");
    };

    await t.step("24 h: the chart shows the gateway's buckets of the last day", async () => {
      await chooseDevice();
      await page.locator('[data-range="86400000"]').click();
      const chart = page.locator('#hist-charts [data-metric="power"]');
      await waitFor(
        "the 24 h chart",
        async () =>
          (await page.locator("#hist-info").innerText()).includes("meter-7") &&
          Number(await page.locator("#hist-info").getAttribute("data-rows")) > 0,
        15_000,
        100,
      );
      const n = Number(await page.locator("#hist-info").getAttribute("data-rows"));
      // 720 readings a day (one every 2 min): each of the 500 buckets has one or two.
      assert.ok(n >= 715 && n <= 721, `${n} readings in 24 h`);
      const points = Number(await chart.getAttribute("data-points"));
      assert.ok(points > 400 && points <= 500, `${points} points`);
      const poly = await chart.locator("polyline.avg").getAttribute("points");
      assert.equal(poly!.split(" ").length, points);
      // The series spans about 17 to 97 kW over a day (meter-7: 50 ± 40 + 7).
      const [, lo, hi] = /min ([\d.]+) · max ([\d.]+)/.exec(
        await chart.locator(".axis").innerText(),
      )!;
      assert.ok(Number(lo) >= 16.9 && Number(lo) < 18, lo);
      assert.ok(Number(hi) > 96 && Number(hi) <= 97.1, hi);
    });

    await t.step(
      "30 d: at most 500 points for 21,600 readings, in well under a second",
      async () => {
        const started = performance.now();
        await page.locator('[data-range="2592000000"]').click();
        await waitFor(
          "the 30 d chart",
          async () => Number(await page.locator("#hist-info").getAttribute("data-rows")) > 20_000,
          15_000,
          20,
        );
        const took = performance.now() - started;
        const n = Number(await page.locator("#hist-info").getAttribute("data-rows"));
        assert.ok(n >= 21_590 && n <= 21_600, `${n} readings in 30 d`);
        const points = Number(
          await page.locator('#hist-charts [data-metric="power"]').getAttribute("data-points"),
        );
        assert.equal(points, 500);
        assert.equal(
          await page.locator('[data-range="2592000000"]').getAttribute("aria-pressed"),
          "true",
        );
        const info = await page.locator("#hist-info").innerText();
        const gwMs = Number(/\((\d+) ms on the gateway\)/.exec(info)![1]);
        console.log(
          `30 d of meter-7: ${n} readings → ${points} points; ${gwMs} ms on the gateway, ${
            Math.round(took)
          } ms click to chart`,
        );
        assert.ok(took < 3000, `${took} ms from click to chart (loaded machine: slack)`);
      },
    );

    await t.step("the CSV download of the range is what outpost export writes", async () => {
      const href = await page.locator("#hist-csv").getAttribute("href");
      const q = new URLSearchParams(href!.split("?")[1]);
      assert.equal(q.get("device"), "meter-7");
      const from = Number(q.get("from"));
      const to = Number(q.get("to"));
      assert.ok(Math.abs(to - from - 30 * DAY) < 1000);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.locator("#hist-csv").click(),
      ]);
      assert.match(download.suggestedFilename(), /^meter-7_\d{4}-\d\d-\d\dT.*\.csv$/);
      const file = `${dir}/download.csv`;
      await download.saveAs(file);
      const got = await Deno.readTextFile(file);
      const want = await exportCsv(gw.configPath, from, to);
      const n = Number(await page.locator("#hist-info").getAttribute("data-rows"));
      assert.equal(
        got.split("\n").length,
        n + 2,
        "the header, each reading shown, a final newline",
      );
      assert.equal(got, want);
    });

    await t.step("a custom range shows only its readings", async () => {
      await page.locator('[data-range="custom"]').click();
      await page.locator("#hist-from").fill("2020-01-01T00:00");
      await page.locator("#hist-to").fill("2020-01-02T00:00");
      await page.locator("#hist-apply").click();
      await waitFor(
        "the empty custom range",
        async () =>
          (await page.locator("#hist-info").innerText()).includes("no readings in this range"),
        15_000,
        100,
      );
      assert.match(
        await page.locator("#hist-info").innerText(),
        /from 2020-01-01 00:00 to 2020-01-02 00:00/,
      );
    });
    await t.step("signing out leaves none of the history in the page", async () => {
      await page.locator('[data-range="86400000"]').click();
      await page.locator('#hist-charts [data-metric="power"]').waitFor();
      await page.locator("#logout").click();
      await page.locator("#login").waitFor({ state: "visible" });
      await waitFor(
        "the history cleared",
        async () =>
          await page.locator("#hist-charts > *").count() === 0 &&
          await page.locator("#hist-device option").count() === 0,
        10_000,
        50,
      );
      assert.equal(await page.locator("#hist-info").innerText(), "");
    });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await gw.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
