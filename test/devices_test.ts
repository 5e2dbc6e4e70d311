/**
 * Device artifacts end to end: a real release channel (signed with roles, served over loopback
 * HTTP), a real Mosquitto, a real gateway process, and simulated ESP32 devices that update the
 * way `esp_https_ota` does (test/helpers/ota_device.ts).
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { createHash } from "node:crypto";
import { publishDevice } from "../src/update/mod.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { type Broker, startMosquitto } from "./helpers/mosquitto.ts";
import { OtaDevice } from "./helpers/ota_device.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { waitFor } from "./helpers/ports.ts";
import { deviceUpdateYaml, idleGatewayChannel, writeDeviceTokens } from "./helpers/device_site.ts";
import { parsePrometheus, sampleValue } from "./helpers/prometheus.ts";
import { type ChannelServer, channelServer, outpost } from "./helpers/update.ts";

const CLASS = "esp32-boiler-v3";

interface DeviceView {
  id: string;
  state: string;
  running?: string;
  target?: { version: string };
  servedBytes?: number;
  error?: string;
}
interface DevicesView {
  lastCheck?: { result: string; code?: string; reason?: string };
  artifacts: Record<string, { version: string; refused?: { version: string; code: string } }>;
  rollouts: Record<string, { status: string; failures: number; reason?: string }>;
  devices: DeviceView[];
}

/** A site: release keys, a channel with a gateway release, a broker, a gateway with devices. */
interface Site {
  dir: string;
  channel: string;
  release: string;
  server: ChannelServer;
  broker: Broker;
  gw: GatewayProcess;
  tokens: Record<string, string>;
  devices: OtaDevice[];
  view(): Promise<DevicesView>;
  waitView(what: string, pred: (v: DevicesView) => boolean, ms?: number): Promise<DevicesView>;
  device(
    id: string,
    opts?: { failAfterInstall?: boolean; cutAfterBytes?: number },
  ): Promise<OtaDevice>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Random bytes standing for a firmware image. */
async function firmware(dir: string, name: string, size: number): Promise<string> {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, data);
  return path;
}

