/**
 * Secrets stay secret: a real gateway process with planted secrets (a broker password from an
 * environment variable, an inline ingest token, credentials in rule action URLs, the page's
 * access token), and every output surface searched for them: /healthz, /status, /metrics, /logs,
 * the dashboard API, the gateway page, stdout and stderr, and the `status`, `config-get` and
 * `logs` command replies over a real Mosquitto, signed with an operator key.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { type CommandReply, type CommandRequest, signRequest } from "../src/protocol/mod.ts";
import { generateKey, readSigningKey } from "../src/update/keys.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

Deno.test({
  name:
    "planted secrets appear on no output surface: HTTP endpoints, page, process output, logs and signed command replies",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-secrets-" });
  const broker = await startMosquitto();
  const key = await generateKey();
  await Deno.writeTextFile(`${dir}/operator.key`, JSON.stringify(key));
  const operator = await readSigningKey(`${dir}/operator.key`);
  const rand = () => crypto.randomUUID().replace(/-/g, "");
  const secrets = {
    mqttPassword: `mqttpw-${rand()}`,
    ingestToken: `ingest-${rand()}`,
    ruleUrlPassword: `rulepw${rand().slice(0, 12)}`,
    webhookToken: `hook-${rand()}`,
  };
  const closed = freePort();
  const ingestPort = freePort();
  const yaml = `gateway: { id: sec-gw, site: Plant 7 }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  username: outpost
  password: \${MQTT_PASSWORD}
  reconnect: { min: 100ms, max: 500ms }
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 100ms }
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingestPort}
    tokens:
      - { token: ${secrets.ingestToken}, name: plc }
rules:
  - name: always
    when: { device: sim-1, metric: temperature, above: -1000 }
    actions:
      - mqtt: { url: "mqtt://rules:${secrets.ruleUrlPassword}@127.0.0.1:${closed}", topic: a }
      - webhook: { url: "http://127.0.0.1:${closed}/hook?token=${secrets.webhookToken}" }
commands:
  requireSignature: true
  operatorKeys: ["${key.public}"]
`;
  const gw = await startGateway(dir, yaml, { env: { MQTT_PASSWORD: secrets.mqttPassword } });
  const client = await mqtt.connectAsync(broker.url, { clientId: `sec-console-${rand()}` });
  const replies = new Map<string, CommandReply>();
  client.on("message", (_t, payload) => {
    const r = JSON.parse(payload.toString()) as CommandReply;
    if (r.final && r.id) replies.set(r.id, r);
  });
  await client.subscribeAsync("gateways/sec-gw/reply", { qos: 1 });
  const call = async (cmd: string, args?: Record<string, unknown>): Promise<string> => {
    const req: CommandRequest = { id: crypto.randomUUID(), ...(args ? { args } : {}) };
    await signRequest(operator, cmd, "sec-gw", req);
    await client.publishAsync(`gateways/sec-gw/cmd/${cmd}`, JSON.stringify(req), { qos: 1 });
    const reply = await waitFor(`the reply to ${cmd}`, () => replies.get(req.id), 20_000);
    assert.equal(reply.status, "done", JSON.stringify(reply));
    return JSON.stringify(reply);
  };
  try {
    const token = gw.token();
    await waitFor("the uplink to connect with the broker password", async () => {
      const s = await gw.status() as { uplink?: { connected?: boolean } };
      return s.uplink?.connected === true;
    }, 20_000);
    // Both rule actions fail against a closed port and say so in the log, naming their URL.
    await waitFor("the rule actions' failures in the log", async () => {
      const logs = await (await gw.get("/logs?n=1000")).text();
      return logs.includes("rule actions unreachable") && logs.includes("webhook");
    }, 20_000);

    const surfaces: Record<string, string> = {};
    const open = async (path: string) =>
      await (await fetch(`http://127.0.0.1:${gw.httpPort}${path}`)).text();
    surfaces["/healthz"] = await open("/healthz");
    surfaces["/ (page)"] = await open("/");
    surfaces["/page.js"] = await open("/page.js");
    for (const path of ["/status", "/metrics", "/logs?n=1000", "/api/dashboard?logs=500"]) {
      const r = await gw.get(path);
      assert.equal(r.status, 200, path);
      surfaces[path] = await r.text();
    }
    surfaces["status command"] = await call("status");
    surfaces["config-get command"] = await call("config-get");
    surfaces["logs command"] = await call("logs", { lines: 500 });
    surfaces["stdout+stderr"] = gw.output();

    const planted = { ...secrets, accessToken: token };
    const leaks: string[] = [];
    for (const [surface, text] of Object.entries(surfaces)) {
      for (const [name, secret] of Object.entries(planted)) {
        if (text.includes(secret)) leaks.push(`${name} on ${surface}`);
      }
    }
    assert.deepEqual(leaks, []);
    // The surfaces really carry what a secret would ride on.
    assert.match(surfaces["/status"], /"target":"mqtt:\/\/127\.0\.0\.1:\d+"/);
    assert.match(surfaces["/metrics"], /outpost_uplink_info\{/);
    assert.match(surfaces["logs command"], /rule actions unreachable/);
    assert.match(surfaces["config-get command"], /password: \$\{MQTT_PASSWORD\}/);
    assert.match(surfaces["config-get command"], /mqtt:\/\/rules:\[redacted\]@127\.0\.0\.1/);
  } finally {
    await client.endAsync(true);
    await gw.stop();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
