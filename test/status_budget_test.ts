/**
 * A broker with a small `message_size_limit` still holds a gateway's current status: with many
 * alarms on long device names the gateway sheds detail to fit `uplink.maxMessageBytes` (real
 * Mosquitto, real gateway process). Mosquitto answers an oversized QoS 1 publish with a PUBACK and
 * drops it, so without the budget the retained status silently stays the older one.
 */
import assert from "node:assert/strict";
import { gatewayView } from "../src/fleet/view.ts";
import { STATUS_SCHEMA, type StatusMessage } from "../src/uplink/mod.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";

const TOKEN = "status-budget-ingest-token-0123456789";
const LIMIT = 2048;
const DEVICES = 30;

Deno.test("a broker's small message_size_limit: the retained status of a gateway with many alarms still arrives, within the limit, counts intact", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-status-budget-" });
  const broker = await startMosquitto({ extra: [`message_size_limit ${LIMIT}`] });
  const sizes: number[] = [];
  const sub = await subscribe(broker.url, "gateways/+/status", {
    onMessage: (_t, payload) => sizes.push(payload.length),
  });
  const ingest = freePort();
  const gw = await startGateway(
    dir,
    `
gateway: { id: budget-gw, site: "plant 3 / hall B" }
buffer: { path: ${dir}/data/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, statusInterval: 1s, maxMessageBytes: ${LIMIT} }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    tokens: [{ token: ${TOKEN} }]
rules:
  - name: pressure-high-on-the-main-feed-pumps-of-hall-b
    severity: critical
    when: { device: "pump-*", metric: pressure, above: 8 }
`,
  );
  let killed = false;
  const device = (i: number) => `pump-${String(i).padStart(3, "0")}-${"line-b-feed-".repeat(8)}`;
  try {
    await waitFor("the first status", () => sub.statuses.length > 0, 30_000);
    const res = await fetch(`http://127.0.0.1:${ingest}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(
        Array.from({ length: DEVICES }, (_, i) => ({
          device: device(i),
          metric: "pressure",
          value: 9,
        })),
      ),
    });
    assert.equal(res.status, 200, await res.text());
    const alarms = (s: Record<string, unknown>) => (s.alarms as { active?: number })?.active;
    await waitFor(
      `a status counting ${DEVICES} alarms`,
      () => sub.statuses.some((s) => alarms(s) === DEVICES),
      30_000,
    );
    console.log(`largest status: ${Math.max(...sizes)} bytes (limit ${LIMIT})`);
    assert.ok(Math.max(...sizes) <= LIMIT, `a status of ${Math.max(...sizes)} bytes arrived`);

    // What the broker keeps for a console that connects now is the status with the alarms.
    const late = await subscribe(broker.url, "gateways/+/status");
    try {
      await waitFor("the retained status", () => late.statuses.length > 0, 10_000);
      const retained = late.statuses[0] as StatusMessage;
      assert.equal(retained.schema, STATUS_SCHEMA);
      assert.equal(retained.gatewayId, "budget-gw");
      assert.equal(retained.state, "online");
      assert.equal(typeof retained.version, "string");
      assert.equal(typeof retained.backlog, "number");
      assert.equal(typeof (retained.health as { ok?: unknown }).ok, "boolean");
      const a = retained.alarms as { active: number; list?: unknown[]; more: number };
      assert.equal(a.active, DEVICES);
      assert.equal((a.list?.length ?? 0) + a.more, DEVICES);
      assert.ok((retained.truncated as string[]).includes("alarms.list"));
      const now = Date.now();
      const v = gatewayView("budget-gw", retained, {
        receivedAt: now,
        live: false,
        now,
        staleAfterMs: 120_000,
      });
      assert.equal(v.health, "alarm");
      assert.equal(v.alarms?.active, DEVICES);
    } finally {
      await late.close();
    }

    // The last will carries the schema too.
    await gw.kill();
    killed = true;
    await waitFor("the last will", () => sub.statuses.some((s) => s.state === "offline"), 15_000);
    const will = sub.statuses.find((s) => s.state === "offline")!;
    assert.equal(will.schema, STATUS_SCHEMA);
    assert.equal(will.gatewayId, "budget-gw");
  } finally {
    if (!killed) await gw.kill();
    await sub.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
