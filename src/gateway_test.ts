import assert from "node:assert/strict";
import { adapters } from "../adapters/mod.ts";
import { gatewaySchema } from "./config/gateway.ts";
import { parseConfig } from "./config/load.ts";
import { Gateway } from "./gateway.ts";
import { createLogger } from "./log.ts";

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
