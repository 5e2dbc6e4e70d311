import assert from "node:assert/strict";
import { adapters } from "../../adapters/mod.ts";
import { request } from "../common/http/mod.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { parseConfig } from "../config/load.ts";
import { Gateway } from "../gateway.ts";
import { createLogger } from "../log.ts";
import { createGatewayApp } from "./server.ts";
import { TokenStore } from "./token.ts";

/** A gateway with one rule, and its HTTP handlers without a socket. */
async function withApp(
  fn: (app: ReturnType<typeof createGatewayApp>, token: string, gw: Gateway) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-http-alarms-" });
  const log = createLogger({ level: "debug", sink: () => {} });
  const config = parseConfig(
    `
gateway: { id: alarms-gw }
buffer: { path: ${dir}/buffer.db }
rules:
  - { name: hot, when: { device: pump-1, metric: temp, above: 50 } }
`,
    gatewaySchema(adapters),
  );
  const gw = Gateway.start({ config, adapters, log, version: "9.9.9-test" });
  const { store } = TokenStore.open(`${dir}/http-token`, log.child("http"));
  const app = createGatewayApp({ gateway: gw, log: log.child("http"), tokens: store });
  try {
    await fn(app, Deno.readTextFileSync(`${dir}/http-token`).trim(), gw);
  } finally {
    app.stop();
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("GET /session answers without a token and counts no refusal; the alarm API needs the token, JSON and the page's origin", async () => {
  await withApp(async (app, token, gw) => {
    const metric = async () => {
      const res = await request(app.fetch, "/metrics", {
        headers: { authorization: `Bearer ${token}` },
      });
      const line = (await res.text()).split("\n")
        .find((l) => l.startsWith("outpost_http_unauthorized_requests_total "));
      return Number(line?.split(" ")[1]);
    };
    const anon = await request(app.fetch, "/session");
    assert.deepEqual(await anon.json(), { signedIn: false });
    const stale = await request(app.fetch, "/session", {
      headers: { cookie: "outpost_session_x=1.abc" },
    });
    assert.deepEqual(await stale.json(), { signedIn: false });
    const bearer = await request(app.fetch, "/session", {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.deepEqual(await bearer.json(), { signedIn: true });
    assert.equal(await metric(), 0);

    await gw.pipeline.emit("test", [{
      device: "pump-1",
      metric: "temp",
      value: 60,
      ts: Date.now(),
    }]);
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const post = (path: string, body: unknown, headers: Record<string, string> = auth) =>
      request(app.fetch, path, { method: "POST", headers, body: JSON.stringify(body) });

    assert.equal((await post("/api/alarms/acknowledge", { key: "hot" }, {})).status, 401);
    assert.equal(await metric(), 1);
    assert.equal(
      (await post("/api/alarms/acknowledge", { key: "hot" }, { ...auth, origin: "http://x" }))
        .status,
      403,
    );
    const missing = await post("/api/alarms/acknowledge", { key: "cold" });
    assert.equal(missing.status, 404);
    assert.match((await missing.json()).error, /no active alarm "cold"; active: hot/);
    assert.equal((await post("/api/alarms/acknowledge", { nope: 1 })).status, 400);
    assert.equal((await post("/status", {})).status, 405);

    const ok = await post("/api/alarms/acknowledge", { key: "hot" });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).acknowledged.acknowledged.by, "page");
    const view = await (await request(app.fetch, "/api/alarms", { headers: auth })).json();
    assert.equal(view.configured, true);
    assert.equal(view.active[0].key, "hot");
    assert.deepEqual(view.history.map((h: { to: string }) => h.to), ["acknowledged", "raised"]);
    assert.equal((await request(app.fetch, "/api/alarms/clear", { headers: auth })).status, 405);
  });
});
