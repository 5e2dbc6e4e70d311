/**
 * The host checklist inside a running gateway: a section of /status, a summary in the retained
 * status message the fleet console reads, and a table on the gateway page (real Mosquitto, real
 * gateway process, Debian's Chromium).
 */
import assert from "node:assert/strict";
import { CHECKS, type DoctorReport } from "../src/doctor/mod.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";

Deno.test("the doctor's report is in /status, the retained status and on the gateway page", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-doctor-gw-" });
  const broker = await startMosquitto();
  const sub = await subscribe(broker.url);
  const gw = await startGateway(
    dir,
    `
gateway: { id: doctor-gw }
buffer: { path: ${dir}/data/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, statusInterval: 1s }
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 200ms }
`,
    { waitHealthy: true },
  );
  const browser = await launchBrowser();
  try {
    const status = await gw.status() as unknown as { doctor: DoctorReport };
    const r = status.doctor;
    for (const [id] of CHECKS) {
      const c = r.checks.find((x) => x.id === id);
      assert.ok(c && ["pass", "warn", "fail", "skip"].includes(c.verdict), id);
    }
    // A plain mqtt:// uplink is not the checklist's TLS.
    const tls = r.checks.find((c) => c.id === "uplink.tls")!;
    assert.equal(tls.verdict, "fail");
    assert.match(tls.reason, /is mqtt:\/\/: readings and credentials cross the network in clear/);
    assert.match(gw.output(), /WARN +\[doctor\] host checklist: failing .*uplink\.tls/);

    const retained = await waitFor(
      "a status message with the doctor's summary",
      () => Promise.resolve(sub.statuses.find((s) => s.doctor)),
      15_000,
    ) as { doctor: { failing: string[]; summary: Record<string, number>; ok: boolean } };
    assert.ok(retained.doctor.failing.includes("uplink.tls"));
    assert.equal(retained.doctor.ok, false);
    assert.equal(retained.doctor.summary.fail, r.summary.fail);

    const page = await browser.browser.newPage();
    await page.goto(`http://127.0.0.1:${gw.httpPort}/`);
    await page.fill("#token", gw.token());
    await page.click("#login-submit");
    await page.locator('#doctor tr[data-check="uplink.tls"]').waitFor({ timeout: 15_000 });
    const row = await page.locator('#doctor tr[data-check="uplink.tls"]').innerText();
    assert.match(row, /uplink over verified TLS\s+fail\s+.*in clear/s);
    assert.match(row, /Fix: use mqtts:\/\//);
    assert.equal(await page.locator("#doctor tbody tr").count(), r.checks.length);
    // Failures first.
    assert.match(await page.locator("#doctor tbody tr").first().innerText(), /\bfail\b/);
    assert.match(
      await page.locator("#doctor-summary").innerText(),
      new RegExp(`^${r.summary.fail} fail · ${r.summary.warn} warn`),
    );
  } finally {
    await browser.close();
    await gw.kill();
    await sub.close();
    await broker.stop();
  }
});
