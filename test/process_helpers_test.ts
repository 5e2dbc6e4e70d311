/**
 * The test helpers that start gateways and brokers: a free port can be taken by another process
 * before the gateway or Mosquitto binds it, and then that process answers on it. The helpers must
 * not hand out a process that is not there (a suite run failed that way: 60 s of 401 from a
 * stranger on the gateway's port).
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";

Deno.test("startGateway() starts again on another port when its port was taken, and returns its own process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-helper-" });
  // A stranger on the port: healthy, but with its own token.
  const stranger = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/healthz"
        ? Response.json({ ok: true })
        : Response.json({ error: "access token required" }, { status: 401 }),
  );
  const taken = stranger.addr.port;
  const gw = await startGateway(
    dir,
    `gateway: { id: helper-gw }\nbuffer: { path: ${dir}/buffer.db }\n`,
    { firstPort: taken },
  );
  try {
    assert.notEqual(gw.httpPort, taken);
    assert.equal((await gw.status() as unknown as { pid: number }).pid, gw.pid);
  } finally {
    await gw.kill();
    await stranger.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startMosquitto() starts again on other ports when its port was taken, and its broker is the one on the port", async () => {
  const stranger = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = (stranger.addr as Deno.NetAddr).port;
  const broker = await startMosquitto({ firstPort: taken });
  try {
    assert.notEqual(broker.port, taken);
    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    await client.endAsync();
  } finally {
    await broker.stop();
    stranger.close();
  }
});

Deno.test("startMosquitto() that times out waiting for 'running' leaves no Mosquitto behind", async () => {
  // Only Mosquittos whose config holds this marker are this test's (other tests run in parallel).
  const marker = `# helper-timeout-${crypto.randomUUID()}`;
  const ours = () => {
    const pids: number[] = [];
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
        const conf = argv[argv.indexOf("-c") + 1];
        if (/mosquitto$/.test(argv[0]) && conf && Deno.readTextFileSync(conf).includes(marker)) {
          pids.push(Number(e.name));
        }
      } catch { /* gone, or not readable */ }
    }
    return pids;
  };
  // Its own log settings silence the "running" line the helper waits for.
  await assert.rejects(startMosquitto({ extra: ["log_dest none", marker] }), /to run/);
  const left = ours();
  for (const p of left) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* gone */ }
  }
  assert.deepEqual(left, [], "a Mosquitto the helper started is still running");
});