async function site(
  ids: string[],
  rollout: { batch: number; failureThreshold: number },
  publishFirst?: (s: { dir: string; channel: string; release: string }) => Promise<void>,
  extra = "",
): Promise<Site> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-devices-" });
  const { release, channel, installRoot } = await idleGatewayChannel(dir);
  await publishFirst?.({ dir, channel, release });
  const server = channelServer(`${dir}/channel`);
  const broker = await startMosquitto();
  const tokens = await writeDeviceTokens(dir, ids);
  const yaml = `gateway: { id: devices-gw }
buffer: { path: ${dir}/buffer.db }
${
    deviceUpdateYaml({
      dir,
      brokerUrl: broker.url,
      channelUrl: server.url,
      installRoot,
      cls: CLASS,
      ids,
      rollout,
    })
  }${extra.replaceAll("DIR", dir)}`;
  let gw = await startGateway(dir, yaml);
  const devices: OtaDevice[] = [];
  const s: Site = {
    dir,
    channel,
    release,
    server,
    broker,
    get gw() {
      return gw;
    },
    tokens,
    devices,
    async view() {
      const st = await gw.status() as unknown as { deviceUpdates: DevicesView };
      return st.deviceUpdates;
    },
    async waitView(what, pred, ms = 60_000) {
      try {
        return await waitFor(
          what,
          async () => {
            const v = await s.view();
            return pred(v) ? v : undefined;
          },
          ms,
          100,
        );
      } catch (e) {
        throw new Error(
          `${(e as Error).message}\n${
            JSON.stringify(await s.view().catch(() => null), null, 1)
          }\n--- gateway ---\n${gw.output()}`,
        );
      }
    },
    async device(id, opts = {}) {
      const d = await OtaDevice.start({
        id,
        token: tokens[id],
        broker: broker.url,
        dir: `${dir}/dev-${id}`,
        version: "1.0.0",
        ...opts,
      });
      devices.push(d);
      return d;
    },
    async restart() {
      await gw.stop();
      gw = await startGateway(dir, yaml);
    },
    async close() {
      for (const d of devices) await d.close();
      await gw.stop().catch(() => {});
      await server.close();
      await broker.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  return s;
}

const sha256 = async (path: string) =>
  createHash("sha256").update(await Deno.readFile(path)).digest("hex");

Deno.test({
  name:
    "devices: a good rollout goes batch by batch to every device, resumes a cut download with Range, survives a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ids = ["boiler-1", "boiler-2", "boiler-3"];
    const s = await site(ids, { batch: 2, failureThreshold: 1 });
    try {
      const fw = await firmware(s.dir, "boiler-1.1.0.bin", 300_000);
      // Through the CLI, as a release engineer would.
      const out = await outpost(
        "release",
        "publish-device",
        "--channel",
        s.channel,
        "--artifact",
        fw,
        "--name",
        CLASS,
        "--version",
        "1.1.0",
        "--class",
        CLASS,
        "--root-dir",
        s.release,
      );
      assert.match(out, /published esp32-boiler-v3 1\.1\.0 \(300000 bytes/);
      const [d1, d2, d3] = [
        await s.device("boiler-1", { cutAfterBytes: 100_000 }),
        await s.device("boiler-2"),
        await s.device("boiler-3"),
      ];
      const running = (d: OtaDevice) =>
        d.reports.find((r) => r.version === "1.1.0" && r.state === "running")?.at;
      for (const d of [d1, d2, d3]) {
        await d.waitFor("1.1.0 running", (x) => running(x) !== undefined, 60_000);
      }
      // Batch of two: boiler-3 was offered only once both of the first batch ran 1.1.0.
      assert.equal(d3.offers.length, 1);
      assert.ok(d1.offers[0].at < running(d1)! && d2.offers[0].at < running(d2)!);
      assert.ok(
        d3.offers[0].at >= Math.max(running(d1)!, running(d2)!),
        JSON.stringify({ d1: d1.reports, d2: d2.reports, d3: d3.offers }),
      );
      const v = await s.waitView(
        "every device current",
        (v) => v.devices.every((d) => d.state === "current" && d.running === "1.1.0"),
      );
      assert.equal(v.rollouts[CLASS].status, "done");
      // The image in each device's boot partition is the published one.
      const want = await Deno.readFile(fw);
      for (const d of [d1, d2, d3]) assert.deepEqual(await d.image(), want);
      // boiler-1 lost its connection after 100000 bytes and fetched only the rest, with Range.
      assert.equal(d1.requests.length, 2);
      assert.equal(d1.requests[0].range, null);
      assert.equal(d1.requests[0].bytes, 100_000);
      assert.equal(d1.requests[1].range, "bytes=100000-");
      assert.equal(d1.requests[1].ifRange, `"${await sha256(fw)}"`);
      assert.equal(d1.requests[1].status, 206);
      assert.equal(d1.requests[1].bytes, 200_000);
      assert.equal(d2.requests.length, 1);
      assert.equal(d2.requests[0].bytes, 300_000);
      // The gateway fetched the artifact from the channel once.
      const fetched = s.server.requests.filter((r) => r.includes("/devices/esp32-boiler-v3/"));
      assert.equal(fetched.length, 1, fetched.join("\n"));
      // /metrics as a whole still parses strictly.
      const fam = parsePrometheus(await (await s.gw.get("/metrics")).text());
      const count = (state: string) =>
        sampleValue(fam, "outpost_device_artifact_devices", { class: CLASS, state });
      assert.deepEqual([count("current"), count("failed"), count("offered")], [3, 0, 0]);
      assert.equal(
        sampleValue(fam, "outpost_device_artifact_rollout_stopped", { class: CLASS }),
        0,
      );
      // No token, no firmware; the page's own token is not a device token either.
      const url = `http://127.0.0.1:${s.gw.httpPort}/devices/artifacts/${CLASS}/1.1.0`;
      assert.equal(await fetch(url).then(async (r) => (await r.body?.cancel(), r.status)), 401);
      const page = await fetch(url, { headers: { authorization: `Bearer ${s.gw.token()}` } });
      await page.body?.cancel();
      assert.equal(page.status, 401);
      // A device that polls over HTTP instead of MQTT sees the same offer.
      const polled = await fetch(`http://127.0.0.1:${s.gw.httpPort}/devices/offer`, {
        headers: { authorization: `Bearer ${s.tokens["boiler-3"]}` },
      }).then((r) => r.json());
      const { at: _, ...offered } = d3.offers[0];
      assert.deepEqual(polled, offered);
      // The tokens appear nowhere in the log or /status.
      for (const t of Object.values(s.tokens)) {
        assert.ok(!s.gw.output().includes(t), "a device token is in the gateway's output");
        assert.ok(!JSON.stringify(await s.view()).includes(t));
      }
      // States survive a restart of the gateway.
      await s.restart();
      const after = await s.view();
      assert.deepEqual(
        after.devices.map((d) => [d.id, d.state, d.running]),
        ids.map((id) => [id, "current", "1.1.0"]),
      );
      // Told that 1.1.0 is bad, boiler-3 goes back to its previous partition and says so.
      const op = await mqtt.connectAsync(s.broker.url);
      await op.publishAsync("outpost/devices/boiler-3/update/rollback", "{}", { qos: 1 });
      await op.endAsync();
      const rb = await s.waitView(
        "boiler-3 rolled back",
        (v) => v.devices.find((d) => d.id === "boiler-3")?.state === "rolled-back",
      );
      assert.equal(rb.devices.find((d) => d.id === "boiler-3")!.running, "1.0.0");
      assert.equal(d3.version, "1.0.0");
      // 1.2.0 for boiler-2 only, then 1.3.0 for all: the gateway keeps the newest two files.
      const files = () =>
        [...Deno.readDirSync(`${s.dir}/artifacts/files/${CLASS}`)].map((e) => e.name).sort();
      for (const [version, only] of [["1.2.0", ["--device", "boiler-2"]], ["1.3.0", []]] as const) {
        await publishDevice({
          channel: s.channel,
          artifact: await firmware(s.dir, `fw-${version}.bin`, 20_000),
          name: CLASS,
          version,
          classes: [CLASS],
          devices: only.length ? [only[1]] : undefined,
          keys: [],
          rootDir: s.release,
        });
        await s.waitView(`${version} held`, (v) => v.artifacts[CLASS]?.version === version);
        if (version === "1.2.0") {
          await d2.waitFor("1.2.0", (d) => d.version === "1.2.0" && running(d) !== undefined);
          const v2 = await s.waitView(
            "boiler-2 on 1.2.0",
            (v) =>
              v.devices.find((d) => d.id === "boiler-2")?.state === "current" &&
              v.devices.find((d) => d.id === "boiler-2")?.running === "1.2.0",
          );
          assert.equal(v2.rollouts[CLASS].status, "done");
          assert.deepEqual(files(), ["1.1.0.bin", "1.2.0.bin"]);
          assert.equal(d1.offers.length + d3.offers.length, 2);
        }
      }
      assert.deepEqual(files(), ["1.2.0.bin", "1.3.0.bin"]);
      const last = await s.view() as unknown as {
        artifacts: Record<string, { previous?: { version: string } }>;
      };
      assert.equal(last.artifacts[CLASS].previous?.version, "1.2.0");
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "devices: a tampered artifact on the channel is refused at the gateway and never offered",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const s = await site(["boiler-1", "boiler-2"], { batch: 0, failureThreshold: 1 }, async (c) => {
      const fw = await firmware(c.dir, "fw.bin", 50_000);
      await publishDevice({
        channel: c.channel,
        artifact: fw,
        name: CLASS,
        version: "1.1.0",
        classes: [CLASS],
        keys: [],
        rootDir: c.release,
      });
      // Someone with write access to the channel's storage swaps the image, same size.
      const evil = await Deno.readFile(`${c.channel}/devices/${CLASS}/1.1.0/fw.bin`);
      evil[1000] ^= 0xff;
      await Deno.writeFile(`${c.channel}/devices/${CLASS}/1.1.0/fw.bin`, evil);
    });
    try {
      const [d1, d2] = [await s.device("boiler-1"), await s.device("boiler-2")];
      const v = await s.waitView(
        "the artifact refused",
        (v) => v.artifacts[CLASS]?.refused !== undefined,
      );
      assert.equal(v.artifacts[CLASS].refused!.code, "hash-mismatch");
      // Several more checks of the channel: still nothing offered, nothing served, and the
      // state file (on flash) not rewritten for nothing.
      const stateFile = `${s.dir}/artifacts/state.json`;
      const mtime = (await Deno.stat(stateFile)).mtime!.getTime();
      const before = s.server.requests.length;
      await waitFor(
        "two more channel checks",
        () => s.server.requests.length >= before + 4,
        20_000,
      );
      assert.deepEqual([d1.offers.length, d2.offers.length], [0, 0]);
      assert.equal((await Deno.stat(stateFile)).mtime!.getTime(), mtime);
      assert.deepEqual([d1.requests.length, d2.requests.length], [0, 0]);
      const after = await s.view();
      assert.ok(
        after.devices.every((d) => d.state === "current" && d.running === "1.0.0" && !d.target),
      );
      assert.equal(after.rollouts[CLASS], undefined);
      // Nothing of the bad file stays on the gateway.
      const held = [...Deno.readDirSync(`${s.dir}/artifacts/files/${CLASS}`)].map((e) => e.name);
      assert.deepEqual(held, []);
      const metrics = await (await s.gw.get("/metrics")).text();
      assert.match(metrics, /outpost_device_artifact_refused\{name="esp32-boiler-v3"\} 1/);
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name:
    "devices: a device that fails after install rolls back, and the rollout stops at the failure threshold",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ids = ["boiler-1", "boiler-2", "boiler-3", "boiler-4"];
    // A vendor tool run for each offer, with what to flash in its environment.
    const hook =
      `  exec:\n    command: /bin/sh\n    args: ["-c", "env | grep ^OUTPOST_ | sort > DIR/hook-$OUTPOST_DEVICE"]\n`;
    const s = await site(ids, { batch: 1, failureThreshold: 1 }, undefined, hook);
    try {
      const bad = await s.device("boiler-1", { failAfterInstall: true });
      const rest = [
        await s.device("boiler-2"),
        await s.device("boiler-3"),
        await s.device("boiler-4"),
      ];
      const fw = await firmware(s.dir, "fw.bin", 40_000);
      await publishDevice({
        channel: s.channel,
        artifact: fw,
        name: CLASS,
        version: "1.1.0",
        classes: [CLASS],
        keys: [],
        rootDir: s.release,
      });
      const v = await s.waitView(
        "the rollout stopped",
        (v) => v.rollouts[CLASS]?.status === "stopped",
      );
      const b1 = v.devices.find((d) => d.id === "boiler-1")!;
      assert.equal(b1.state, "rolled-back");
      assert.equal(b1.running, "1.0.0");
      assert.match(b1.error!, /self-test of 1\.1\.0 failed/);
      assert.equal(bad.version, "1.0.0");
      assert.deepEqual(bad.reports.map((r) => r.state), [
        "running",
        "downloading",
        "installed",
        "rolled-back",
      ]);
      // The other devices were never offered it.
      await new Promise((r) => setTimeout(r, 3000));
      assert.deepEqual(rest.map((d) => d.offers.length), [0, 0, 0]);
      const env = Object.fromEntries(
        (await Deno.readTextFile(`${s.dir}/hook-boiler-1`)).trim().split("\n").map((l) =>
          l.split("=", 2)
        ),
      );
      assert.equal(env.OUTPOST_ARTIFACT_VERSION, "1.1.0");
      assert.equal(env.OUTPOST_ARTIFACT_SHA256, await sha256(fw));
      assert.equal(await sha256(env.OUTPOST_ARTIFACT_PATH), await sha256(fw));
      assert.deepEqual(
        [...Deno.readDirSync(s.dir)].filter((e) => e.name.startsWith("hook-")).map((e) => e.name),
        ["hook-boiler-1"],
      );
      const now = await s.view();
      assert.deepEqual(now.devices.filter((d) => d.id !== "boiler-1").map((d) => d.state), [
        "waiting",
        "waiting",
        "waiting",
      ]);
      assert.match(now.rollouts[CLASS].reason!, /failureThreshold 1/);
      const metrics = await (await s.gw.get("/metrics")).text();
      assert.match(metrics, /outpost_device_artifact_rollout_stopped\{class="esp32-boiler-v3"\} 1/);
      assert.match(
        metrics,
        /outpost_device_artifact_devices\{class="esp32-boiler-v3",state="rolled-back"\} 1/,
      );
      // The gateway page shows it, beside (not instead of) the readings' device cards.
      const browser = await launchBrowser();
      try {
        const page = await browser.browser.newPage();
        await page.goto(`http://127.0.0.1:${s.gw.httpPort}/`);
        await page.fill("#token", s.gw.token());
        await page.click("#login-submit");
        await page.locator("#device-updates-section").waitFor({ state: "visible" });
        const row = (id: string) =>
          page.locator(`#device-updates [data-device="${id}"]`).innerText();
        assert.match(
          await row("boiler-1"),
          /boiler-1\s+esp32-boiler-v3\s+rolled-back\s+1\.0\.0\s+1\.1\.0\s+self-test/,
        );
        assert.match(await row("boiler-4"), /waiting/);
        assert.match(
          await page.locator("#device-rollouts").innerText(),
          /esp32-boiler-v3: esp32-boiler-v3 1\.1\.0 stopped, 1 failed/,
        );
      } finally {
        await browser.close();
      }
      // The gateway's own per-device readings stay in /status.
      const st = await s.gw.status() as unknown as { devices: unknown; deviceUpdates: unknown };
      assert.deepEqual(typeof st.devices, "object");
      assert.ok(!Array.isArray(st.devices) && !("rollouts" in (st.devices as object)));
      // A stopped rollout stays stopped across a restart.
      await s.restart();
      assert.equal((await s.view()).rollouts[CLASS].status, "stopped");
      // The operator resumes it: the next device gets the version.
      const table = await outpost("devices", "status", "--config", `${s.dir}/site.yaml`);
      assert.match(table, /rollout {2}esp32-boiler-v3: esp32-boiler-v3 1\.1\.0 STOPPED, 1 failed/);
      assert.match(
        table,
        /device {3}boiler-1 +esp32-boiler-v3 +rolled-back +runs 1\.0\.0, offered 1\.1\.0/,
      );
      const cli = await outpost(
        "devices",
        "resume",
        "--config",
        `${s.dir}/site.yaml`,
        "--class",
        CLASS,
      );
      assert.match(cli, /resumed/);
      await rest[0].waitFor("1.1.0 on boiler-2", (d) => d.version === "1.1.0", 60_000);
    } finally {
      await s.close();
    }
  },
});
