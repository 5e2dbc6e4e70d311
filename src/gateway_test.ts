import assert from "node:assert/strict";
import { adapters } from "../adapters/mod.ts";
import { gatewaySchema } from "./config/gateway.ts";
import { parseConfig } from "./config/load.ts";
import { Gateway } from "./gateway.ts";
import { createLogger } from "./log.ts";
import mqtt from "mqtt";
import { startMosquitto } from "../test/helpers/mosquitto.ts";
import { waitFor } from "../test/helpers/ports.ts";

Deno.test("status() carries the sections its composition root hands in, and no other gateway's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-gateway-" });
  const log = createLogger({ level: "error", sink: () => {} });
  const start = (id: string, statusSections?: () => Record<string, unknown>) =>
    Gateway.start({
      config: parseConfig(
        `gateway: { id: ${id} }\nbuffer: { path: ${dir}/${id}.db }\n`,
        gatewaySchema(adapters),
      ),
      adapters,
      log,
      version: "9.9.9-test",
      statusSections,
    });
  let checks = 0;
  const a = start("gw-a", () => ({ update: { state: "idle", checks: ++checks } }));
  const b = start("gw-b");
  try {
    assert.deepEqual((a.status() as { update?: unknown }).update, { state: "idle", checks: 1 });
    assert.deepEqual((a.status() as { update?: unknown }).update, { state: "idle", checks: 2 });
    assert.equal((b.status() as { update?: unknown }).update, undefined);
    assert.equal(b.status().gatewayId, "gw-b");
  } finally {
    await a.stop();
    await b.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a status section that throws costs that section, not the gateway: the status still goes out, and the failure is logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-gateway-" });
  const broker = await startMosquitto();
  const sub = await mqtt.connectAsync(broker.url, { clientId: "status-watch" });
  const statuses: Record<string, unknown>[] = [];
  sub.on("message", (_t, p) => statuses.push(JSON.parse(p.toString())));
  await sub.subscribeAsync("gateways/gw-throw/status", { qos: 1 });
  const lines: string[] = [];
  const gw = Gateway.start({
    config: parseConfig(
      `gateway: { id: gw-throw }\nbuffer: { path: ${dir}/b.db }\n` +
        `uplink: { type: mqtt, url: "${broker.url}", statusInterval: 1s }\n`,
      gatewaySchema(adapters),
    ),
    adapters,
    log: createLogger({ level: "warn", sink: (line) => lines.push(line) }),
    version: "9.9.9-test",
    announce: () => {
      throw new Error("doctor summary broke");
    },
  });
  try {
    await waitFor(
      "two online statuses",
      () => statuses.filter((s) => s.state === "online").length >= 2,
    );
    assert.equal(statuses.at(-1)!.gatewayId, "gw-throw");
    assert.ok(
      lines.some((l) => /status section failed.*doctor summary broke/.test(l)),
      lines.join("\n"),
    );
  } finally {
    await gw.stop();
    await sub.endAsync();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
