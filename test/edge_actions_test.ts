import assert from "node:assert/strict";
import mqtt from "mqtt";
import { ActionRunner } from "../src/edge/actions.ts";
import type { AlarmEvent } from "../src/edge/alarm_store.ts";
import { type RuleConfig, ruleSchema } from "../src/edge/config.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { createLogger, type LogRecord } from "../src/log.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

const TOKEN = "edge-actions-test-token-0123456789";

function rule(raw: Record<string, unknown>): RuleConfig {
  const ctx = new Ctx();
  const r = ruleSchema.check(raw, ctx, []);
  if (r === INVALID) throw new Error(JSON.stringify(ctx.issues));
  return r;
}

function event(state: "raised" | "cleared", value: number, ts: number): AlarmEvent {
  return {
    rule: "pressure-high",
    instance: "pump-3",
    state,
    severity: "critical",
    message: `pump-3 pressure ${value} bar`,
    ts,
    raisedAt: 1_700_000_000_000,
    device: "pump-3",
    metric: "pressure",
    value,
  };
}

function runner() {
  const log = createLogger({ sink: () => {}, ringSize: 5000, level: "debug" });
  const controller = new AbortController();
  const actions = new ActionRunner({
    write: () => Promise.resolve(),
    log: log.child("actions"),
    signal: controller.signal,
  });
  const lines = (re: RegExp): LogRecord[] => log.recent().filter((l) => re.test(l.msg));
  return { actions, lines, stop: () => controller.abort() };
}

