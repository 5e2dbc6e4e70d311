import assert from "node:assert/strict";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";
import type { ExportRow } from "../src/buffer/export.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const TOKEN = "edge-local-test-token-0123456789";

type Status = {
  buffer: { pending: number; rows: number; localOnly: number };
  uplink: { connected: boolean } | null;
  edge: { aggregate: { windows: number } };
};

function config(dir: string, brokerUrl: string, ingestPort: number): string {
  return `
gateway: { id: local-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${brokerUrl}
  reconnect: { min: 200ms, max: 500ms }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingestPort}
    tokens: [{ token: ${TOKEN} }]
aggregate:
  - device: "pump-*"
    metric: pressure
    window: 1s
    grace: 100ms
    functions: [mean, count]
    raw: local
`;
}

async function post(port: number, readings: unknown[]): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/ingest`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(readings),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.deepEqual(body, { accepted: readings.length, rejected: 0 });
}

/** `outpost export --format jsonl` of the gateway's buffer, as a separate process would run it. */
async function exportRows(configPath: string): Promise<ExportRow[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "export", "--config", configPath, "--format", "jsonl"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Ten raw pressure samples in the 1 s window starting at `start`, and their mean. */
function samples(start: number, base: number) {
  const raw = Array.from({ length: 10 }, (_, i) => ({
    device: "pump-1",
    metric: "pressure",
    value: base + (i * 37 % 10) / 10,
    unit: "bar",
    ts: start + i * 90,
  }));
  return { raw, mean: raw.reduce((a, r) => a + r.value, 0) / raw.length };
}

Deno.test("raw: local keeps raw samples for export across a restart; only window results reach the broker", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-edge-local-" });
  const broker = await startMosquitto({ persistent: true });
  const sub = await subscribe(broker.url);
  const ingest = freePort();
  const yaml = config(dir, broker.url, ingest);
  let gw = await startGateway(dir, yaml);
  const status = async () => await gw.status() as unknown as Status;
  const got = (metric: string, ts?: number) =>
    [...sub.unique().values()].filter((r) =>
      r.device === "pump-1" && r.metric === metric && (ts === undefined || r.ts === ts)
    );
  // Windows that closed seconds ago by the clock: the edge closes them on its next tick.
  const w1 = Math.floor((Date.now() - 20_000) / 1000) * 1000;
  const w2 = w1 + 5000;
  try {
    const first = samples(w1, 5);
    await post(ingest, [
      ...first.raw,
      ...[1, 2, 3].map((i) => ({ device: "pump-1", metric: "temperature", value: 40 + i })),
    ]);
    await waitFor(
      "window results and temperatures upstream, nothing pending",
      async () =>
        got("pressure.mean", w1).length === 1 && got("pressure.count", w1).length === 1 &&
        got("temperature").length === 3 && (await status()).buffer.pending === 0,
      15_000,
    );
    assert.ok(Math.abs((got("pressure.mean", w1)[0].value as number) - first.mean) < 1e-9);
    assert.equal(got("pressure.count", w1)[0].value, 10);
    assert.equal(got("pressure").length, 0, "no raw sample upstream");
    assert.equal((await status()).buffer.localOnly, 10);

    let rows = await exportRows(gw.configPath);
    let raw = rows.filter((r) => r.metric === "pressure");
    assert.deepEqual(
      raw.map((r) => [r.ts, r.value, r.unit, r.forwarded, r.local]),
      first.raw.map((r) => [r.ts, r.value, "bar", false, true]),
    );
    assert.equal(rows.filter((r) => r.metric === "pressure.mean").length, 1);

    // Uplink down: more raw samples, their window closes into the buffer, then a crash.
    await broker.stop();
    await waitFor(
      "the uplink to be down",
      async () => (await status()).uplink?.connected === false,
    );
    const second = samples(w2, 7);
    await post(ingest, [
      ...second.raw,
      ...[4, 5].map((i) => ({ device: "pump-1", metric: "temperature", value: 40 + i })),
    ]);
    await waitFor("the second window closed into the buffer", async () => {
      const s = await status();
      return s.edge.aggregate.windows === 2 && s.buffer.pending === 4;
    });
    await gw.kill();
    await broker.start();
    gw = await startGateway(dir, yaml);

    await waitFor(
      "the backlog upstream after the restart",
      async () =>
        got("pressure.mean", w2).length === 1 && got("temperature").length === 5 &&
        (await status()).buffer.pending === 0,
      15_000,
    );
    assert.ok(Math.abs((got("pressure.mean", w2)[0].value as number) - second.mean) < 1e-9);
    assert.equal(got("pressure").length, 0, "the restarted forwarder sends no raw sample either");
    assert.equal((await status()).buffer.localOnly, 20);

    rows = await exportRows(gw.configPath);
    raw = rows.filter((r) => r.metric === "pressure");
    assert.deepEqual(raw.map((r) => r.ts), [...first.raw, ...second.raw].map((r) => r.ts));
    assert.ok(raw.every((r) => r.local === true && r.forwarded === false));
  } finally {
    await gw.kill();
    await sub.close();
    await broker.stop();
  }
});
