/**
 * The retained status a gateway publishes carries what the fleet page shows per gateway: site,
 * the page's address and health (real Mosquitto, real gateway process).
 */
import assert from "node:assert/strict";
import { gatewayView } from "../src/fleet/view.ts";
import type { StatusMessage } from "../src/uplink/mod.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";

Deno.test("the status message carries site, pageUrl and health; the fleet view reads them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-status-topic-" });
  const broker = await startMosquitto();
  const sub = await subscribe(broker.url);
  // A BLE adapter whose D-Bus is not there never runs, so health names the adapters.
  const gw = await startGateway(
    dir,
    `
gateway: { id: status-gw, site: "plant 3 / hall B" }
buffer: { path: ${dir}/data/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, statusInterval: 1s }
adapters:
  - type: ble
    name: tags
    busAddress: unix:path=${dir}/no-such-bus
    devices: [{ name: t1, address: "AA:BB:CC:DD:EE:FF", decoder: ruuvi }]
`,
    { httpExtra: 'pageUrl: "https://gw.plant3.example:8443/"' },
  );
  try {
    const status = await waitFor(
      "a status naming the failing adapter",
      () =>
        Promise.resolve(
          sub.statuses.find((s) =>
            (s.health as { failing?: string[] } | undefined)?.failing?.includes("adapters")
          ),
        ),
      30_000,
    ) as StatusMessage;
    assert.equal(status.site, "plant 3 / hall B");
    assert.equal(status.pageUrl, "https://gw.plant3.example:8443/");
    assert.deepEqual(status.health, { ok: false, failing: ["adapters"] });
    const now = Date.now();
    const v = gatewayView("status-gw", status, {
      receivedAt: now,
      live: true,
      now,
      staleAfterMs: 120_000,
    });
    assert.equal(v.site, "plant 3 / hall B");
    assert.equal(v.pageUrl, "https://gw.plant3.example:8443/");
    assert.equal(v.health, "failing");
    assert.match(v.healthNote ?? "", /adapters/);
  } finally {
    await gw.kill();
    await sub.close();
    await broker.stop();
  }
});
