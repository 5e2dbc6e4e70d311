/**
 * Health means health: with every buffer commit failing (another process holds the file's write
 * lock for good), /healthz, outpost_up and systemd's STATUS= say so and the watchdog ping stops;
 * once the lock goes, all of it clears by itself. A broker that stops confirming makes the
 * forwarder check fail.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { adapters } from "../adapters/mod.ts";
import { gatewaySchema } from "../src/config/gateway.ts";
import { parseConfig } from "../src/config/load.ts";
import { Gateway } from "../src/gateway.ts";
import { createLogger } from "../src/log.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { notifySocket } from "./helpers/notify_socket.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

Deno.test("every commit failing: /healthz 503, outpost_up 0, STATUS= unhealthy and no watchdog ping; lock gone, all clear", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-health-" });
  const port = freePort();
  const sock = notifySocket(`${dir}/notify`);
  const gw = await startGateway(
    dir,
    `
gateway: { id: health-gw }
buffer: { path: ${dir}/buffer.db, minFreeDisk: 1MB, reserve: 1MB }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 50ms }
`,
    {
      httpPort: port,
      waitHealthy: true,
      env: { NOTIFY_SOCKET: `${dir}/notify`, WATCHDOG_USEC: "2000000" },
    },
  );
  const healthz = async () => {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`);
    return { status: r.status, body: await r.json() };
  };
  const up = async () => {
    const text = await (await gw.get("/metrics")).text();
    return Number(text.split("\n").find((l) => l.startsWith("outpost_up "))?.split(" ")[1]);
  };
  const holder = new DatabaseSync(`${dir}/buffer.db`);
  try {
    await waitFor("watchdog pings", () => sock.got.some((d) => d.text.includes("WATCHDOG=1")));
    assert.equal(await up(), 1);
    holder.exec("BEGIN IMMEDIATE");
    const bad = await waitFor("healthz to fail", async () => {
      const h = await healthz();
      return h.status === 503 ? h : undefined;
    }, 30_000);
    assert.equal(bad.body.checks.buffer.ok, false, JSON.stringify(bad.body));
    assert.match(bad.body.checks.buffer.detail, /commits fail .*database is locked/);
    assert.equal(await up(), 0);
    const withheld = await waitFor(
      "STATUS=unhealthy",
      () => sock.got.find((d) => /^STATUS=unhealthy: buffer: commits fail/m.test(d.text)),
      30_000,
    );
    assert.ok(!withheld.text.includes("WATCHDOG=1"), "no ping while commits fail");
    const since = withheld.at;
    holder.exec("ROLLBACK");
    await waitFor("healthz to pass again", async () => (await healthz()).status === 200, 30_000);
    assert.equal(await up(), 1);
    await waitFor(
      "pings to resume",
      () => sock.got.some((d) => d.at > since && d.text.includes("WATCHDOG=1")),
      30_000,
    );
    assert.equal(await gw.stop(), 0);
  } finally {
    try {
      if (holder.isTransaction) holder.exec("ROLLBACK");
      holder.close();
    } catch { /* closed */ }
    await gw.kill();
    await sock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a broker that stops confirming (SIGSTOP) makes the forwarder check fail while the uplink still looks connected; SIGCONT clears it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-stuck-" });
  const broker = await startMosquitto();
  const log = createLogger({ level: "debug", sink: () => {} });
  const config = parseConfig(
    `
gateway: { id: stuck-gw }
buffer: { path: ${dir}/buffer.db, minFreeDisk: 1MB, reserve: 1MB }
uplink: { type: mqtt, url: ${broker.url}, keepalive: 60s }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 20ms }
`,
    gatewaySchema(adapters),
  );
  const gw = Gateway.start({
    config,
    adapters,
    log,
    version: "9.9.9-test",
    forwarderStuckMs: 1500,
  });
  let stopped = false;
  try {
    await waitFor("readings forwarded", () => (gw.forwarder?.stats().forwardedReadings ?? 0) > 20);
    assert.equal(gw.health().ok, true, JSON.stringify(gw.health()));
    Deno.kill(broker.pid, "SIGSTOP");
    stopped = true;
    const h = await waitFor("the forwarder check to fail", () => {
      const h = gw.health();
      return h.checks.forwarder.ok ? undefined : h;
    }, 15_000);
    assert.match(
      h.checks.forwarder.detail,
      /^stuck: \d+ readings pending and the uplink connected/,
    );
    assert.equal(h.checks.uplink.ok, true, "the uplink still looks connected");
    assert.equal(h.ok, false);
    Deno.kill(broker.pid, "SIGCONT");
    stopped = false;
    await waitFor("the forwarder check to pass", () => gw.health().checks.forwarder.ok, 15_000);
  } finally {
    if (stopped) Deno.kill(broker.pid, "SIGCONT");
    await gw.stop();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