/** A local subscriber with a session the broker keeps across its restarts. */
async function localSubscriber(url: string, topic: string) {
  const client = await mqtt.connectAsync(url, {
    clientId: `actions-sub-${crypto.randomUUID().slice(0, 8)}`,
    clean: false,
    reconnectPeriod: 100,
  });
  const msgs: { topic: string; payload: string; retain: boolean }[] = [];
  client.on("message", (t, p, packet) => {
    msgs.push({ topic: t, payload: p.toString(), retain: packet.retain });
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return { msgs, close: () => client.endAsync(true) };
}

Deno.test("mqtt action: templated and JSON payloads reach a real Mosquitto; while it is down publishes wait, are logged and counted, then arrive in order", async () => {
  const broker = await startMosquitto({ persistent: true });
  const sub = await localSubscriber(broker.url, "site/#");
  const { actions, lines, stop } = runner();
  const r = rule({
    name: "pressure-high",
    when: { device: "pump-*", metric: "pressure", above: 8 },
    actions: [
      {
        on: "both",
        mqtt: {
          url: broker.url,
          topic: "site/alarms/text",
          payload:
            "{rule}|{instance}|{state}|{severity}|{device}|{metric}|{value}|{message}|{nope}",
        },
      },
      { on: "clear", mqtt: { url: broker.url, topic: "site/alarms/json", retain: true } },
    ],
  });
  try {
    actions.run(r, event("raised", 9.5, 1_700_000_000_000));
    await actions.idle();
    await waitFor("the raise on the local broker", () => sub.msgs.length === 1);
    assert.deepEqual(sub.msgs[0], {
      topic: "site/alarms/text",
      payload:
        "pressure-high|pump-3|raised|critical|pump-3|pressure|9.5|pump-3 pressure 9.5 bar|{nope}",
      retain: false,
    });

    await broker.stop();
    const cleared = event("cleared", 7, 1_700_000_005_000);
    actions.run(r, cleared);
    actions.run(r, event("raised", 9.9, 1_700_000_009_000));
    await waitFor("the outage to be logged", () => lines(/unreachable/).length > 0);
    const warn = lines(/unreachable/)[0];
    assert.equal(warn.level, "warn");
    assert.equal(warn.fields?.url, broker.url);
    assert.deepEqual(actions.stats(), { run: 4, failed: 0, pending: 3 }, "waiting, not failed");
    // Reconnect attempts every second do not repeat the warning.
    await waitFor("a second connection attempt", () => lines(/still unreachable/).length > 0);
    assert.equal(lines(/unreachable; publishes wait/).length, 1);

    await broker.start();
    await actions.idle();
    assert.deepEqual(actions.stats(), { run: 4, failed: 0, pending: 0 });
    await waitFor("the return to be logged", () => lines(/reachable again/).length === 1);
    await waitFor("the queued publishes", () => sub.msgs.length === 4);
    assert.deepEqual(sub.msgs.slice(1).map((m) => [m.topic, m.payload.split("|")[2] ?? ""]), [
      ["site/alarms/text", "cleared"],
      ["site/alarms/json", ""],
      ["site/alarms/text", "raised"],
    ], "in the order the transitions happened");
    assert.deepEqual(JSON.parse(sub.msgs[2].payload), cleared, "no payload: the event as JSON");

    // retain: a subscriber that comes later still gets the last state.
    const late = await localSubscriber(broker.url, "site/alarms/json");
    await waitFor("the retained event", () => late.msgs.length === 1);
    assert.equal(late.msgs[0].retain, true);
    assert.deepEqual(JSON.parse(late.msgs[0].payload), cleared);
    await late.close();
  } finally {
    stop();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("mqtt action: with no broker, publishes wait (up to 1,000 per broker, more fail at once), other actions run, stopping settles them", async () => {
  const { actions, lines, stop } = runner();
  const url = `mqtt://127.0.0.1:${freePort()}`;
  const r = rule({
    name: "pressure-high",
    when: { device: "p", metric: "x", above: 1 },
    actions: [{ mqtt: { url, topic: "t" } }, { log: { message: "logged {instance}" } }],
  });
  try {
    for (let i = 0; i < 1001; i++) actions.run(r, event("raised", i, 1_700_000_000_000 + i));
    await waitFor("the 1,001st publish to fail", () => actions.stats().failed === 1);
    assert.deepEqual(actions.stats(), { run: 2002, failed: 1, pending: 1000 });
    const failed = lines(/rule action failed/);
    assert.equal(failed.length, 1);
    assert.equal(failed[0].fields?.action, "mqtt");
    assert.match(
      String(failed[0].fields?.error),
      /^Cannot publish to "t" on "mqtt:\/\/127\.0\.0\.1:\d+": 1000 publishes already wait/,
    );
    assert.equal(lines(/^logged pump-3$/).length, 1001, "the log actions ran meanwhile");
  } finally {
    stop();
  }
  await actions.idle();
  assert.deepEqual(actions.stats(), { run: 2002, failed: 1001, pending: 0 }, "stop ends them");
  assert.deepEqual(lines(/unfinished at stop/).map((l) => l.fields), [{ actions: 1000 }]);
  assert.equal(lines(/rule action failed/).length, 1, "one line at stop, not one per action");
});

Deno.test("webhook action: POSTs the event as JSON; refused, timed out and 500 are logged and counted once each (no retry); the next one goes through", async () => {
  const received: { body: AlarmEvent; type: string | null }[] = [];
  let mode: "ok" | "fail" | "hang" = "ok";
  const hanging = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      received.push({ body: await req.json(), type: req.headers.get("content-type") });
      if (mode === "hang") {
        await new Promise((r) => hanging.signal.addEventListener("abort", r));
      }
      return new Response(null, { status: mode === "fail" ? 500 : 204 });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}/hook`;
  const dead = `http://127.0.0.1:${freePort()}/hook`;
  const { actions, lines, stop } = runner();
  const hook = (u: string) =>
    rule({
      name: "pressure-high",
      when: { device: "p", metric: "x", above: 1 },
      actions: [{ on: "both", webhook: { url: u, timeout: "300ms" } }],
    });
  const failures = () => lines(/rule action failed/).map((l) => String(l.fields?.error));
  try {
    const raised = event("raised", 9.5, 1_700_000_000_000);
    actions.run(hook(dead), raised);
    await actions.idle();
    assert.deepEqual(actions.stats(), { run: 1, failed: 1, pending: 0 });
    assert.match(
      failures()[0],
      /^Cannot POST the alarm to webhook "http:\/\/127\.0\.0\.1:\d+\/hook": /,
    );

    mode = "fail";
    actions.run(hook(url), raised);
    await actions.idle();
    assert.equal(failures()[1], `Webhook "${url}" answered 500`);
    assert.equal(received.length, 1, "not retried");

    mode = "hang";
    const t0 = Date.now();
    actions.run(hook(url), raised);
    await actions.idle();
    assert.ok(Date.now() - t0 < 3000);
    assert.equal(
      failures()[2],
      `Cannot POST the alarm to webhook "${url}": no answer within 300 ms`,
    );
    hanging.abort();

    mode = "ok";
    const cleared = event("cleared", 7, 1_700_000_005_000);
    actions.run(hook(url), cleared);
    await actions.idle();
    assert.deepEqual(actions.stats(), { run: 4, failed: 3, pending: 0 });
    assert.equal(received.length, 3);
    assert.deepEqual(received[2], { body: cleared, type: "application/json" });
    assert.deepEqual(received[0].body, raised);
  } finally {
    stop();
    hanging.abort();
    await server.shutdown();
  }
});

Deno.test("uplink down: a glob rule's mqtt and webhook actions fire for the matching device; a dead webhook is logged and counted, the gateway carries on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-edge-actions-" });
  const local = await startMosquitto();
  const sub = await localSubscriber(local.url, "site/#");
  const hooks: AlarmEvent[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    hooks.push(await req.json());
    return new Response(null, { status: 204 });
  });
  const ingest = freePort();
  const deadHook = `http://127.0.0.1:${freePort()}/hook`;
  const gw = await startGateway(
    dir,
    `
gateway: { id: actions-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: mqtt://127.0.0.1:${freePort()}
  reconnect: { min: 200ms, max: 500ms }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    tokens: [{ token: ${TOKEN} }]
rules:
  - name: pressure-high
    severity: critical
    message: "{device} pressure {value} bar"
    when: { device: "pump-*", metric: pressure, above: 8, clearBelow: 7.5 }
    actions:
      - on: both
        mqtt: { url: "${local.url}", topic: site/alarms, payload: "{rule} {instance} {state} {value}" }
      - { on: both, webhook: { url: "http://127.0.0.1:${server.addr.port}/hook" } }
      - webhook: { url: "${deadHook}", timeout: 500ms }
`,
  );
  type Status = {
    uplink: { connected: boolean };
    edge: { alarmsQueued: number; actions: { run: number; failed: number; pending: number } };
  };
  const status = async () => await gw.status() as unknown as Status;
  const post = async (readings: unknown[]) => {
    const res = await fetch(`http://127.0.0.1:${ingest}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(readings),
    });
    assert.equal(res.status, 200, await res.text());
  };
  try {
    await post([
      { device: "pump-1", metric: "pressure", value: 5 },
      { device: "pump-2", metric: "pressure", value: 9.1 },
      { device: "fan-2", metric: "pressure", value: 9.9 },
    ]);
    await waitFor(
      "the raise on the local broker and the webhook, the dead hook failed",
      async () =>
        sub.msgs.length === 1 && hooks.length === 1 && (await status()).edge.actions.failed === 1,
    );
    assert.equal(sub.msgs[0].payload, "pressure-high pump-2 raised 9.1");
    assert.equal(sub.msgs[0].topic, "site/alarms");
    assert.deepEqual(
      [hooks[0].rule, hooks[0].instance, hooks[0].state, hooks[0].device, hooks[0].message],
      ["pressure-high", "pump-2", "raised", "pump-2", "pump-2 pressure 9.1 bar"],
    );
    let s = await status();
    assert.equal(s.uplink.connected, false, "all of this with the uplink down");
    assert.equal(s.edge.alarmsQueued, 1, "the alarm itself waits for the uplink");
    assert.match(gw.output(), /rule action failed/);
    assert.ok(gw.output().includes(deadHook), "the log line names the dead webhook");

    await post([{ device: "pump-2", metric: "pressure", value: 7 }]);
    await waitFor(
      "the clear on the local broker and the webhook",
      () => sub.msgs.length === 2 && hooks.length === 2,
    );
    assert.equal(sub.msgs[1].payload, "pressure-high pump-2 cleared 7");
    assert.equal(hooks[1].state, "cleared");
    await waitFor(
      "the actions to settle",
      async () => (s = await status()).edge.actions.pending === 0,
    );
    assert.deepEqual(s.edge.actions, { run: 5, failed: 1, pending: 0 });
    assert.equal(s.edge.alarmsQueued, 2);
  } finally {
    await gw.kill();
    await server.shutdown();
    await sub.close();
    await local.stop();
  }
});
