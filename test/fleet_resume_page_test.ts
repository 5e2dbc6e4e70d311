/**
 * The fleet page resumes a stopped device rollout, in Debian's Chromium: a real Mosquitto, a real
 * gateway process whose rollout stopped (simulated ESP32 devices, one fails after install), the
 * page's Resume button in the device-updates cell sends the signed `devices-resume` command, the
 * cell and the command list show the outcome, and the next device gets the version. A gateway
 * that grants the console's key no `operate` scope gets a disabled button saying why.
 */
import assert from "node:assert/strict";
import { generateKey } from "../src/update/keys.ts";
import { launchBrowser, type TestBrowser } from "./helpers/browser.ts";
import { type FakeGateway, startFakeGateway } from "./helpers/fake_gateway.ts";
import { startFleetPage } from "./helpers/fleet_page.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { OtaDevice } from "./helpers/ota_device.ts";
import { waitFor } from "./helpers/ports.ts";
import {
  deviceUpdateYaml,
  idleGatewayChannel,
  publishDeviceFirmware,
  writeDeviceTokens,
} from "./helpers/device_site.ts";
import { type ChannelServer, channelServer } from "./helpers/update.ts";

const CLASS = "esp32-boiler-v3";

Deno.test({
  name:
    "fleet page in Chromium: Resume on a stopped rollout sends devices-resume, shows the outcome, the next device updates; disabled without the operate scope",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-fleet-resume-" });
  const broker = await startMosquitto();
  let server: ChannelServer | undefined;
  let gw: GatewayProcess | undefined;
  let fake: FakeGateway | undefined;
  let page: Awaited<ReturnType<typeof startFleetPage>> | undefined;
  let browser: TestBrowser | undefined;
  const devices: OtaDevice[] = [];
  try {
    const operator = await generateKey();
    await Deno.writeTextFile(`${dir}/operator.key`, JSON.stringify(operator));
    const { release, channel, installRoot } = await idleGatewayChannel(dir);
    server = channelServer(`${dir}/channel`);
    const ids = ["boiler-1", "boiler-2"];
    const tokens = await writeDeviceTokens(dir, ids);
    gw = await startGateway(
      dir,
      `gateway: { id: site-gw }
buffer: { path: ${dir}/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, statusInterval: 1s }
commands:
  operatorKeys: [{ key: "${operator.public}", scopes: [read, operate], name: ops }]
${
        deviceUpdateYaml({
          dir,
          brokerUrl: broker.url,
          channelUrl: server.url,
          installRoot,
          cls: CLASS,
          ids,
          rollout: { batch: 1, failureThreshold: 1 },
        })
      }`,
    );
    for (const id of ids) {
      devices.push(
        await OtaDevice.start({
          id,
          token: tokens[id],
          broker: broker.url,
          dir: `${dir}/dev-${id}`,
          version: "1.0.0",
          failAfterInstall: id === "boiler-1",
        }),
      );
    }
    await publishDeviceFirmware({
      dir,
      channel,
      rootDir: release,
      cls: CLASS,
      version: "1.1.0",
      bytes: 30_000,
    });
    // A gateway whose rollout stopped too, but that grants this console's key read only.
    const zero = { unknown: 0, current: 0, waiting: 1, offered: 0, downloading: 0 };
    fake = await startFakeGateway({
      url: broker.url,
      id: "view-gw",
      operatorKeys: [operator.public],
      scopes: ["read"],
      statusFields: {
        deviceUpdates: {
          classes: [{
            class: "pump-ctl",
            devices: 2,
            states: { ...zero, installed: 0, failed: 1, "rolled-back": 0 },
            rollout: { name: "pump-ctl", version: "2.0.0", status: "stopped", failures: 1 },
          }],
          more: 0,
        },
      },
    });

    page = await startFleetPage([
      "--broker",
      broker.url,
      "--key",
      `${dir}/operator.key`,
      "--token-file",
      `${dir}/t`,
    ]);
    const token = (await Deno.readTextFile(`${dir}/t`)).trim();
    browser = await launchBrowser();
    const tab = await browser.browser.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    await tab.goto(`${page.url}#token=${encodeURIComponent(token)}`);
    const cell = (id: string, col: string) => `tr[data-gateway="${id}"] td[data-col="${col}"]`;
    const resume = `${cell("site-gw", "updates")} button[data-resume="${CLASS}"]`;
    // The rollout stops; once the ping reply told the key's scopes, Resume is enabled.
    await tab.waitForSelector(`${resume}:not([disabled])`, { timeout: 90_000 }).catch((e) => {
      throw new Error(`${e.message}\n--- gateway ---\n${gw!.output()}`);
    });
    // The button is enabled too while the scopes are unknown (before the ping reply): wait for them.
    await tab.locator(cell("site-gw", "scopes"), { hasText: /^read, operate$/ }).waitFor({
      timeout: 30_000,
    });
    assert.match(
      (await tab.textContent(cell("site-gw", "updates")))!,
      /^Resume esp32-boiler-v3: 0\/2 current, stopped: 1 failed$/,
    );
    const denied = `${cell("view-gw", "updates")} button[data-resume="pump-ctl"]`;
    await tab.waitForSelector(`${denied}[disabled]`);
    assert.equal(
      await tab.getAttribute(denied, "title"),
      "this console's key has no operate scope on view-gw (it has read)",
    );
    assert.equal(devices[1].offers.length, 0);

    await tab.click(resume);
    const note = `${cell("site-gw", "updates")} [data-note="${CLASS}"]`;
    await tab.locator(note, { hasText: /^resumed 1\.1\.0, running$/ }).waitFor({
      timeout: 30_000,
    }).catch(async (e) => {
      throw new Error(
        `${e.message}\ncell: ${await tab.textContent(cell("site-gw", "updates"))}\nops: ${await tab
          .textContent("#op-list")}\nerrors: ${errors}`,
      );
    });
    await tab.waitForSelector('#op-list .op[data-cmd="devices-resume"] li[data-state="done"]');
    assert.match(
      (await tab.textContent('#op-list .op[data-cmd="devices-resume"] li'))!,
      /site-gw: done View result$/,
    );
    // The whole reply, one click away.
    await tab.click('#op-list .op[data-cmd="devices-resume"] button[data-view]');
    await tab.locator("#result-text", { hasText: '"was": "stopped"' }).waitFor();
    assert.deepEqual(JSON.parse((await tab.textContent("#result-text"))!), {
      class: CLASS,
      name: CLASS,
      version: "1.1.0",
      was: "stopped",
      status: "running",
      failures: 1,
      forgiven: 1,
    });
    // The next device takes the version; the rollout no longer stopped, the button goes, the
    // outcome stays.
    await devices[1].waitFor("1.1.0 on boiler-2", (d) => d.version === "1.1.0", 60_000);
    await tab.waitForSelector(resume, { state: "detached", timeout: 30_000 });
    assert.equal(await tab.textContent(note), "resumed 1.1.0, running");
    // The gateway's next status (it follows the device's report) shows the new count.
    await tab.locator(cell("site-gw", "updates"), { hasText: /1\/2 current/ }).waitFor({
      timeout: 30_000,
    });
    // The gateway audited it under the console's key.
    const audit = await waitFor("the audit entry", async () => {
      const list = (await (await gw!.get("/audit?n=20")).json()).audit as {
        cmd: string;
        result: string;
        key?: string;
      }[];
      return list.find((e) => e.cmd === "devices-resume");
    });
    assert.deepEqual([audit.result, audit.key], ["done", "ops"]);
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await page?.stop();
    await fake?.close();
    for (const d of devices) await d.close();
    await gw?.stop().catch(() => {});
    await server?.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
