/**
 * Alarms acknowledged and cleared by signed remote commands: a real Mosquitto, a real gateway
 * process with a rule, requests signed as the fleet console signs them. The `operate` scope is
 * required, the audit trail records each request, `/metrics` counts them by outcome, and the
 * retained status message carries the alarm counts.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { type CommandReply, type CommandRequest, signRequest } from "../src/protocol/mod.ts";
import { generateKey, importSigningKey } from "../src/update/keys.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { parsePrometheus, sampleValue } from "./helpers/prometheus.ts";

const INGEST_TOKEN = "alarm-cmd-ingest-token-0123456789";

Deno.test("alarm-ack and alarm-clear: signed with an operate key they acknowledge and clear; a read key is refused; audited, counted, on the status topic", async () => {
  const broker = await startMosquitto();
  const dir = await Deno.makeTempDir({ prefix: "outpost-alarm-cmd-" });
  const operateFile = await generateKey();
  const readFile = await generateKey();
  const operate = await importSigningKey(operateFile);
  const reader = await importSigningKey(readFile);
  const ingest = freePort();
  const gw = await startGateway(
    dir,
    `
gateway: { id: alarm-cmd-gw }
buffer: { path: ${dir}/data/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  statusInterval: 1s
  reconnect: { min: 100ms, max: 500ms }
commands:
  operatorKeys:
    - { key: "${operateFile.public}", scopes: [operate], name: night-shift }
    - { key: "${readFile.public}", scopes: [read], name: viewer }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    tokens: [{ token: ${INGEST_TOKEN} }]
rules:
  - name: tank-full
    when: { device: "tank-*", metric: level, above: 95 }
`,
  );
  const client = await mqtt.connectAsync(broker.url, { clientId: "alarm-cmd-test" });
  const replies = new Map<string, CommandReply>();
  let status: Record<string, unknown> | undefined;
  client.on("message", (topic, payload) => {
    const msg = JSON.parse(payload.toString());
    if (topic.endsWith("/status")) status = msg;
    else if (msg.final) replies.set(msg.id, msg);
  });
  await client.subscribeAsync(["gateways/+/reply", "gateways/+/status"], { qos: 1 });
  const call = async (
    cmd: string,
    key: typeof operate,
    args: Record<string, unknown>,
  ): Promise<CommandReply> => {
    const req: CommandRequest = { id: crypto.randomUUID(), args };
    await signRequest(key, cmd, "alarm-cmd-gw", req);
    await client.publishAsync(`gateways/alarm-cmd-gw/cmd/${cmd}`, JSON.stringify(req), { qos: 1 });
    return await waitFor(`the reply to ${cmd}`, () => Promise.resolve(replies.get(req.id)), 20_000);
  };
  const metrics = async () => parsePrometheus(await (await gw.get("/metrics")).text());
  try {
    await waitFor(
      "request topics subscribed",
      async () => {
        const s = await gw.status() as unknown as { commands?: { subscribed?: boolean } };
        return s.commands?.subscribed === true;
      },
      20_000,
      50,
    );
    const res = await fetch(`http://127.0.0.1:${ingest}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify([
        { device: "tank-1", metric: "level", value: 97 },
        { device: "tank-2", metric: "level", value: 99 },
      ]),
    });
    assert.equal(res.status, 200);
    await waitFor(
      "the status topic to carry two active alarms",
      () => Promise.resolve((status?.alarms as { active?: number } | undefined)?.active === 2),
      10_000,
    );

    const refused = await call("alarm-ack", reader, { key: "tank-full[tank-1]" });
    assert.equal(refused.status, "error");
    assert.equal(refused.error?.code, "forbidden");
    assert.match(refused.error!.message, /needs the operate scope/);

    const bad = await call("alarm-ack", operate, { key: "tank-full[tank-9]" });
    assert.equal(bad.error?.code, "failed");
    assert.match(bad.error!.message, /no active alarm "tank-full\[tank-9\]"; active: /);
    const noKey = await call("alarm-ack", operate, {});
    assert.equal(noKey.error?.code, "bad-args");

    const acked = await call("alarm-ack", operate, { key: "tank-full[tank-1]" });
    assert.equal(acked.status, "done", JSON.stringify(acked));
    const ack = (acked.result as { acknowledged: { acknowledged: { by: string } } }).acknowledged;
    assert.equal(ack.acknowledged.by, "key night-shift");
    await waitFor("the status topic to show the acknowledgement", () => {
      const a = status?.alarms as { active: number; acknowledged: number } | undefined;
      return Promise.resolve(a?.active === 1 && a.acknowledged === 1);
    }, 10_000);

    const cleared = await call("alarm-clear", operate, { key: "tank-full[tank-2]" });
    assert.equal(cleared.status, "done", JSON.stringify(cleared));
    assert.equal((cleared.result as { cleared: { by: string } }).cleared.by, "key night-shift");
    const alarms = await (await gw.get("/api/alarms")).json();
    assert.deepEqual(alarms.active.map((a: { key: string }) => a.key), ["tank-full[tank-1]"]);
    assert.deepEqual(
      alarms.history.slice(0, 2).map((h: { key: string; to: string; by?: string }) => [
        h.key,
        h.to,
        h.by,
      ]),
      [["tank-full[tank-2]", "cleared", "key night-shift"], [
        "tank-full[tank-1]",
        "acknowledged",
        "key night-shift",
      ]],
    );

    type Audit = { cmd: string; result: string; key?: string };
    // The audit entry is written once the final reply is out: wait for the last one.
    const mine = await waitFor(
      "five audit entries of alarm commands",
      async () => {
        const audit = (await (await gw.get("/audit?n=50")).json()).audit as Audit[];
        const list = audit.filter((e) => e.cmd.startsWith("alarm-"));
        return list.length >= 5 ? list : undefined;
      },
      10_000,
      50,
    );
    assert.deepEqual(mine.map((e) => [e.cmd, e.result, e.key]), [
      ["alarm-ack", "forbidden", "viewer"],
      ["alarm-ack", "failed", "night-shift"],
      ["alarm-ack", "bad-args", "night-shift"],
      ["alarm-ack", "done", "night-shift"],
      ["alarm-clear", "done", "night-shift"],
    ]);
    const m = await metrics();
    assert.equal(
      sampleValue(m, "outpost_commands_total", { command: "alarm-ack", result: "done" }),
      1,
    );
    assert.equal(
      sampleValue(m, "outpost_commands_total", { command: "alarm-ack", result: "failed" }),
      1,
    );
    assert.equal(
      sampleValue(m, "outpost_commands_total", { command: "alarm-clear", result: "done" }),
      1,
    );
    assert.equal(
      sampleValue(m, "outpost_alarm_active", {
        rule: "tank-full",
        instance: "tank-1",
        severity: "warning",
      }),
      1,
    );
    assert.equal(
      sampleValue(m, "outpost_alarm_transitions_total", { rule: "tank-full", to: "cleared" }),
      1,
    );
  } finally {
    await client.endAsync(true);
    await gw.stop();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
