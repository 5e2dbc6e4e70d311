/**
 * The gateway page's alarms panel and its sign-in, end to end: a real gateway process with an
 * `http` adapter and a rule, Debian's Chromium driven by Playwright.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { launchBrowser } from "./helpers/browser.ts";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { parsePrometheus, sampleValue } from "./helpers/prometheus.ts";

const INGEST_TOKEN = "alarm-page-ingest-token-0123456789";

const YAML = (dir: string, ingest: number) => `
gateway: { id: alarm-gw, site: "Boiler room" }
buffer: { path: ${dir}/data/buffer.db }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    tokens: [{ token: ${INGEST_TOKEN} }]
rules:
  - name: boiler-hot
    severity: critical
    message: "boiler {device} at {value} °C"
    when: { device: boiler-1, metric: temp, above: 90, clearBelow: 85 }
`;

async function post(port: number, readings: unknown[]): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/ingest`, {
    method: "POST",
    headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(readings),
  });
  assert.equal(res.status, 200, await res.text());
}

function waitPage<T>(what: string, probe: () => Promise<T>, timeoutMs = 15_000) {
  return waitFor(what, probe, timeoutMs, 100);
}

/** Texts of the cells of the rows of table `id`. */
function rows(page: Page, id: string): Promise<string[][]> {
  return page.locator(`#${id} tbody tr[data-alarm]`).evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? ""))
  );
}

const STAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/;

Deno.test("alarms panel in Chromium: unsigned visits poll nothing; a raised alarm shows, is acknowledged and cleared from the page, and the history keeps times and values", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-alarms-page-" });
  const ingest = freePort();
  const gw = await startGateway(dir, YAML(dir, ingest));
  const browser = await launchBrowser();
  const base = `http://127.0.0.1:${gw.httpPort}`;
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    sampleValue(parsePrometheus(await (await gw.get("/metrics")).text()), name, labels);
  try {
    const page = await browser.browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const requests: string[] = [];
    page.on("request", (r) => requests.push(new URL(r.url()).pathname));

    await t.step("an unsigned visit shows the sign-in and counts no refused request", async () => {
      await page.goto(`${base}/`);
      await page.locator("#login").waitFor({ state: "visible" });
      // The observation window itself is the point: nothing may be polled during it.
      await new Promise((r) => setTimeout(r, 4000));
      assert.deepEqual(
        requests.filter((p) => p.startsWith("/api/") || p === "/status"),
        [],
        `requests: ${requests.join(", ")}`,
      );
      assert.ok(requests.includes("/session"));
      assert.equal(await metric("outpost_http_unauthorized_requests_total"), 0);
    });

    await t.step("after sign-in the page polls", async () => {
      await page.fill("#token", gw.token());
      await page.click("#login-submit");
      await page.locator("#app").waitFor({ state: "visible" });
      await waitPage(
        "two dashboard polls",
        () => Promise.resolve(requests.filter((p) => p === "/api/dashboard").length >= 2),
      );
      assert.ok(requests.includes("/api/alarms"));
      await page.locator("#alarms").waitFor({ state: "visible" });
      assert.equal(await metric("outpost_http_unauthorized_requests_total"), 0);
      assert.equal(await metric("outpost_alarm_active", { rule: "boiler-hot" }), 0);
    });

    await t.step("a reading over the threshold raises the alarm: it shows as active", async () => {
      await post(ingest, [{ device: "boiler-1", metric: "temp", value: 93.5 }]);
      await page.locator('#alarms-active tr[data-alarm="boiler-hot"]').waitFor();
      const [row] = await rows(page, "alarms-active");
      assert.equal(row[0], "critical");
      assert.equal(row[1], "boiler-hot");
      assert.equal(row[2], "boiler boiler-1 at 93.5 °C");
      assert.equal(row[3], "93.5");
      assert.match(row[4], STAMP);
      assert.deepEqual(await rows(page, "alarms-acked"), []);
      const status = await gw.status() as unknown as { alarms: unknown };
      assert.deepEqual((status.alarms as { active: number }).active, 1);
      assert.equal(await metric("outpost_alarm_active", { rule: "boiler-hot" }), 1);
    });

    await t.step("cross-origin or unsigned acknowledgements are refused", async () => {
      const body = JSON.stringify({ key: "boiler-hot" });
      const anon = await fetch(`${base}/api/alarms/acknowledge`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(anon.status, 401);
      await anon.body?.cancel();
      const cross = await fetch(`${base}/api/alarms/acknowledge`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${gw.token()}`,
          "content-type": "application/json",
          origin: "http://evil.example",
        },
        body,
      });
      assert.equal(cross.status, 403);
      await cross.body?.cancel();
      const form = await fetch(`${base}/api/alarms/acknowledge`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${gw.token()}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: "key=boiler-hot",
      });
      assert.equal(form.status, 415);
      await form.body?.cancel();
      assert.equal(await page.locator('#alarms-active tr[data-alarm="boiler-hot"]').count(), 1);
    });

    await t.step("Acknowledge moves it to acknowledged", async () => {
      await page.click(
        '#alarms-active tr[data-alarm="boiler-hot"] button[data-action=acknowledge]',
      );
      await page.locator('#alarms-acked tr[data-alarm="boiler-hot"]').waitFor();
      assert.deepEqual(await rows(page, "alarms-active"), []);
      const [row] = await rows(page, "alarms-acked");
      assert.match(row[5], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by page$/);
      assert.match(await page.locator("#alarms-count").innerText(), /0 active, 1 acknowledged/);
      const status = await gw.status() as unknown as {
        alarms: { active: number; acknowledged: number; list: { key: string }[] };
      };
      assert.equal(status.alarms.active, 0);
      assert.equal(status.alarms.acknowledged, 1);
      assert.equal(status.alarms.list[0].key, "boiler-hot");
    });

    await t.step(
      "Clear clears it; the history shows each transition with time and value",
      async () => {
        await page.click('#alarms-acked tr[data-alarm="boiler-hot"] button[data-action=clear]');
        await waitPage(
          "the alarm gone from the acknowledged list",
          async () => (await rows(page, "alarms-acked")).length === 0,
        );
        assert.deepEqual(await rows(page, "alarms-active"), []);
        await waitPage(
          "three history rows",
          async () => (await rows(page, "alarms-history")).length === 3,
        );
        const history = await rows(page, "alarms-history");
        assert.deepEqual(
          history.map((r) => r.slice(1, 6)),
          [
            ["boiler-hot", "cleared", "93.5", "critical", "page"],
            ["boiler-hot", "acknowledged", "93.5", "critical", "page"],
            ["boiler-hot", "raised", "93.5", "critical", ""],
          ],
        );
        for (const r of history) assert.match(r[0], STAMP);
        assert.equal(await metric("outpost_alarm_active", { rule: "boiler-hot" }), 0);
        for (const to of ["raised", "acknowledged", "cleared"]) {
          assert.equal(
            await metric("outpost_alarm_transitions_total", { rule: "boiler-hot", to }),
            1,
            to,
          );
        }
        const shot = await Deno.makeTempFile({ prefix: "outpost-alarms-", suffix: ".png" });
        await page.screenshot({ path: shot, fullPage: true });
        console.log(`screenshot: ${shot}`);
        assert.deepEqual(errors, []);
      },
    );
  } finally {
    await browser.close();
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
