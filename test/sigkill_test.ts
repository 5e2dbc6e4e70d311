import assert from "node:assert/strict";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { subscribe } from "./helpers/subscriber.ts";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";
import { exportReadings } from "../src/buffer/export.ts";
import { mulberry32 as rng } from "../src/rng.ts";

function config(dir: string, url: string, ingest: boolean): string {
  return `
gateway: { id: kill-gw }
buffer: { path: ${dir}/buffer.db, commitInterval: 20ms }
uplink:
  type: mqtt
  url: ${url}
  reconnect: { min: 100ms, max: 500ms }
  maxInflight: 8
  targetMessageBytes: 2KB
adapters:
  - type: simulated
    name: sim
    enabled: ${ingest}
    devices: 10
    interval: 20ms
`;
}

Deno.test("SIGKILL at random moments, 20 times: every accepted reading reaches the subscriber", async () => {
  const seed = Number(Deno.env.get("OUTPOST_TEST_SEED") ?? Date.now() % 100_000);
  const random = rng(seed);
  const dir = await Deno.makeTempDir({ prefix: "outpost-kill-" });
  const broker = await startMosquitto({ persistent: true });
  const sub = await subscribe(broker.url);
  let lastWill: Record<string, unknown> | undefined;
  try {
    for (let i = 0; i < 20; i++) {
      const gw = await startGateway(dir, config(dir, broker.url, true));
      // Kill at a random moment: during start-up, ingest, forwarding.
      const ms = Math.floor(random() * 1200);
      await new Promise((r) => setTimeout(r, ms));
      await gw.kill();
      if (i === 0) {
        lastWill = await waitFor(
          "the last will to mark the gateway offline",
          () => sub.statuses.find((s) => s.state === "offline"),
        );
      }
    }
    const gw = await startGateway(dir, config(dir, broker.url, false));
    try {
      await waitFor(
        "the backlog to drain",
        async () => (await gw.status()).buffer.pending === 0,
        60_000,
      );
    } finally {
      await gw.stop();
    }
    const stored = [...exportReadings(`${dir}/buffer.db`)];
    assert.ok(stored.length > 500, `only ${stored.length} readings accepted (seed ${seed})`);
    await waitFor("every accepted reading at the subscriber", () => {
      const u = sub.unique();
      return stored.every((r) => u.has(r.seq));
    }, 30_000);
    const u = sub.unique();
    for (const r of stored) {
      const got = u.get(r.seq)!;
      assert.deepEqual(
        [got.device, got.metric, got.value, got.ts],
        [r.device, r.metric, r.value, r.ts],
        `seq ${r.seq} (seed ${seed})`,
      );
    }
    // A duplicate delivery always carries the same sequence number: no content twice under two seqs.
    const bySample = new Map<string, number>();
    for (const r of sub.all) {
      const key = `${r.device}/${r.metric}/${r.ts}`;
      const prev = bySample.get(key);
      assert.ok(prev === undefined || prev === r.seq, `${key} under seq ${prev} and ${r.seq}`);
      bySample.set(key, r.seq);
    }
    assert.equal(lastWill?.gatewayId, "kill-gw");
    console.log(
      `seed ${seed}: ${stored.length} accepted, ${sub.all.length} delivered (${
        sub.all.length - u.size
      } duplicates)`,
    );
  } finally {
    await sub.close();
    await broker.stop();
  }
});
