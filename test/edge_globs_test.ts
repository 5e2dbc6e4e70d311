import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const TOKEN = "edge-globs-test-token-0123456789";

Deno.test("check-config: glob misuse in rule conditions exits 2 naming file:line:col", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-edge-globs-" });
  const file = `${dir}/site.yaml`;
  await Deno.writeTextFile(
    file,
    `gateway: { id: gw }
adapters:
  - { type: simulated, name: sim }
rules:
  - name: pumps-ok
    when: { device: "pump-*", metric: "temp-?", above: 80 }
  - name: dry-run
    when:
      all:
        - { device: "pump-*", metric: flow, below: 1 }
        - { device: "valve-*", metric: open, equals: false }
`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "check-config", file],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).trim().split("\n");
  assert.equal(out.code, 2);
  assert.equal(
    stderr[0],
    `${file}:11:21 rules[1].when.all[1].device: expected the device pattern of all[0] ("pump-*"), got "valve-*"`,
  );
  await Deno.remove(dir, { recursive: true });
});

interface Alarm {
  id: string;
  rule: string;
  instance?: string;
  state: string;
  raisedAt: number;
  device?: string;
  value?: number;
}

Deno.test("a glob rule raises one alarm per device upstream; after a restart none is raised twice and each clear still comes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-edge-globs-" });
  const broker = await startMosquitto();
  const cloud = await mqtt.connectAsync(broker.url, { clientId: "globs-cloud", clean: false });
  const alarms: Alarm[] = [];
  cloud.on("message", (_t, p) => alarms.push(JSON.parse(p.toString())));
  await cloud.subscribeAsync("gateways/+/alarms", { qos: 1 });
  const ingest = freePort();
  const yaml = `
gateway: { id: globs-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 200ms, max: 500ms }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingest}
    tokens: [{ token: ${TOKEN} }]
rules:
  - name: pressure-high
    severity: critical
    when: { device: "pump-*", metric: pressure, above: 8, clearBelow: 7.5 }
`;
  let gw = await startGateway(dir, yaml);
  type Status = { edge: { activeAlarms: Record<string, number>; alarmsQueued: number } };
  const status = async () => await gw.status() as unknown as Status;
  const post = async (values: Record<string, number>) => {
    const res = await fetch(`http://127.0.0.1:${ingest}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(
        Object.entries(values).map(([device, value]) => ({ device, metric: "pressure", value })),
      ),
    });
    assert.equal(res.status, 200, await res.text());
  };
  const seen = () => alarms.map((a) => `${a.instance} ${a.state}`);
  try {
    await post({ "pump-1": 9, "pump-2": 8.5, "pump-3": 5, "valve-1": 9 });
    await waitFor("two raises upstream", () => alarms.length === 2);
    assert.deepEqual(seen().sort(), ["pump-1 raised", "pump-2 raised"]);
    const p1 = alarms.find((a) => a.instance === "pump-1")!;
    assert.equal(p1.id, `pressure-high[pump-1]:${p1.raisedAt}:raised`);
    assert.deepEqual([p1.rule, p1.device, p1.value], ["pressure-high", "pump-1", 9]);
    await waitFor("both raises confirmed", async () => (await status()).edge.alarmsQueued === 0);

    await gw.kill();
    gw = await startGateway(dir, yaml);
    assert.deepEqual(Object.keys((await status()).edge.activeAlarms).sort(), [
      "pressure-high[pump-1]",
      "pressure-high[pump-2]",
    ]);
    // pump-1 still high, pump-2 inside the hysteresis band, pump-3 newly high, pump-2 then low.
    await post({ "pump-1": 9.5, "pump-2": 7.8, "pump-3": 8.8 });
    await waitFor("pump-3's raise upstream", () => alarms.length === 3);
    await post({ "pump-2": 7 });
    await waitFor("pump-2's clear upstream", () => alarms.length === 4);
    assert.deepEqual(seen().slice(2), ["pump-3 raised", "pump-2 cleared"]);
    const p2 = alarms.filter((a) => a.instance === "pump-2");
    assert.equal(p2[1].raisedAt, p2[0].raisedAt, "the clear names the raise from before");
    assert.deepEqual(Object.keys((await status()).edge.activeAlarms).sort(), [
      "pressure-high[pump-1]",
      "pressure-high[pump-3]",
    ]);
  } finally {
    await gw.kill();
    await cloud.endAsync(true);
    await broker.stop();
  }
});
