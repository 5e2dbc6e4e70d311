// The fleet console against stand-in gateways (test/helpers/fake_gateway.ts) on a real Mosquitto:
// what it shows, how it waits, times out, follows restarts and checks exports. The end-to-end
// tests with real gateway processes are in fleet_test.ts.
import assert from "node:assert/strict";
import { CSV_HEADER, csvLine } from "../src/buffer/export.ts";
import { expectsRestart, Fleet } from "../src/fleet/mod.ts";
import { type QueryRow, queryRowReading } from "../src/protocol/mod.ts";
import { generateKey } from "../src/update/keys.ts";
import { type FakeGateway, type Quirk, startFakeGateway } from "./helpers/fake_gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { runOutpost as outpost } from "./helpers/cli.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function fleetOf(url: string): Promise<Fleet> {
  const fleet = await Fleet.connect({ connection: { url } });
  await fleet.sync();
  return fleet;
}

function series(n: number, t0: number): QueryRow[] {
  // Two devices interleaved, as a buffer holds them; values of every kind.
  return Array.from({ length: n }, (_, i) => [
    i + 1,
    t0 + i * 60_000,
    i % 2 ? "pump-2" : "pump-1",
    i % 4 < 2 ? "pressure" : "running",
    i % 4 < 2 ? Math.round(i * 1.7 * 100) / 100 : i % 3 === 0,
    i % 4 < 2 ? "bar" : null,
    i < n / 2,
  ]);
}

Deno.test("fleet list: every gateway from its retained status; a dropped one turns offline by its last will", async () => {
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  let fleet: Fleet | undefined;
  try {
    for (let i = 1; i <= 5; i++) {
      fakes.push(
        await startFakeGateway({
          url: broker.url,
          id: `gw-${i}`,
          version: `1.${i}.0`,
          backlog: i === 3 ? 250 : 0,
        }),
      );
    }
    const listed = await outpost(["fleet", "list", "--json", "--broker", broker.url]);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as {
      id: string;
      state: string;
      version: string;
      backlog: number;
    }[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.state, r.version, r.backlog]),
      [1, 2, 3, 4, 5].map((i) => [`gw-${i}`, "online", `1.${i}.0`, i === 3 ? 250 : 0]),
    );

    fleet = await fleetOf(broker.url);
    fakes[1].crash();
    await waitFor("gw-2 offline in the console", () => fleet!.gateway("gw-2")?.state === "offline");
    assert.equal(fleet.gateway("gw-2")?.reason, "connection lost (last will)");

    const table = await outpost(["fleet", "--broker", broker.url]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split("\n");
    assert.match(
      lines[0],
      /^GATEWAY\s+STATE\s+VERSION\s+BACKLOG\s+OLDEST PENDING\s+LAST SEEN\s+HOST CHECKS\s+DEVICE UPDATES\s+NOTE$/,
    );
    assert.match(
      lines[2],
      /^gw-2\s+offline\s+1\.2\.0\s+-\s+-\s+\d+s ago\s+\?\s+-\s+connection lost \(last will\)$/,
    );
    assert.match(lines[3], /^gw-3\s+online\s+1\.3\.0\s+250\s+\d+s\s+\d+s ago\s+\?\s+-$/);
    assert.equal(lines.at(-1), "5 gateway(s): 4 online, 1 offline");
  } finally {
    await fleet?.close();
    for (const f of fakes) await f.close();
    await broker.stop();
  }
});

