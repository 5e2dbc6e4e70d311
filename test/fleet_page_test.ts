// The fleet page (`outpost fleet serve`) in Debian's Chromium, driven by Playwright, with real
// gateway processes behind a real Mosquitto: the token, the live list, a restart, a CSV export.
import assert from "node:assert/strict";
import { generateKey } from "../src/update/keys.ts";
import { type FakeGateway, startFakeGateway } from "./helpers/fake_gateway.ts";
import { Buffer } from "../src/buffer/buffer.ts";
import { CSV_HEADER, csvLine, exportReadings } from "../src/buffer/export.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import { launchBrowser, type TestBrowser } from "./helpers/browser.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { startFleetPage } from "./helpers/fleet_page.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";

const DAY = 86_400_000;

/** Three days of one device, every five minutes, written before the gateway starts. */
async function seed(path: string, end: number) {
  const config = bufferSchema.check({ path, retention: "60d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  const readings = [];
  for (let ts = end - 3 * DAY, i = 0; ts < end; ts += 300_000, i++) {
    readings.push({ device: "meter-1", metric: "power", value: (i % 97) / 4, unit: "kW", ts });
  }
  const { seqs } = await buf.append(readings);
  buf.close();
  return readings.map((r, i) => ({ ...r, seq: seqs[i], forwarded: true }));
}

Deno.test({
  name:
    "fleet page in Chromium: the token is required; gateways are listed live; a restart clicked on the page restarts that gateway; a CSV export downloads",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "outpost-fleet-page-" });
  const broker = await startMosquitto();
  const gws: GatewayProcess[] = [];
  let page: Awaited<ReturnType<typeof startFleetPage>> | undefined;
  let browser: TestBrowser | undefined;
  let late: FakeGateway | undefined;
  try {
    const ids = ["plant-1", "plant-2", "plant-3"];
    // The console's operator key: plant-3 grants it read only.
    const operator = await generateKey();
    await Deno.writeTextFile(`${root}/operator.key`, JSON.stringify(operator));
    const end = Date.now() - 60_000;
    await Deno.mkdir(`${root}/plant-1`);
    const seeded = await seed(`${root}/plant-1/buffer.db`, end);
    for (const id of ids) {
      await Deno.mkdir(`${root}/${id}`, { recursive: true });
    }
    gws.push(
      ...await Promise.all(ids.map((id) =>
        startGateway(
          `${root}/${id}`,
          `gateway: { id: ${id} }
buffer: { path: ${root}/${id}/buffer.db, retention: 60d }
uplink: { type: mqtt, url: ${broker.url}, reconnect: { min: 200ms, max: 1s } }
commands:
  operatorKeys: [{ key: "${operator.public}", scopes: [${
            id === "plant-3" ? "read" : "read, operate"
          }] }]
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 500ms }
`,
        )
      )),
    );
    await Promise.all(
      gws.map((g) =>
        waitFor(
          "request topics subscribed",
          async () =>
            (await g.status() as unknown as { commands?: { subscribed: boolean } }).commands
              ?.subscribed === true,
          30_000,
          100,
        )
      ),
    );

    const tokenFile = `${root}/fleet-token`;
    page = await startFleetPage([
      "--broker",
      broker.url,
      "--token-file",
      tokenFile,
      "--key",
      `${root}/operator.key`,
    ]);
    const token = (await Deno.readTextFile(tokenFile)).trim();
    assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
    assert.match(
      page.output(),
      new RegExp(`access token \\(new, saved in ${tokenFile}, mode 0600\\): ${token}`),
    );
    const api = (path: string, auth?: string) =>
      fetch(new URL(path, page!.url), { headers: auth ? { authorization: `Bearer ${auth}` } : {} });

    // The API wants the token.
    for (const auth of [undefined, "wrong-token-wrong-token"]) {
      const r = await api("/api/fleet", auth);
      assert.equal(r.status, 401);
      assert.match((await r.json()).error, /access token required/);
    }
    const snap = await (await api("/api/fleet", token)).json();
    assert.deepEqual(snap.gateways.map((g: { id: string }) => g.id), ids);

    browser = await launchBrowser();
    const ctx = await browser.browser.newContext({ acceptDownloads: true });
    const tab = await ctx.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    await tab.goto(page.url);
    await tab.waitForSelector("#login:not([hidden])");
    assert.equal(await tab.isHidden("#app"), true);
    assert.equal(await tab.locator("tr[data-gateway]").count(), 0, "nothing shown before login");

    await tab.fill("#token", "not-the-token-at-all");
    await tab.click('#login-form button[type="submit"]');
    await tab.waitForSelector("#login-error:text('not accepted')");
    assert.equal(await tab.isHidden("#app"), true);

    await tab.fill("#token", token);
    await tab.click('#login-form button[type="submit"]');
    for (const id of ids) {
      await tab.waitForSelector(`tr[data-gateway="${id}"][data-state="online"]`);
    }
    assert.match(await tab.textContent("#counts") ?? "", /^3 gateways: 3 online, 0 offline$/);
    // What each gateway grants the console's key, from the ping the console sent at start.
    await tab.waitForSelector('tr[data-gateway="plant-3"] td[data-col="scopes"]:text-is("read")');
    assert.equal(
      await tab.textContent('tr[data-gateway="plant-1"] td[data-col="scopes"]'),
      "read, operate",
    );
    assert.match(await tab.textContent("#conn") ?? "", /signing as operator key [0-9a-f]{16}/);

    const started = async (i: number) =>
      (await gws[i].status() as unknown as { startedAt: number; pid: number }).startedAt;
    const before = await Promise.all(ids.map((_, i) => started(i)));
    const shown = await tab.getAttribute('tr[data-gateway="plant-2"]', "data-started-at");
    assert.equal(Number(shown), before[1], "the page shows the running process");

    // Restart plant-2 from the page.
    await tab.click('tr[data-gateway="plant-2"] button[data-action="restart"]');
    await tab.waitForSelector("#confirm:not([hidden])");
    assert.equal(await tab.textContent("#confirm-text"), "Restart plant-2?");
    await tab.click("#confirm-yes");
    await tab.waitForSelector(
      '.op[data-cmd="restart"] li[data-gateway="plant-2"][data-state="restarted"]',
      {
        timeout: 30_000,
      },
    );
    await waitFor(
      "the page to show plant-2's new process",
      async () =>
        await tab.getAttribute('tr[data-gateway="plant-2"]', "data-started-at") !==
          String(before[1]),
    );
    const newShown = Number(
      await tab.getAttribute('tr[data-gateway="plant-2"]', "data-started-at"),
    );
    const after = await Promise.all(ids.map((_, i) => started(i)));
    assert.ok(after[1] > before[1], "plant-2 restarted");
    assert.equal(newShown, after[1], "the page shows the new process");
    assert.deepEqual([after[0], after[2]], [before[0], before[2]], "the others did not restart");
    assert.match(
      await tab.textContent('.op[data-cmd="restart"] .op-head') ?? "",
      /^restart → plant-2: 1 of 1 replied, 1 ok$/,
    );
    assert.equal(await tab.getAttribute('tr[data-gateway="plant-2"]', "data-state"), "online");

    // A selection, then all: these gateways have no self-update, and every one says so.
    await tab.check('input[data-select="plant-1"]');
    await tab.check('input[data-select="plant-3"]');
    assert.equal(await tab.textContent("#selection"), "2 selected");
    await tab.click('.toolbar button[data-action="update-check"][data-scope="selected"]');
    assert.equal(
      await tab.textContent("#confirm-text"),
      "Check for an update on plant-1, plant-3?",
    );
    await tab.click("#confirm-yes");
    const selOp = tab.locator('.op[data-cmd="update-check"][data-settled="true"]').first();
    await selOp.waitFor({ timeout: 15_000 });
    assert.deepEqual(
      await selOp.locator("li").evaluateAll((li) =>
        li.map((e) => [e.getAttribute("data-gateway"), e.getAttribute("data-state")])
      ),
      [["plant-1", "error"], ["plant-3", "error"]],
    );
    assert.match(
      await selOp.locator("li").first().textContent() ?? "",
      /unavailable: self-update is not configured/,
    );
    await tab.click('.toolbar button[data-action="update-check"][data-scope="all"]');
    assert.equal(
      await tab.textContent("#confirm-text"),
      "Check for an update on every online gateway (3)?",
    );
    await tab.click("#confirm-yes");
    await tab.waitForSelector('.op[data-cmd="update-check"][data-settled="true"] >> nth=1');
    const allOp = tab.locator(".op").first();
    assert.match(
      await allOp.locator(".op-head").textContent() ?? "",
      /^update-check → all: 3 of 3 replied, 0 ok, 3 failed$/,
    );

    // Export three days of meter-1 from plant-1 as CSV.
    await waitFor(
      "the seeded readings forwarded",
      async () =>
        (await gws[0].status() as unknown as { buffer: { ackFloor: number } }).buffer.ackFloor >=
          seeded.at(-1)!.seq,
      30_000,
      100,
    );
    await tab.fill("#export-gateway", "plant-1");
    await tab.fill("#export-device", "meter-1");
    await tab.click('#export-form button[data-days="7"]');
    await tab.click('#export-form button[type="submit"]');
    const job = tab.locator('.job[data-state="done"]');
    await job.waitFor({ timeout: 30_000 });
    assert.match(
      await job.textContent() ?? "",
      new RegExp(`complete: ${seeded.length} rows in \\d+ page`),
    );
    const [download] = await Promise.all([tab.waitForEvent("download"), job.locator("a").click()]);
    assert.equal(download.suggestedFilename(), "plant-1-meter-1.csv");
    const csv = await Deno.readTextFile(await download.path());
    assert.equal(csv, [CSV_HEADER, ...seeded.map(csvLine)].join("\n") + "\n");
    assert.equal(
      csv,
      [
        CSV_HEADER,
        ...[...exportReadings(`${root}/plant-1/buffer.db`, { device: "meter-1" })].map(csvLine),
      ]
        .join("\n") + "\n",
    );

    // Logging out ends the session.
    await tab.click("#logout");
    await tab.waitForSelector("#login:not([hidden])");
    const cookieApi = await tab.evaluate(async () => (await fetch("/api/fleet")).status);
    assert.equal(cookieApi, 401);
    assert.deepEqual(errors, []);

    // A gateway that comes online later is asked for its scopes too.
    late = await startFakeGateway({
      url: broker.url,
      id: "plant-4",
      operatorKeys: [operator.public],
    });
    await waitFor(
      "plant-4's scopes for the console's key",
      async () => {
        const s = await (await api("/api/fleet", token)).json();
        const g = s.gateways.find((g: { id: string }) => g.id === "plant-4");
        return g?.operator?.scopes?.join(",") === "read,operate,admin";
      },
      15_000,
      100,
    );
  } finally {
    await late?.close();
    await browser?.close();
    const code = page ? await page.stop() : 0;
    for (const g of gws) await g.stop().catch(() => g.kill());
    await broker.stop();
    if (page) assert.equal(code, 0, page.output());
  }
});
