import assert from "node:assert/strict";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { subscribe } from "./helpers/subscriber.ts";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";
import { exportReadings } from "../src/buffer/export.ts";

Deno.test("broker outage: readings keep coming, status says offline, and every reading arrives in per-device order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-outage-" });
  const broker = await startMosquitto({ persistent: true });
  const sub = await subscribe(broker.url);
  const gw = await startGateway(
    dir,
    `
gateway: { id: outage-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 200ms, max: 1s }
  statusInterval: 1s
adapters:
  - type: simulated
    name: sim
    devices: 5
    interval: 50ms
`,
  );
  try {
    await waitFor("readings to flow", () => sub.unique().size >= 200, 20_000);
    await broker.stop();
    await waitFor("status to show the uplink offline", async () => {
      const s = await gw.status() as unknown as { uplink: { connected: boolean } };
      return s.uplink.connected === false;
    });
    const during = await waitFor("a backlog to build up", async () => {
      const s = await gw.status();
      return s.buffer.pending >= 500 ? s : undefined;
    }, 30_000);
    assert.equal(
      (during.health as { ok: boolean }).ok,
      true,
      "buffering without an uplink is healthy",
    );
    await broker.start();
    await waitFor("the uplink to reconnect", async () => {
      const s = await gw.status() as unknown as { uplink: { connected: boolean } };
      return s.uplink.connected;
    }, 20_000);
    // Stop only once the backlog is gone: shutdown waits just 3 s for in-flight messages, and
    // what it leaves behind stays in the buffer rather than reaching the subscriber.
    await waitFor(
      "the backlog to drain",
      async () => (await gw.status()).buffer.pending < 50,
      30_000,
    );
    assert.equal(await gw.stop(), 0, "graceful stop");
    const stored = [...exportReadings(`${dir}/buffer.db`)];
    assert.ok(stored.length > 700, `stored ${stored.length}`);
    try {
      await waitFor("every stored reading at the subscriber", () => {
        const u = sub.unique();
        return stored.every((r) => u.has(r.seq));
      }, 30_000);
    } catch (e) {
      const u = sub.unique();
      const missing = stored.filter((r) => !u.has(r.seq));
      console.error(
        `missing ${missing.length} of ${stored.length}; acknowledged in buffer: ${
          missing.filter((r) => r.forwarded).length
        }; seqs ${missing.slice(0, 5).map((r) => r.seq)}..${missing.at(-1)?.seq}\n${gw.output()}`,
      );
      throw e;
    }
    assert.equal(sub.epochs.size, 1);
    for (const [device, list] of sub.byDevice()) {
      for (let i = 1; i < list.length; i++) {
        assert.ok(
          list[i].seq > list[i - 1].seq,
          `${device}: seq ${list[i].seq} after ${list[i - 1].seq}`,
        );
        assert.ok(list[i].ts >= list[i - 1].ts, `${device}: time order`);
      }
    }
    for (const r of stored) assert.ok(r.forwarded, `seq ${r.seq} acknowledged in the buffer`);
  } finally {
    await gw.kill();
    await sub.close();
    await broker.stop();
  }
});
