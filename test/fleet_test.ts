// Twenty real gateway processes against one Mosquitto, driven by the fleet console: the list, a
// last will, "update all", "restart all" and a 30-day export of one device.
import assert from "node:assert/strict";
import { Buffer } from "../src/buffer/buffer.ts";
import { CSV_HEADER, csvLine, exportReadings } from "../src/buffer/export.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import { Fleet } from "../src/fleet/mod.ts";
import { generateKey, publish, Slots } from "../src/update/mod.ts";
import { importSigningKey } from "../src/update/keys.ts";
import { VERSION } from "../src/version.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import { runOutpost } from "./helpers/cli.ts";

const COUNT = 20;
const DAY = 86_400_000;

/** The operator key file every `outpost fleet` call here signs with (all scopes on every gateway). */
let operatorKeyFile = "";

const outpost = (args: string[]) =>
  runOutpost([...args, ...(operatorKeyFile ? ["--key", operatorKeyFile] : [])]);

/**
 * 30 days of one device (one reading a minute, two metrics) with explicit timestamps, plus
 * readings the query must leave out: another device, and the same device before the window.
 */
async function seedBuffer(path: string, windowStart: number, windowEnd: number) {
  const config = bufferSchema.check({ path, retention: "60d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  const wanted: {
    seq: number;
    ts: number;
    metric: string;
    value: number | boolean;
    unit?: string;
  }[] = [];
  let batch: {
    device: string;
    metric: string;
    value: number | boolean;
    unit?: string;
    ts: number;
  }[] = [];
  const flush = async () => {
    const { seqs } = await buf.append(batch);
    batch.forEach((r, i) => {
      if (r.device === "meter-1" && r.ts >= windowStart && r.ts < windowEnd) {
        wanted.push({ seq: seqs[i], ts: r.ts, metric: r.metric, value: r.value, unit: r.unit });
      }
    });
    batch = [];
  };
  let i = 0;
  for (let ts = windowStart - 2 * DAY; ts < windowEnd; ts += 60_000, i++) {
    batch.push({ device: "meter-1", metric: "energy", value: i / 4, unit: "kWh", ts });
    if (i % 15 === 0) {
      batch.push({ device: "meter-1", metric: "door_open", value: i % 2 === 0, ts });
    }
    if (i % 10 === 0) {
      batch.push({ device: "meter-2", metric: "energy", value: i, unit: "kWh", ts });
    }
    if (batch.length >= 5000) await flush();
  }
  if (batch.length) await flush();
  const last = buf.lastSeq;
  buf.close();
  return { wanted, last };
}

async function stopAll(gws: GatewayProcess[]): Promise<void> {
  await Promise.all(gws.map(async (g) => {
    try {
      Deno.kill(g.pid, "SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        Deno.kill(g.pid, "SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await g.exited;
    clearTimeout(timer);
  }));
}

interface ListRow {
  id: string;
  state: string;
  version: string;
  backlog: number | null;
  reason: string | null;
  startedAt: string | null;
}

Deno.test({
  name:
    "twenty gateways: the console lists all, shows a SIGKILLed one offline, updates-checks and restarts every one, exports 30 days of a device exactly",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const t0 = Date.now();
  const root = await Deno.makeTempDir({ prefix: "outpost-fleet-" });
  const broker = await startMosquitto();
  const gws: GatewayProcess[] = [];
  let channel: Deno.HttpServer<Deno.NetAddr> | undefined;
  let fleet: Fleet | undefined;
  try {
    // A signed release channel offering the running version: every gateway checks it (and would
    // install anything newer on its own at start, which this test does not want).
    const key = await generateKey();
    await Deno.writeTextFile(`${root}/release.key`, JSON.stringify(key));
    const operator = await generateKey();
    operatorKeyFile = `${root}/operator.key`;
    await Deno.writeTextFile(operatorKeyFile, JSON.stringify(operator));
    await Deno.writeTextFile(`${root}/artifact`, "#!/bin/sh\necho not a real release\n");
    await publish({
      channel: `${root}/channel`,
      artifact: `${root}/artifact`,
      version: VERSION,
      target: Deno.build.target,
      keys: [`${root}/release.key`],
    });
    channel = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      const path = new URL(req.url).pathname.replace(/\.\./g, "");
      try {
        return new Response(await Deno.readFile(`${root}/channel${path}`));
      } catch {
        return new Response("not found", { status: 404 });
      }
    });
    const channelUrl = `http://127.0.0.1:${channel.addr.port}/`;

    const ids = Array.from({ length: COUNT }, (_, i) => `gw-${String(i + 1).padStart(2, "0")}`);
    const windowEnd = Date.now() - 60_000;
    const windowStart = windowEnd - 30 * DAY;
    for (const id of ids) {
      await Deno.mkdir(`${root}/${id}`);
      await new Slots(`${root}/${id}/root`).init(`${root}/artifact`, VERSION);
    }
    const seeded = await seedBuffer(`${root}/gw-01/buffer.db`, windowStart, windowEnd);
    assert.ok(seeded.wanted.length > 30 * 24 * 60, `${seeded.wanted.length} rows in the window`);

    const yaml = (id: string) =>
      `gateway: { id: ${id} }
buffer: { path: ${root}/${id}/buffer.db, retention: 60d }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 200ms, max: 1s }
commands:
  operatorKeys: [{ key: "${operator.public}", scopes: [read, operate] }]
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 1s }
update:
  channel: ${channelUrl}
  channelName: channel
  allowInsecure: true
  trustedKeys: ["${key.public}"]
  installRoot: ${root}/${id}/root
  checkInterval: 24h
`;
    const started = await Promise.allSettled(
      ids.map((id) => startGateway(`${root}/${id}`, yaml(id))),
    );
    for (const s of started) if (s.status === "fulfilled") gws.push(s.value);
    const failed = started.find((s) => s.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw failed.reason;
    const startedAt = new Map<string, number>();
    await Promise.all(
      gws.map((g, i) =>
        waitFor(
          `${ids[i]} subscribed to its request topics`,
          async () => {
            const s = await g.status() as unknown as {
              startedAt: number;
              commands?: { subscribed: boolean };
            };
            startedAt.set(ids[i], s.startedAt);
            return s.commands?.subscribed === true;
          },
          60_000,
          200,
        )
      ),
    );
    const upAt = Date.now();

    // The console process lists all twenty online.
    fleet = await Fleet.connect({
      connection: { url: broker.url },
      key: await importSigningKey(operator),
    });
    await fleet.sync();
    await waitFor(
      "20 online in the console",
      () => fleet!.gateways().filter((g) => g.state === "online").length === COUNT,
    );
    const list = await outpost(["fleet", "list", "--json", "--broker", broker.url]);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as ListRow[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.state, r.version]),
      ids.map((id) => [id, "online", VERSION]),
    );
    for (const r of rows) {
      assert.equal(Date.parse(r.startedAt!), startedAt.get(r.id), r.id);
    }

    // SIGKILL one: its last will marks it offline.
    const victim = gws[COUNT - 1];
    await victim.kill();
    await waitFor(
      "gw-20 offline by its last will",
      () => fleet!.gateway("gw-20")?.state === "offline",
    );
    const after = await outpost(["fleet", "list", "--broker", broker.url]);
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /^gw-20\s+offline\s+\S+\s+.*connection lost \(last will\)$/m);
    assert.match(after.stdout, /^20 gateway\(s\): 19 online, 1 offline$/m);
    const alive = gws.slice(0, COUNT - 1);
    const aliveIds = ids.slice(0, COUNT - 1);

    // "Update all": one fleet-wide update-check, then update-apply; a reply from every gateway
    // online, each having fetched and verified the signed manifest.
    for (const check of [true, false]) {
      const upd = await outpost([
        "fleet",
        "update",
        "--all",
        ...(check ? ["--check"] : []),
        "--json",
        "--broker",
        broker.url,
      ]);
      assert.equal(upd.code, 0, upd.stdout + upd.stderr);
      const u = JSON.parse(upd.stdout) as {
        cmd: string;
        total: number;
        ok: number;
        results: { gatewayId: string; state: string; result: Record<string, unknown> }[];
      };
      assert.equal(u.cmd, check ? "update-check" : "update-apply");
      assert.deepEqual([u.total, u.ok], [COUNT - 1, COUNT - 1]);
      assert.deepEqual(u.results.map((r) => r.gatewayId).sort(), aliveIds);
      for (const r of u.results) {
        assert.equal(r.state, "done", r.gatewayId);
        assert.deepEqual(
          [r.result[check ? "available" : "applied"], r.result.result, r.result.running],
          [false, "current", VERSION],
          r.gatewayId,
        );
      }
      assert.match(upd.stderr, /note: 1 offline gateway\(s\) will not get it: gw-20/);
    }

    // "Restart all": every gateway comes back as a new process.
    const rst = await outpost(["fleet", "restart", "--all", "--json", "--broker", broker.url]);
    assert.equal(rst.code, 0, rst.stdout + rst.stderr);
    const r = JSON.parse(rst.stdout) as {
      total: number;
      ok: number;
      results: {
        gatewayId: string;
        state: string;
        before: { startedAt: number };
        after: { startedAt: number; version: string };
      }[];
    };
    assert.deepEqual([r.total, r.ok], [COUNT - 1, COUNT - 1]);
    for (const t of r.results) {
      assert.equal(t.state, "restarted", t.gatewayId);
      assert.equal(t.before.startedAt, startedAt.get(t.gatewayId), t.gatewayId);
      assert.ok(t.after.startedAt > t.before.startedAt, t.gatewayId);
    }
    await Promise.all(alive.map(async (g, i) => {
      const s = await g.status() as unknown as { startedAt: number; pid: number };
      const seen = r.results.find((t) => t.gatewayId === aliveIds[i])!;
      assert.equal(s.startedAt, seen.after.startedAt, aliveIds[i]);
      assert.equal(s.pid, g.pid, "restarted in the same process");
    }));

    // A 30-day export of one device: exactly the buffered rows, row by row.
    const gw1 = gws[0];
    await waitFor(
      "the seeded readings forwarded",
      async () =>
        (await gw1.status() as unknown as { buffer: { ackFloor: number } }).buffer.ackFloor >=
          seeded.last,
      30_000,
      200,
    );
    const out = `${root}/meter-1.csv`;
    const exp = await outpost([
      "fleet",
      "export",
      "--broker",
      broker.url,
      "--gateway",
      "gw-01",
      "--device",
      "meter-1",
      "--from",
      new Date(windowStart).toISOString(),
      "--to",
      new Date(windowEnd).toISOString(),
      "--out",
      out,
    ]);
    assert.equal(exp.code, 0, exp.stderr);
    const got = (await Deno.readTextFile(out)).trimEnd().split("\n");
    const want = [
      CSV_HEADER,
      ...seeded.wanted.map((w) =>
        csvLine({
          seq: w.seq,
          ts: w.ts,
          device: "meter-1",
          metric: w.metric,
          value: w.value,
          unit: w.unit,
          forwarded: true,
        })
      ),
    ];
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) assert.equal(got[i], want[i], `line ${i + 1}`);
    // And the same as `outpost export` reading the gateway's buffer file directly.
    const local = [
      CSV_HEADER,
      ...[
        ...exportReadings(`${root}/gw-01/buffer.db`, {
          device: "meter-1",
          from: windowStart,
          to: windowEnd,
        }),
      ]
        .map(csvLine),
    ];
    assert.deepEqual(got, local);
    assert.match(
      exp.stdout,
      new RegExp(`exported ${seeded.wanted.length} readings of meter-1 from gw-01`),
    );
    console.log(
      `fleet of ${COUNT}: up and subscribed in ${((upAt - t0) / 1000).toFixed(1)}s, ` +
        `${seeded.wanted.length} rows exported, whole test ${
          ((Date.now() - t0) / 1000).toFixed(1)
        }s`,
    );
  } finally {
    await fleet?.close();
    await stopAll(gws);
    await channel?.shutdown();
    await broker.stop();
  }
});
