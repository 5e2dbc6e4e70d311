// The fleet page's parity with the CLI, in Debian's Chromium: per gateway health, alarms, site and a
// link to its own page; status, logs, config and query sent from the page (signed, as the CLI
// does) with whole results; actions on an offline gateway disabled with the reason and refused by
// the server; one date format (UTC, 24 h) on the fleet page and on the gateway page, whatever the
// browser's locale and time zone.
import assert from "node:assert/strict";
import { generateKey } from "../src/update/keys.ts";
import { launchBrowser, type TestBrowser } from "./helpers/browser.ts";
import { type FakeGateway, startFakeGateway } from "./helpers/fake_gateway.ts";
import { startFleetPage } from "./helpers/fleet_page.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { bigResults } from "./helpers/big_results.ts";

const UTC = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/;
const utc = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");

Deno.test({
  name:
    "fleet page actions in Chromium: health, alarms, site, page link; status, logs, config, query from the page in full; offline gateways disabled and refused; UTC dates on both pages",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "outpost-fleet-actions-" });
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  let real: GatewayProcess | undefined;
  let page: Awaited<ReturnType<typeof startFleetPage>> | undefined;
  let browser: TestBrowser | undefined;
  try {
    const operator = await generateKey();
    await Deno.writeTextFile(`${root}/operator.key`, JSON.stringify(operator));
    const t0 = Date.UTC(2026, 11, 3, 14, 5, 9);
    const big = bigResults(t0);
    fakes.push(
      await startFakeGateway({
        url: broker.url,
        id: "plant-1",
        operatorKeys: [operator.public],
        ...big,
        statusFields: {
          site: "plant 3",
          pageUrl: "https://plant-1.example.test:8443/",
          alarms: {
            active: 2,
            acknowledged: 1,
            list: [
              { rule: "high-temp", instance: "oven-1", state: "active" },
              { rule: "low-flow", state: "active" },
              { rule: "door", state: "acknowledged" },
            ],
          },
        },
      }),
      await startFakeGateway({ url: broker.url, id: "plant-2", operatorKeys: [operator.public] }),
      await startFakeGateway({ url: broker.url, id: "plant-3", operatorKeys: [operator.public] }),
    );
    await Deno.mkdir(`${root}/real-1`);
    const realYaml = `gateway: { id: real-1, site: north }
buffer: { path: ${root}/real-1/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, reconnect: { min: 200ms, max: 1s } }
commands:
  operatorKeys: [{ key: "${operator.public}", scopes: [read, operate] }]
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 500ms }
`;
    real = await startGateway(`${root}/real-1`, realYaml);
    await waitFor(
      "real-1's request topics subscribed",
      async () =>
        (await real!.status() as unknown as { commands?: { subscribed: boolean } }).commands
          ?.subscribed === true,
      30_000,
      100,
    );
    await Deno.writeTextFile(
      `${root}/fleet.yaml`,
      `url: ${broker.url}
key: ${root}/operator.key
pages:
  url: "http://{id}.pages.example.test/"
  gateways: { real-1: "http://127.0.0.1:${real.httpPort}/" }
`,
    );
    page = await startFleetPage([
      "--connection",
      `${root}/fleet.yaml`,
      "--token-file",
      `${root}/t`,
    ]);
    const token = (await Deno.readTextFile(`${root}/t`)).trim();

    browser = await launchBrowser();
    // A browser in New York with US conventions: the old page showed 12/3/2026, 9:05:09 AM.
    const ctx = await browser.browser.newContext({
      locale: "en-US",
      timezoneId: "America/New_York",
    });
    const tab = await ctx.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    await tab.goto(`${page.url}#token=${encodeURIComponent(token)}`);
    for (const id of ["plant-1", "plant-2", "plant-3", "real-1"]) {
      await tab.waitForSelector(`tr[data-gateway="${id}"][data-state="online"]`);
    }
    const cell = (id: string, col: string) =>
      tab.textContent(`tr[data-gateway="${id}"] td[data-col="${col}"]`);

    // Health, alarms, site, link.
    assert.equal(await cell("plant-1", "health"), "alarm");
    assert.equal(await cell("plant-1", "alarms"), "2");
    assert.equal(
      await tab.getAttribute('tr[data-gateway="plant-1"] td[data-col="alarms"]', "title"),
      "high-temp/oven-1, low-flow (1 acknowledged)",
    );
    assert.equal(await cell("plant-1", "site"), "plant 3");
    assert.equal(
      await tab.getAttribute('tr[data-gateway="plant-1"] td[data-col="page"] a', "href"),
      "https://plant-1.example.test:8443/",
      "the link the status gives",
    );
    assert.equal(await cell("plant-2", "health"), "ok");
    assert.equal(await cell("plant-2", "alarms"), "?", "not published: unknown, not 0");
    assert.equal(await cell("plant-2", "site"), "-");
    assert.equal(
      await tab.getAttribute('tr[data-gateway="plant-2"] td[data-col="page"] a', "href"),
      "http://plant-2.pages.example.test/",
      "the pattern of the connection file",
    );
    assert.equal(
      await tab.getAttribute('tr[data-gateway="real-1"] td[data-col="page"] a', "href"),
      `http://127.0.0.1:${real.httpPort}/`,
    );
    assert.match(
      await tab.textContent("#counts") ?? "",
      /4 gateways: 4 online, 0 offline, 2 active alarm\(s\)/,
    );

    // Dates: UTC, 24 h, in a US browser in New York.
    assert.equal(await cell("plant-2", "started"), utc(fakes[1].startedAt));
    assert.match(await cell("real-1", "started") ?? "", UTC);

    // An offline gateway: its actions are disabled, the reason is shown, the server refuses too.
    fakes[2].crash();
    await tab.waitForSelector('tr[data-gateway="plant-3"][data-state="offline"]');
    const why = await tab.textContent('tr[data-gateway="plant-3"] .why') ?? "";
    assert.match(
      why,
      /^offline since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(connection lost \(last will\)\)$/,
    );
    const buttons = tab.locator('tr[data-gateway="plant-3"] td[data-col="actions"] button');
    assert.equal(await buttons.count(), 7);
    for (
      const disabled of await buttons.evaluateAll((bs) =>
        bs.map((b) => (b as unknown as { disabled: boolean }).disabled)
      )
    ) {
      assert.equal(disabled, true);
    }
    assert.equal(
      await tab.getAttribute('tr[data-gateway="plant-3"] button[data-action="restart"]', "title"),
      why,
    );
    assert.equal(await cell("plant-3", "health"), "offline");
    await tab.check('input[data-select="plant-3"]');
    assert.equal(
      await tab.isDisabled('.toolbar button[data-action="restart"][data-scope="selected"]'),
      true,
    );
    assert.match(
      await tab.textContent("#selection") ?? "",
      /^1 selected - plant-3 offline since .*: deselect to send$/,
    );
    await tab.uncheck('input[data-select="plant-3"]');
    const refused = await tab.evaluate(async () => {
      const t = performance.now();
      const r = await fetch("/api/commands", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ cmd: "restart", targets: ["plant-3"] }),
      });
      return { status: r.status, body: await r.json(), ms: performance.now() - t };
    });
    assert.equal(refused.status, 409);
    assert.match(
      refused.body.error,
      /^restart not sent: plant-3 is offline since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(connection lost \(last will\)\)$/,
    );
    assert.ok(refused.ms < 2000, `refused at once, not after a timeout (${refused.ms} ms)`);
    assert.deepEqual(
      fakes[2].requests.map((r) => r.cmd).filter((c) => c !== "ping"),
      [],
      "nothing but the console's first ping was sent to plant-3",
    );

    // Status of a real gateway from the page: the whole reply, as JSON.
    await tab.click('tr[data-gateway="real-1"] button[data-action="status"]');
    await tab.waitForSelector(
      '#result[data-cmd="status"] #result-title:text("status of real-1: done")',
      {
        timeout: 20_000,
      },
    );
    const status = JSON.parse(await tab.textContent("#result-text") ?? "");
    assert.equal(status.gatewayId, "real-1");
    assert.ok(status.devices && Object.keys(status.devices).length === 2, "every device");
    assert.ok((await tab.textContent("#result-text"))!.length > 1000, "far over 100 characters");

    // Config of the real gateway: the file as it is.
    await tab.click('tr[data-gateway="real-1"] button[data-action="config-get"]');
    await tab.waitForSelector('#result[data-cmd="config-get"] #result-title:text("done")', {
      timeout: 20_000,
    });
    assert.ok((await tab.textContent("#result-text"))!.includes(realYaml), "the whole config");

    // Logs of plant-1: every line whole, with the one date format.
    await tab.click('tr[data-gateway="plant-1"] button[data-action="logs"]');
    await tab.waitForSelector(
      '#result[data-cmd="logs"][data-gateway="plant-1"] #result-title:text("done")',
    );
    assert.equal(await tab.isVisible("#result-pager"), false, "no row pager for log lines");
    const lines = (await tab.textContent("#result-text"))!.split("\n");
    // Both shapes of line (this build's flat fields, an older gateway's nested ones) alike.
    assert.deepEqual(lines, big.logText);

    // A query of plant-1's rows from the form: 250 rows, 200 to a screen.
    await tab.click('tr[data-gateway="plant-1"] button[data-action="query"]');
    assert.equal(await tab.inputValue("#read-gateway"), "plant-1");
    await tab.fill("#query-device", "pump-1");
    await tab.fill("#query-from", "2026-12-01T00:00");
    await tab.click('#read-form button[type="submit"]');
    await tab.waitForSelector('#result[data-cmd="query"] #result-title:text("done")', {
      timeout: 20_000,
    });
    assert.equal(await tab.textContent("#result-range"), "rows 1–200 of 250");
    const shownRows = () =>
      tab.locator("#result-rows tbody tr").evaluateAll((trs) =>
        trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent))
      );
    let rows = await shownRows();
    assert.equal(rows.length, 200);
    assert.deepEqual(rows[0], ["1", utc(big.rows[0][1]), "pump-1", "pressure", "0", "bar", "true"]);
    await tab.click("#result-next");
    assert.equal(await tab.textContent("#result-range"), "rows 201–250 of 250");
    rows = await shownRows();
    assert.deepEqual(rows.map((r) => Number(r[0])), big.rows.slice(200).map((r) => r[0]));
    assert.equal(await tab.isDisabled("#result-next"), true);

    // Every command the page sent is in the list; a result opens again from there.
    await tab.click('.op[data-cmd="status"] li[data-gateway="real-1"] button[data-view]');
    await tab.waitForSelector('#result[data-cmd="status"]');
    assert.equal(JSON.parse(await tab.textContent("#result-text") ?? "").gatewayId, "real-1");
    assert.deepEqual(errors, []);

    // The gateway page shows its times in the same format.
    const gwTab = await ctx.newPage();
    await gwTab.goto(`http://127.0.0.1:${real.httpPort}/`);
    await gwTab.fill("#token", real.token());
    await gwTab.click("#login-submit");
    await gwTab.waitForSelector("#updated:text('Updated')");
    const updated = await gwTab.textContent("#updated") ?? "";
    assert.match(updated, /^Updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC /);
    const shownAt = Date.parse(updated.slice(8, 27).replace(" ", "T") + "Z");
    assert.ok(Math.abs(Date.now() - shownAt) < 60_000, `${updated} is now, in UTC`);
  } finally {
    await browser?.close();
    if (page) await page.stop();
    for (const f of fakes) await f.close();
    await real?.stop().catch(() => real?.kill());
    await broker.stop();
  }
});