Deno.test("fleet send: waits for every target; a silent one times out, an error reply fails, exit 1", async () => {
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  try {
    const quirks: Record<string, Quirk[]> = { "gw-mute": ["mute"], "gw-no": ["refuse"] };
    for (const id of ["gw-a", "gw-b", "gw-mute", "gw-no"]) {
      fakes.push(await startFakeGateway({ url: broker.url, id, quirks: quirks[id] }));
    }
    const good = await outpost([
      "fleet",
      "send",
      "ping",
      "--gateway",
      "gw-a,gw-b",
      "--broker",
      broker.url,
      "--json",
    ]);
    assert.equal(good.code, 0, good.stderr);
    const g = JSON.parse(good.stdout);
    assert.deepEqual([g.total, g.ok, g.replied], [2, 2, 2]);
    assert.deepEqual(g.results.map((r: { result: unknown }) => r.result), [
      { pong: true, version: "1.0.0" },
      { pong: true, version: "1.0.0" },
    ]);
    assert.match(good.stderr, /ping sent to gw-a, gw-b; waiting up to 30s/);
    assert.match(good.stderr, /ping: 2 of 2 replied, 2 ok — gw-\w done/);

    const t0 = Date.now();
    const all = await outpost([
      "fleet",
      "send",
      "ping",
      "--all",
      "--timeout",
      "2s",
      "--broker",
      broker.url,
    ]);
    assert.equal(all.code, 1, all.stdout + all.stderr);
    assert.ok(Date.now() - t0 < 15_000);
    assert.match(all.stdout, /^gw-a\s+done\s/m);
    assert.match(all.stdout, /^gw-b\s+done\s/m);
    assert.match(all.stdout, /^gw-mute\s+timeout\s+2\.\ds\s+no reply within 2s$/m);
    assert.match(all.stdout, /^gw-no\s+error\s+\S+\s+failed: refused by a test quirk$/m);
    assert.match(all.stdout, /ping: 2 of 4 ok, 1 failed, 1 timed out/);
    // One request on the fleet-wide topic reached each of them.
    for (const f of fakes) {
      assert.equal(f.requests.filter((r) => r.target === "fleet").length, 1, f.id);
    }

    const unknown = await outpost([
      "fleet",
      "send",
      "frobnicate",
      "--gateway",
      "gw-a",
      "--broker",
      broker.url,
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stdout, /gw-a\s+error\s+\S+\s+unknown-command: no command "frobnicate"/);
  } finally {
    for (const f of fakes) await f.close();
    await broker.stop();
  }
});

Deno.test("fleet restart: each gateway is followed until its status shows the new process", async () => {
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  let fleet: Fleet | undefined;
  try {
    for (const id of ["r1", "r2", "r3"]) {
      fakes.push(
        await startFakeGateway({
          url: broker.url,
          id,
          quirks: id === "r2" ? ["slow-restart"] : [],
        }),
      );
    }
    const before = fakes.map((f) => f.startedAt);
    fleet = await fleetOf(broker.url);
    const run = fleet.send("restart", {
      targets: "all",
      timeoutMs: 20_000,
      followRestart: expectsRestart("restart"),
    });
    const s = await run.done;
    assert.deepEqual([s.total, s.ok], [3, 3]);
    for (const [i, t] of run.results().entries()) {
      assert.equal(t.state, "restarted", t.gatewayId);
      assert.equal(t.before.startedAt, before[i]);
      assert.equal(t.after?.startedAt, fakes[i].startedAt);
      assert.notEqual(fakes[i].startedAt, before[i]);
    }
    // The slow one was still on its way back when the others were done.
    const r2 = run.results()[1];
    assert.ok(r2.finishedAt! - r2.sentAt >= 1500, `${r2.finishedAt! - r2.sentAt}ms`);

    const cli = await outpost(["fleet", "restart", "--gateway", "r1", "--broker", broker.url]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^r1\s+restarted\s+\S+\s+back after \d+\.\ds, version 1\.0\.0$/m);
    assert.match(cli.stderr, /restart: 1 of 1 replied, 0 ok — r1 accepted/);
  } finally {
    await fleet?.close();
    for (const f of fakes) await f.close();
    await broker.stop();
  }
});

Deno.test("fleet export: every page once, in order, as the CSV of outpost export, whatever the delivery", async () => {
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  const dir = await Deno.makeTempDir();
  try {
    const t0 = Date.UTC(2026, 0, 1);
    const rows = series(1000, t0);
    const cases: [string, Quirk[]][] = [
      ["plain", []],
      ["dup", ["duplicate-pages"]],
      ["rev", ["reverse-pages"]],
      ["resume", ["stop-at-50"]],
    ];
    for (const [id, quirks] of cases) {
      fakes.push(await startFakeGateway({ url: broker.url, id, quirks, rows }));
    }
    const from = t0 + 100 * 60_000;
    const to = t0 + 900 * 60_000;
    const want = [
      CSV_HEADER,
      ...rows.filter((r) => r[2] === "pump-1" && r[3] === "pressure" && r[1] >= from && r[1] < to)
        .map((r) => csvLine(queryRowReading(r))),
    ].join("\n") + "\n";
    assert.ok(want.split("\n").length > 150);
    for (const [id] of cases) {
      const out = `${dir}/${id}.csv`;
      const r = await outpost([
        "fleet",
        "export",
        "--broker",
        broker.url,
        "--gateway",
        id,
        "--device",
        "pump-1",
        "--metric",
        "pressure",
        "--from",
        new Date(from).toISOString(),
        "--to",
        String(to),
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, `${id}: ${r.stderr}`);
      assert.equal(await Deno.readTextFile(out), want, id);
      assert.match(
        r.stdout,
        new RegExp(`exported ${want.split("\n").length - 2} readings of pump-1 from ${id}`),
      );
      assert.match(r.stderr, /export \w+\/pump-1: \d+ page\(s\), \d+ rows/);
      const queries = fakes.find((f) => f.id === id)!.requests.filter((q) => q.cmd === "query");
      assert.equal(queries.length, id === "resume" ? 4 : 1, id);
    }
  } finally {
    for (const f of fakes) await f.close();
    await broker.stop();
  }
});

Deno.test("fleet export: a missing page or a silent gateway fails, and no CSV file is left", async () => {
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  const dir = await Deno.makeTempDir();
  try {
    const rows = series(500, Date.UTC(2026, 0, 1));
    fakes.push(
      await startFakeGateway({ url: broker.url, id: "gap", quirks: ["drop-page-1"], rows }),
    );
    fakes.push(await startFakeGateway({ url: broker.url, id: "mute", quirks: ["mute"], rows }));
    const args = (id: string) => [
      "fleet",
      "export",
      "--broker",
      broker.url,
      "--gateway",
      id,
      "--device",
      "pump-2",
      "--from",
      "2026-01-01",
      "--out",
      `${dir}/${id}.csv`,
      "--timeout",
      "2s",
    ];
    const gap = await outpost(args("gap"));
    assert.equal(gap.code, 1);
    assert.match(
      gap.stderr,
      /outpost fleet export: incomplete: the gateway sent 3 page\(s\), 1 arrived in order; missing page\(s\) 1/,
    );
    const mute = await outpost(args("mute"));
    assert.equal(mute.code, 1);
    assert.match(mute.stderr, /no reply from mute for 2s after 0 page\(s\), 0 rows/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
  } finally {
    for (const f of fakes) await f.close();
    await broker.stop();
  }
});

Deno.test("fleet send --key signs requests: a gateway that requires signatures accepts them, refuses unsigned ones", async () => {
  const broker = await startMosquitto();
  const dir = await Deno.makeTempDir();
  let fake: FakeGateway | undefined;
  try {
    const key = await generateKey();
    await Deno.writeTextFile(`${dir}/op.key`, JSON.stringify(key));
    const other = await generateKey();
    await Deno.writeTextFile(`${dir}/other.key`, JSON.stringify(other));
    fake = await startFakeGateway({ url: broker.url, id: "sig", operatorKeys: [key.public] });
    const signed = await outpost([
      "fleet",
      "send",
      "ping",
      "--gateway",
      "sig",
      "--key",
      `${dir}/op.key`,
      "--broker",
      broker.url,
    ]);
    assert.equal(signed.code, 0, signed.stdout + signed.stderr);
    assert.equal(fake.requests[0].req.keyid, key.keyid);
    // The reply says what the gateway grants this key.
    assert.match(
      signed.stdout,
      new RegExp(
        `sig\\s+done\\s+\\S+\\s+pong, version 1\\.0\\.0, key ${key.keyid}: read, operate, admin`,
      ),
    );
    // Fleet-wide requests are signed for the fleet target.
    const all = await outpost([
      "fleet",
      "send",
      "ping",
      "--all",
      "--key",
      `${dir}/op.key`,
      "--broker",
      broker.url,
    ]);
    assert.equal(all.code, 0, all.stdout + all.stderr);
    const unsigned = await outpost([
      "fleet",
      "send",
      "ping",
      "--gateway",
      "sig",
      "--broker",
      broker.url,
    ]);
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.stdout, /sig\s+error\s+\S+\s+unsigned: /);
    const wrong = await outpost([
      "fleet",
      "send",
      "ping",
      "--gateway",
      "sig",
      "--key",
      `${dir}/other.key`,
      "--broker",
      broker.url,
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /sig\s+error\s+\S+\s+unknown-key: unknown operator key/);
  } finally {
    await fake?.close();
    await broker.stop();
  }
});

Deno.test("fleet: an unreachable broker or bad usage gives a clear message and exit 1 or 2", async () => {
  const port = freePort();
  const down = await outpost(["fleet", "list", "--broker", `mqtt://127.0.0.1:${port}`]);
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    new RegExp(`Cannot connect to broker "mqtt://127.0.0.1:${port}": connection refused`),
  );
  const usage = await outpost(["fleet", "restart"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /say which gateways: --gateway ID\[,ID\.\.\.\] or --all/);
  const noBroker = await outpost(["fleet", "list"], { OUTPOST_BROKER: "" });
  assert.equal(noBroker.code, 2);
  assert.match(noBroker.stderr, /no broker: give --broker/);
  const open = await outpost([
    "fleet",
    "serve",
    "--listen",
    "0.0.0.0:8790",
    "--broker",
    "mqtt://127.0.0.1:1",
  ]);
  assert.equal(open.code, 2);
  assert.match(
    open.stderr,
    /"0\.0\.0\.0:8790" accepts connections from other machines.*--allow-insecure-http/,
  );
  const help = await outpost(["fleet", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: outpost fleet/);
});

Deno.test("fleet list --watch prints again on a change; a custom prefix reaches its gateways", async () => {
  const broker = await startMosquitto();
  const fakes: FakeGateway[] = [];
  try {
    fakes.push(await startFakeGateway({ url: broker.url, id: "w1", prefix: "plant/north" }));
    fakes.push(await startFakeGateway({ url: broker.url, id: "w2", prefix: "plant/north" }));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "fleet",
        "list",
        "--watch",
        "--json",
        "--interval",
        "200ms",
        "--prefix",
        "plant/north",
        "--broker",
        broker.url,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const frames: { gateways: { id: string; state: string }[] }[] = [];
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    const next = async () => {
      for (;;) {
        const nl = buf.indexOf("\n");
        if (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          frames.push(JSON.parse(line));
          return frames.at(-1)!;
        }
        const { value, done } = await lines.read();
        if (done) throw new Error("watch ended");
        buf += value;
      }
    };
    const first = await next();
    assert.deepEqual(first.gateways.map((g) => [g.id, g.state]), [["w1", "online"], [
      "w2",
      "online",
    ]]);
    fakes[0].crash();
    let frame = first;
    while (frame.gateways[0].state !== "offline") frame = await next();
    assert.deepEqual(frame.gateways.map((g) => g.state), ["offline", "online"]);
    child.kill("SIGTERM");
    const [status] = await Promise.all([child.status, lines.cancel(), child.stderr.cancel()]);
    assert.equal(status.code, 0);

    const sent = await outpost([
      "fleet",
      "send",
      "ping",
      "--all",
      "--prefix",
      "plant/north",
      "--broker",
      broker.url,
    ]);
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    assert.match(sent.stdout, /ping: 1 of 1 ok/);
    assert.equal(fakes[1].requests[0].target, "fleet");
  } finally {
    for (const f of fakes) await f.close();
    await broker.stop();
  }
});

Deno.test("fleet over mutual TLS: with the client certificate it lists the gateways; without it, the broker's reason", async () => {
  const broker = await startMosquitto({ tls: true });
  const certs = broker.certs!;
  let fake: FakeGateway | undefined;
  try {
    fake = await startFakeGateway({ url: broker.url, id: "tls-gw" });
    const ok = await outpost([
      "fleet",
      "--json",
      "--broker",
      broker.tlsUrl,
      "--ca",
      certs.ca,
      "--cert",
      certs.clientCert,
      "--cert-key",
      certs.clientKey,
      "--servername",
      "localhost",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).map((g: { id: string }) => g.id), ["tls-gw"]);
    const noCert = await outpost([
      "fleet",
      "--broker",
      broker.tlsUrl,
      "--ca",
      certs.ca,
      "--servername",
      "localhost",
    ]);
    assert.equal(noCert.code, 1);
    assert.match(
      noCert.stderr,
      new RegExp(`Cannot connect to broker "${broker.tlsUrl}": .*certificate`),
    );
  } finally {
    await fake?.close();
    await broker.stop();
  }
});
