/**
 * Graceful stop: readings waiting for their group commit when SIGTERM arrives are committed before
 * the process exits.
 */
import assert from "node:assert/strict";
import { exportReadings } from "../src/buffer/export.ts";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor, waitForPort } from "./helpers/ports.ts";

Deno.test("SIGTERM commits the readings still waiting for a group commit, then exits 0", async () => {
  const dir = await Deno.makeTempDir();
  const ingestPort = freePort();
  const deviceToken = "device-token-0123456789";
  // The longest commit wait the config allows, and a row threshold the batch never reaches:
  // the readings sit in the commit queue when the signal comes.
  const gw = await startGateway(
    dir,
    `
gateway: { id: sigterm-gw }
buffer: { path: ${dir}/buffer.db, commitInterval: 1000ms, commitRows: 100000 }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingestPort}
    tokens: [{ token: ${deviceToken} }]
`,
  );
  try {
    await waitForPort(ingestPort);
    const n = 300;
    const now = Date.now();
    const readings = Array.from({ length: n }, (_, i) => ({
      device: "meter-1",
      metric: "energy",
      value: i,
      ts: now - n + i,
    }));
    const posted = fetch(`http://127.0.0.1:${ingestPort}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${deviceToken}`, "content-type": "application/json" },
      body: JSON.stringify(readings),
    });
    // Awaited below; a failure before that must not surface as an unhandled rejection.
    posted.catch(() => {});
    type St = { pipeline: { received: number }; buffer: { rows: number } };
    const queued = await waitFor(
      "the readings in the commit queue",
      async () => {
        const s = await gw.status() as unknown as St;
        return s.pipeline.received === n ? s : undefined;
      },
      10_000,
      10,
    );
    assert.equal(queued.buffer.rows, 0, "not committed yet when SIGTERM is sent");

    assert.equal(await gw.stop(), 0);
    // The device's answer is the http adapter's business (its connection may close before the
    // 200 on a stop); what matters here is that nothing received is lost.
    await posted.then((r) => r.body?.cancel(), () => {});
    const stored = [...exportReadings(`${dir}/buffer.db`, { device: "meter-1" })];
    assert.deepEqual(stored.map((r) => r.value), readings.map((r) => r.value));
    assert.match(gw.output(), /\[gateway\] stopped/);
  } finally {
    await gw.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
