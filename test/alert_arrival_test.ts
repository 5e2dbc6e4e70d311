/**
 * The backlog alert by arrival time: backdated readings (a device uploading what it logged while
 * its own link was down) make the source-timestamp age of the oldest pending reading hours large
 * while nothing is stuck; the arrival age stays at the seconds they actually waited. A real
 * gateway process with an `http` adapter and an uplink that is down.
 */
import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { parsePrometheus, sampleValue } from "./helpers/prometheus.ts";

const INGEST_TOKEN = "arrival-test-ingest-token-0123456789";
const OLD = "outpost_buffer_oldest_pending_age_seconds";
const ARRIVAL = "outpost_buffer_oldest_pending_arrival_age_seconds";

Deno.test("backdated readings: the source-timestamp age passes the old alert's 3600 s while the arrival age stays small; after a restart it counts from the restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-arrival-" });
  const ingest = freePort();
  // Nobody listens there: the uplink stays down and the readings stay pending.
  const yaml = `
gateway: { id: arrival-gw }
buffer: { path: ${dir}/data/buffer.db }
uplink:
  type: mqtt
  url: mqtt://127.0.0.1:${freePort()}
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    tokens: [{ token: ${INGEST_TOKEN} }]
`;
  let gw = await startGateway(dir, yaml);
  const metrics = async () => parsePrometheus(await (await gw.get("/metrics")).text());
  try {
    const twoHoursAgo = Date.now() - 2 * 3600_000;
    const readings = Array.from({ length: 100 }, (_, i) => ({
      device: "logger-1",
      metric: "flow",
      value: i,
      ts: twoHoursAgo + i * 1000,
    }));
    const posted = Date.now();
    const res = await fetch(`http://127.0.0.1:${ingest}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(readings),
    });
    assert.equal(res.status, 200, await res.text());
    let m = await metrics();
    assert.equal(sampleValue(m, "outpost_buffer_pending_readings"), 100);
    // The alert documented before (`oldest_pending_age_seconds > 3600`) would fire now.
    assert.ok(sampleValue(m, OLD)! > 3600, `${OLD} = ${sampleValue(m, OLD)}`);
    const fresh = sampleValue(m, ARRIVAL)!;
    assert.ok(fresh >= 0 && fresh < 60, `${ARRIVAL} = ${fresh}`);

    // It grows as the readings wait: it tells how long they have been stuck.
    await waitFor(
      "the arrival age to pass 2 s",
      async () => {
        const age = sampleValue(await metrics(), ARRIVAL)!;
        return age >= 2 && age <= (Date.now() - posted) / 1000 + 1;
      },
      15_000,
      200,
    );

    // After a restart the arrival of what was pending is unknown: it counts from the restart.
    assert.equal(await gw.stop(), 0);
    const restarted = Date.now();
    gw = await startGateway(dir, yaml);
    m = await metrics();
    assert.equal(sampleValue(m, "outpost_buffer_pending_readings"), 100);
    assert.ok(sampleValue(m, OLD)! > 3600);
    const after = sampleValue(m, ARRIVAL)!;
    assert.ok(after <= (Date.now() - restarted) / 1000 + 1, `${ARRIVAL} after restart = ${after}`);
  } finally {
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
