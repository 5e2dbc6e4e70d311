/**
 * Self-update end to end: real bundled artifacts (`deno task bundle`), a real release channel
 * served over loopback HTTP, a real install root with A/B slots, real gateway processes.
 */
import assert from "node:assert/strict";
import { freePort, waitFor } from "./helpers/ports.ts";
import { Slots } from "../src/update/slots.ts";
import { artifacts, channelServer, keypair, publish, TARGET } from "./helpers/update.ts";

interface Device {
  root: string;
  slots: Slots;
  config: string;
  log: string;
  httpPort: number;
  start(): Promise<void>;
  status(): Promise<Record<string, unknown> & { version: string; update: UpdateStatusView }>;
  killAll(): void;
}

interface UpdateStatusView {
  committed: { slot: string; version: string };
  lastCheck?: { result: string; code?: string; reason?: string; version?: string };
  lastRollback?: { version: string; reason: string };
}

async function device(channelUrl: string, pubkeys: string[], extra = ""): Promise<Device> {
  const root = await Deno.makeTempDir({ prefix: "outpost-device-" });
  const a = await artifacts();
  const slots = new Slots(`${root}/opt`);
  await slots.init(a.base, "1.1.0");
  const httpPort = freePort();
  const config = `${root}/site.yaml`;
  await Deno.writeTextFile(
    config,
    `gateway: { id: upd-gw }
buffer: { path: ${root}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 100ms }
http: { listen: 127.0.0.1:${httpPort} }
update:
  channel: ${channelUrl}
  channelName: stable
  installRoot: ${root}/opt
  checkInterval: 1s
  healthDeadline: 6s
  allowInsecure: true
  trustedKeys: [${pubkeys.map((k) => JSON.stringify(k)).join(", ")}]
${extra}`,
  );
  const log = `${root}/gateway.log`;
  const base = `http://127.0.0.1:${httpPort}`;
  // The gateway creates its access token on first run, next to the buffer file.
  const auth = () => ({
    headers: { authorization: `Bearer ${Deno.readTextFileSync(`${root}/http-token`).trim()}` },
  });
  const pids = new Set<number>();
  const dev: Device = {
    root,
    slots,
    config,
    log,
    httpPort,
    async start() {
      const child = new Deno.Command("sh", {
        args: [
          "-c",
          `exec "$0" run --config "$1" >>"$2" 2>&1`,
          slots.binary(await slots.active()),
          config,
          log,
        ],
        stdin: "null",
        env: { NO_COLOR: "1" },
      }).spawn();
      pids.add(child.pid);
      child.status.then(() => {});
      await waitFor(
        "the gateway to serve /status",
        async () => {
          const r = await fetch(`${base}/status`, auth());
          const s = await r.json();
          pids.add(s.pid);
          return true;
        },
        30_000,
        100,
      );
    },
    async status() {
      const s = await (await fetch(`${base}/status`, auth())).json();
      pids.add(s.pid);
      return s;
    },
    killAll() {
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
    },
  };
  return dev;
}

async function waitOutcome(
  dev: Device,
  what: string,
  pred: (u: UpdateStatusView, version: string) => boolean,
  timeoutMs = 30_000,
) {
  return await waitFor(
    what,
    async () => {
      const s = await dev.status();
      return pred(s.update, s.version) ? s : undefined;
    },
    timeoutMs,
    200,
  ).catch(async (e) => {
    throw new Error(
      `${e.message}\n--- gateway log ---\n${await Deno.readTextFile(dev.log).catch(() => "")}`,
    );
  });
}

