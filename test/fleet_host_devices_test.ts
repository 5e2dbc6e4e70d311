/**
 * The fleet console shows each gateway's host checklist verdict and its device updates: a real
 * Mosquitto, a real gateway process (its doctor runs on this machine, and its `uplink.tls` check
 * fails on mqtt://), a real release channel with a device artifact, simulated ESP32 devices (one
 * fails after install, so the rollout stops), `outpost fleet list --json` and the fleet page in
 * Debian's Chromium, beside a gateway that publishes neither.
 */
import assert from "node:assert/strict";
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
import { subscribe, type Subscriber } from "./helpers/subscriber.ts";
import { type ChannelServer, channelServer } from "./helpers/update.ts";
import { runOutpost as outpost } from "./helpers/cli.ts";

const CLASS = "esp32-boiler-v3";

interface Listed {
  id: string;
  health: string;
  doctor: { ok: boolean; failing: string[]; fail: number; label: string } | null;
  deviceUpdates: {
    label: string;
    classes: { class: string; devices: number; current: number; failed: number }[];
  } | null;
}

Deno.test({
  name:
    "fleet: each gateway's host checklist verdict and device updates in fleet list --json and on the fleet page",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-fleet-host-" });
  const broker = await startMosquitto();
  let server: ChannelServer | undefined;
  let gw: GatewayProcess | undefined;
  let sub: Subscriber | undefined;
  let fake: FakeGateway | undefined;
  let page: Awaited<ReturnType<typeof startFleetPage>> | undefined;
  let browser: TestBrowser | undefined;
  const devices: OtaDevice[] = [];
  try {
    // A release channel whose gateway release is the version running, so the self-updater idles.
    const { release, channel, installRoot } = await idleGatewayChannel(dir);
    server = channelServer(`${dir}/channel`);
    const ids = ["boiler-1", "boiler-2", "boiler-3"];
    const tokens = await writeDeviceTokens(dir, ids);
    sub = await subscribe(broker.url);
    gw = await startGateway(
      dir,
      `gateway: { id: host-gw }
buffer: { path: ${dir}/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, statusInterval: 1s }
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
    // boiler-1 takes the update; boiler-2's self-test fails and it rolls back: the rollout stops.
    for (const id of ids) {
      devices.push(
        await OtaDevice.start({
          id,
          token: tokens[id],
          broker: broker.url,
          dir: `${dir}/dev-${id}`,
          version: "1.0.0",
          failAfterInstall: id === "boiler-2",
        }),
      );
    }
    await publishDeviceFirmware({
      dir,
      channel,
      rootDir: release,
      cls: CLASS,
      version: "1.1.0",
      bytes: 40_000,
    });
    fake = await startFakeGateway({ url: broker.url, id: "old-gw" });

    // The retained status carries both summaries, small: no device list, no reasons.
    type Summary = {
      classes: { class: string; states: Record<string, number>; rollout: { status: string } }[];
    };
    const stopped = await waitFor(
      "a status message with the stopped rollout",
      () =>
        Promise.resolve(
          sub!.statuses.find((s) =>
            s.gatewayId === "host-gw" &&
            (s.deviceUpdates as Summary | undefined)?.classes[0]?.rollout?.status === "stopped"
          ),
        ),
      90_000,
      100,
    ).catch(async (e) => {
      const st: Record<string, unknown> = await gw!.status().catch(() => ({}));
      throw new Error(`${e.message}\n${JSON.stringify(st.deviceUpdates)}\n${gw!.output()}`);
    });
    const summary = stopped.deviceUpdates as Summary;
    assert.deepEqual(summary.classes[0].states, {
      unknown: 0,
      current: 1,
      waiting: 1,
      offered: 0,
      downloading: 0,
      installed: 0,
      failed: 0,
      "rolled-back": 1,
    });
    assert.ok(JSON.stringify(stopped.deviceUpdates).length < 400, JSON.stringify(stopped));
    assert.ok((stopped.doctor as { failing: string[] }).failing.includes("uplink.tls"));

    // fleet list --json
    const list = await outpost(["fleet", "list", "--json", "--broker", broker.url]);
    assert.equal(list.code, 0, list.stderr);
    const gws = JSON.parse(list.stdout) as Listed[];
    const host = gws.find((g) => g.id === "host-gw")!;
    assert.equal(host.doctor?.ok, false);
    assert.ok(host.doctor!.failing.includes("uplink.tls"), JSON.stringify(host.doctor));
    assert.match(host.doctor!.label, /^\d+ failing/);
    assert.equal(host.deviceUpdates?.label, `${CLASS}: 1/3 current, stopped: 1 failed`);
    assert.deepEqual(
      host.deviceUpdates!.classes.map((c) => [c.class, c.devices, c.current, c.failed]),
      [[CLASS, 3, 1, 1]],
    );
    const old = gws.find((g) => g.id === "old-gw")!;
    assert.deepEqual([old.doctor, old.deviceUpdates], [null, null]);
    // The terminal table too.
    const table = await outpost(["fleet", "list", "--broker", broker.url]);
    assert.match(table.stdout, /^GATEWAY .* HOST CHECKS +DEVICE UPDATES +NOTE$/m);
    assert.match(
      table.stdout,
      new RegExp(`^host-gw .* \\d+ failing.* {2}${CLASS}: 1/3 current, stopped: 1 failed$`, "m"),
    );
    assert.match(table.stdout, /^old-gw .* \? +-$/m);

    // The fleet page, in Chromium.
    page = await startFleetPage(["--broker", broker.url, "--token-file", `${dir}/t`]);
    const token = (await Deno.readTextFile(`${dir}/t`)).trim();
    browser = await launchBrowser();
    const tab = await browser.browser.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    await tab.goto(`${page.url}#token=${encodeURIComponent(token)}`);
    for (const id of ["host-gw", "old-gw"]) {
      await tab.waitForSelector(`tr[data-gateway="${id}"][data-state="online"]`);
    }
    const cell = (id: string, col: string) => `tr[data-gateway="${id}"] td[data-col="${col}"]`;
    assert.equal(await tab.textContent(cell("host-gw", "host")), host.doctor!.label);
    const tip = await tab.getAttribute(cell("host-gw", "host"), "title");
    assert.match(tip!, /^failing: .*uplink\.tls/);
    assert.equal(await tab.getAttribute(cell("host-gw", "host"), "class"), "bad");
    assert.equal(
      await tab.textContent(cell("host-gw", "updates")),
      `Resume ${CLASS}: 1/3 current, stopped: 1 failed`,
    );
    // The console has no operator key here: the gateway would refuse devices-resume.
    const resume = `${cell("host-gw", "updates")} button[data-resume="${CLASS}"][disabled]`;
    await tab.waitForSelector(resume);
    assert.equal(
      await tab.getAttribute(resume, "title"),
      "this console signs nothing (no --key): host-gw refuses it",
    );
    assert.equal(await tab.getAttribute(cell("host-gw", "updates"), "class"), "bad");
    assert.equal(await tab.textContent(cell("old-gw", "host")), "?");
    assert.equal(
      await tab.getAttribute(cell("old-gw", "host"), "title"),
      "not published by this gateway",
    );
    assert.equal(await tab.textContent(cell("old-gw", "updates")), "-");
    assert.equal(
      await tab.getAttribute(cell("old-gw", "updates"), "title"),
      "not published by this gateway",
    );
    // Headers line up with the cells.
    const headers = await tab.locator("#gateways thead th").allInnerTexts();
    const cols = await tab.locator('tr[data-gateway="host-gw"] td').evaluateAll((tds) =>
      tds.map((td) => td.getAttribute("data-col"))
    );
    assert.equal(headers[cols.indexOf("host")], "Host checks");
    assert.equal(headers[cols.indexOf("updates")], "Device updates");
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await page?.stop();
    await fake?.close();
    for (const d of devices) await d.close();
    await gw?.stop().catch(() => {});
    await sub?.close();
    await server?.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
