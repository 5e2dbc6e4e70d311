import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { startServer } from "../adapters/modbus/testdata/harness.ts";

interface Msg {
  topic: string;
  body: Record<string, unknown>;
}

/** A cloud-side client with a persistent session, recording every message in arrival order. */
async function cloud(url: string): Promise<{ msgs: Msg[]; close(): Promise<void> }> {
  const client = await mqtt.connectAsync(url, {
    clientId: `edge-cloud-${crypto.randomUUID().slice(0, 8)}`,
    clean: false,
    reconnectPeriod: 200,
  });
  const msgs: Msg[] = [];
  client.on("message", (topic, payload) => {
    if (!topic.endsWith("/status")) msgs.push({ topic, body: JSON.parse(payload.toString()) });
  });
  await client.subscribeAsync("gateways/#", { qos: 1 });
  return { msgs, close: () => client.endAsync(true) };
}

/**
 * The gateway's way to the broker, which the test can cut and restore: a TCP relay on a port of
 * its own. The cloud-side client stays connected to the broker throughout.
 */
function relay(target: number): { port: number; up(): void; down(): void } {
  const port = freePort();
  let listener: Deno.Listener | undefined;
  const conns = new Set<Deno.Conn>();
  const pipe = (a: Deno.Conn, b: Deno.Conn) =>
    a.readable.pipeTo(b.writable).catch(() => {}).finally(() => {
      for (const c of [a, b]) {
        try {
          c.close();
        } catch { /* closed */ }
        conns.delete(c);
      }
    });
  return {
    port,
    up() {
      const l = listener = Deno.listen({ hostname: "127.0.0.1", port });
      (async () => {
        for await (const inbound of l) {
          const outbound = await Deno.connect({ hostname: "127.0.0.1", port: target });
          conns.add(inbound).add(outbound);
          pipe(inbound, outbound);
          pipe(outbound, inbound);
        }
      })().catch(() => {});
    },
    down() {
      listener?.close();
      listener = undefined;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.clear();
    },
  };
}

function config(dir: string, brokerUrl: string, modbusPort: number): string {
  return `
gateway: { id: edge-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${brokerUrl}
  reconnect: { min: 200ms, max: 500ms }
adapters:
  - type: modbus
    name: plc
    devices:
      - name: pump-3
        tcp: { host: 127.0.0.1, port: ${modbusPort} }
        groups:
          - interval: 100ms
            registers:
              - { name: pressure, function: holding, address: 10, scale: 0.1, unit: bar }
              - { name: run, function: coil, address: 0 }
rules:
  - name: pump-3-pressure-high
    severity: critical
    message: "pump-3 pressure {value} bar"
    when: { device: pump-3, metric: pressure, above: 8, clearBelow: 7.5, for: 1s }
    actions:
      - write: { adapter: plc, device: pump-3, point: run, value: false }
`;
}

type EdgeStatus = {
  edge: { activeAlarms: Record<string, number>; alarmsQueued: number };
  buffer: { pending: number };
  devices: Record<string, Record<string, { ts: number; value: unknown }>>;
};

const runWrites = (reqs: { fc: number; address: number; count: number }[]) =>
  reqs.filter((r) => r.fc === 5 && r.address === 0);

Deno.test("uplink down: the rule's Modbus write reaches the PLC; on reconnect the alarm arrives before the backlog", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-edge-" });
  const broker = await startMosquitto();
  const sub = await cloud(broker.url);
  const link = relay(broker.port);
  const modbusPort = freePort();
  const plc = await startServer(["--tcp", String(modbusPort)]);
  const gw = await startGateway(dir, config(dir, `mqtt://127.0.0.1:${link.port}`, modbusPort));
  try {
    await waitFor("a backlog of normal readings", async () => {
      const s = await gw.status() as unknown as EdgeStatus;
      return s.buffer.pending >= 30;
    }, 20_000);
    await plc.send("set 1 holding 10 95"); // 9.5 bar
    await waitFor("the rule's write of run=false (FC5, coil 0)", () => {
      const w = runWrites(plc.requests);
      return w.length === 1 && w[0].count === 0; // FC5 value 0x0000 = off
    }, 10_000);
    const s = await gw.status() as unknown as EdgeStatus;
    assert.deepEqual(Object.keys(s.edge.activeAlarms), ["pump-3-pressure-high"]);
    assert.equal(s.edge.alarmsQueued, 1, "the alarm waits for the uplink");
    assert.equal(sub.msgs.length, 0);

    link.up();
    await waitFor("the alarm and the backlog upstream", () => {
      const tele = sub.msgs.filter((m) => m.topic.endsWith("/telemetry"));
      return sub.msgs.some((m) => m.topic.endsWith("/alarms")) && tele.length >= 2;
    }, 20_000);
    const first = sub.msgs[0];
    assert.equal(first.topic, "gateways/edge-gw/alarms", "the alarm comes first");
    assert.equal(first.body.rule, "pump-3-pressure-high");
    assert.equal(first.body.state, "raised");
    assert.equal(first.body.severity, "critical");
    assert.equal(first.body.message, "pump-3 pressure 9.5 bar");
    await waitFor("the alarm to leave the outbox", async () => {
      const st = await gw.status() as unknown as EdgeStatus;
      return st.edge.alarmsQueued === 0;
    });
  } finally {
    await gw.kill();
    link.down();
    await plc.stop();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("restart during an active alarm: no second raise, no second write, and the clear still comes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-edge-" });
  const broker = await startMosquitto();
  const sub = await cloud(broker.url);
  const modbusPort = freePort();
  const plc = await startServer(["--tcp", String(modbusPort)]);
  await plc.send("set 1 holding 10 95");
  const yaml = config(dir, broker.url, modbusPort);
  let gw = await startGateway(dir, yaml);
  const alarms = () => sub.msgs.filter((m) => m.topic.endsWith("/alarms")).map((m) => m.body);
  try {
    await waitFor("the raise upstream", () => alarms().length === 1, 15_000);
    await waitFor("the raise to be confirmed", async () => {
      const st = await gw.status() as unknown as EdgeStatus;
      return st.edge.alarmsQueued === 0;
    });
    await gw.kill();
    const restartedAt = Date.now();
    gw = await startGateway(dir, yaml);
    // Longer than `for: 1s` of high readings after the restart.
    const st = await waitFor("2.5 s of readings after the restart", async () => {
      const s = await gw.status() as unknown as EdgeStatus;
      return (s.devices["pump-3"]?.pressure?.ts ?? 0) > restartedAt + 2500 ? s : undefined;
    }, 15_000);
    assert.deepEqual(Object.keys(st.edge.activeAlarms), ["pump-3-pressure-high"]);
    assert.equal(alarms().length, 1, "no duplicate raise");
    assert.equal(runWrites(plc.requests).length, 1, "no second write");

    await plc.send("set 1 holding 10 70"); // 7.0 bar, below clearBelow
    await waitFor("the clear upstream", () => alarms().length === 2, 10_000);
    assert.deepEqual(alarms().map((a) => a.state), ["raised", "cleared"]);
    assert.equal(alarms()[1].raisedAt, alarms()[0].raisedAt);
  } finally {
    await gw.kill();
    await plc.stop();
    await sub.close();
    await broker.stop();
  }
});