Deno.test({
  name:
    "refusals leave the device untouched; an overlap-signed release resumes a cut download and commits",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir();
  const channel = `${tmp}/channel/stable`;
  await Deno.mkdir(channel, { recursive: true });
  const trusted = await keypair(`${tmp}/keys`);
  const rogue = await keypair(`${tmp}/rogue`);
  const next = await keypair(`${tmp}/next`);
  const srv = channelServer(channel);
  const dev = await device(srv.url, [trusted.pub]);
  try {
    await dev.start();
    const refused = async (code: string) => {
      const s = await waitOutcome(dev, `refusal ${code}`, (u) => u.lastCheck?.code === code);
      assert.equal(s.version, "1.1.0");
      assert.equal(s.update.committed.version, "1.1.0");
      assert.equal(await dev.slots.active(), "a");
      await assert.rejects(Deno.stat(dev.slots.binary("b")));
      return s.update.lastCheck!.reason!;
    };
    // Unknown key.
    await publish(channel, a.good, "2.0.0", [rogue.key]);
    assert.match(await refused("unknown-key"), /unknown key/);
    // The publisher does not build on a manifest it cannot verify.
    await assert.rejects(
      publish(channel, a.good, "2.0.0", [trusted.key]),
      /existing ".*manifest\.json" does not verify, nothing taken from it: .*unknown key/,
    );
    await Deno.remove(`${channel}/manifest.json`);
    // Bad signature: the signed part altered after signing.
    await publish(channel, a.good, "2.0.0", [trusted.key]);
    const m = JSON.parse(await Deno.readTextFile(`${channel}/manifest.json`));
    m.signed.version = "2.0.1";
    await Deno.writeTextFile(`${channel}/manifest.json`, JSON.stringify(m));
    assert.match(await refused("bad-signature"), /does not verify/);
    // Not the signed original back: the device would install it before the next step.
    await Deno.remove(`${channel}/manifest.json`);
    // Older version.
    await publish(channel, a.old, "1.0.0", [trusted.key]);
    assert.match(await refused("older-version"), /1\.0\.0 is older than the committed 1\.1\.0/);
    // Expired.
    await publish(channel, a.good, "2.0.0", [trusted.key], "--expires", "1ms");
    assert.match(await refused("expired"), /expired at/);
    // Counter replayed.
    await publish(channel, a.good, "2.0.0", [trusted.key], "--counter", "0");
    assert.match(await refused("counter-replayed"), /counter 0 is lower than the last seen 1/);
    // Hash mismatch: same length, different bytes.
    await publish(channel, a.good, "2.0.0", [trusted.key], "--counter", "10");
    const art = `${channel}/artifacts/2.0.0/${TARGET}/outpost`;
    const bytes = await Deno.readFile(art);
    bytes[bytes.length - 2] ^= 0xff;
    await Deno.writeFile(art, bytes);
    assert.match(await refused("hash-mismatch"), /sha256 [0-9a-f]{64}, manifest says/);
    await assert.rejects(Deno.stat(dev.slots.staging("b")), "a bad download is not kept");
    bytes[bytes.length - 2] ^= 0xff;
    await Deno.writeFile(art, bytes);
    // Key rotation: old (trusted) + new (not yet trusted) key; the download is cut once, resumed.
    srv.cutNextArtifact = true;
    await publish(channel, a.good, "2.0.0", [trusted.key, next.key]);
    const s = await waitOutcome(
      dev,
      "2.0.0 committed",
      (u, v) => v === "2.0.0" && u.committed.version === "2.0.0",
      60_000,
    );
    assert.equal(s.update.committed.slot, "b");
    const st = await dev.slots.readState();
    assert.equal(st.phase, "committed");
    assert.equal(st.history.find((h) => h.result === "installed")?.version, "2.0.0");
    assert.equal(await dev.slots.active(), "b");
    assert.ok(srv.requests.some((r) => /artifacts.* bytes=\d+-/.test(r)), "download resumed");
    const log = await Deno.readTextFile(dev.log);
    assert.match(log, /download of .* broke off after \d+ of \d+ bytes/);
    assert.match(log, /resuming download/);
  } finally {
    dev.killAll();
    await srv.close();
  }
});

Deno.test({
  name: "crash at start, never healthy and hang each roll back; the old version keeps serving",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir();
  const channel = `${tmp}/channel/stable`;
  await Deno.mkdir(channel, { recursive: true });
  const trusted = await keypair(`${tmp}/keys`);
  const srv = channelServer(channel);
  const dev = await device(srv.url, [trusted.pub]);
  try {
    await dev.start();
    const rowsBefore =
      ((await dev.status()) as unknown as { buffer: { rows: number } }).buffer.rows;
    for (
      const [name, version, reason] of [
        ["exit", "1.2.0", /exited with status 70/],
        ["unhealthy", "1.3.0", /not healthy within 6000ms: test: TEST-ONLY build: never healthy/],
        ["hang", "1.4.0", /no answer from \/healthz within 6000ms/],
      ] as const
    ) {
      await publish(channel, a[name], version, [trusted.key]);
      const s = await waitOutcome(
        dev,
        `${version} rolled back`,
        (u, v) => v === "1.1.0" && u.lastRollback?.version === version,
        60_000,
      );
      assert.match(s.update.lastRollback!.reason, reason);
      assert.equal(s.update.lastCheck?.result, "rolled-back");
      assert.equal(s.update.committed.version, "1.1.0");
      assert.equal(await dev.slots.active(), "a");
      const st = await dev.slots.readState();
      assert.equal(st.phase, "committed");
    }
    const after = (await dev.status()) as unknown as { buffer: { rows: number } };
    assert.ok(after.buffer.rows > rowsBefore, "the shared buffer kept its rows and grows again");
  } finally {
    dev.killAll();
    await srv.close();
  }
});
