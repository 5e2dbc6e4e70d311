/**
 * Device artifacts over HTTPS, as `esp_https_ota` needs them: the gateway serves with `http.tls`,
 * offers an https:// URL, and a simulated device that trusts only the gateway's CA downloads,
 * resumes and installs over it.
 */
import assert from "node:assert/strict";
import { publishDevice } from "../src/update/mod.ts";
import { GATEWAY_V8_FLAGS } from "../src/runtime_flags.ts";
import { testCerts } from "./helpers/certs.ts";
import { idleGatewayChannel } from "./helpers/device_site.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { OtaDevice } from "./helpers/ota_device.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { collectOutput } from "./helpers/proc.ts";
import { channelServer } from "./helpers/update.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test({
  name:
    "devices over HTTPS: an https:// offer, a device trusting the gateway's CA downloads with Range and installs",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const certs = await testCerts();
    const dir = await Deno.makeTempDir({ prefix: "outpost-devices-tls-" });
    const { release: rootDir, channel } = await idleGatewayChannel(dir);
    const image = crypto.getRandomValues(new Uint8Array(60_000));
    await Deno.writeFile(`${dir}/fw.bin`, image);
    await publishDevice({
      channel,
      artifact: `${dir}/fw.bin`,
      name: "esp32-boiler-v3",
      version: "2.0.0",
      classes: ["esp32-boiler-v3"],
      keys: [],
      rootDir,
    });
    const token = "tls-device-token-0123456789";
    await Deno.writeTextFile(`${dir}/b1.token`, token);
    const server = channelServer(`${dir}/channel`);
    const broker = await startMosquitto();
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/site.yaml`,
      `gateway: { id: tls-gw }
buffer: { path: ${dir}/buffer.db }
http:
  listen: 127.0.0.1:${port}
  tls: { cert: ${certs.serverCert}, key: ${certs.serverKey} }
  healthListen: 127.0.0.1:${freePort()}
update:
  channel: ${server.url}/stable/
  installRoot: ${dir}/opt
  checkInterval: 1h
  allowInsecure: true
devices:
  checkInterval: 1s
  mqtt: { url: ${broker.url} }
  list: [{ id: b1, class: esp32-boiler-v3, token: "\${file:${dir}/b1.token}" }]
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        `--v8-flags=${GATEWAY_V8_FLAGS}`,
        MAIN,
        "run",
        "--config",
        `${dir}/site.yaml`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const { output, drained } = collectOutput(child);
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.ca)] });
    let device: OtaDevice | undefined;
    try {
      device = await OtaDevice.start({
        id: "b1",
        token,
        broker: broker.url,
        dir: `${dir}/b1`,
        version: "1.0.0",
        cutAfterBytes: 25_000,
        client,
      });
      await device.waitFor(
        "2.0.0 running",
        (d) => d.reports.some((r) => r.version === "2.0.0" && r.state === "running"),
        60_000,
      ).catch((e) => {
        throw new Error(`${(e as Error).message}\n--- gateway ---\n${output()}`);
      });
      assert.match(device.offers[0].url, new RegExp(`^https://127\\.0\\.0\\.1:${port}/devices/`));
      assert.deepEqual(
        device.requests.map((r) => [r.range, r.status, r.bytes]),
        [[null, 200, 25_000], ["bytes=25000-", 206, 35_000]],
      );
      assert.deepEqual(await device.image(), image);
      const pageToken = (await Deno.readTextFile(`${dir}/http-token`)).trim();
      const st = await waitFor("b1 current in /status", async () => {
        const r = await fetch(`https://127.0.0.1:${port}/status`, {
          client,
          headers: { authorization: `Bearer ${pageToken}` },
        });
        const s = await r.json();
        return s.deviceUpdates.devices[0].state === "current" ? s : undefined;
      }, 30_000);
      assert.equal(st.deviceUpdates.devices[0].running, "2.0.0");
      // No plain HTTP on the gateway's port.
      await assert.rejects(fetch(`http://127.0.0.1:${port}/devices/offer`));
    } finally {
      await device?.close();
      client.close();
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await drained;
      await server.close();
      await broker.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
