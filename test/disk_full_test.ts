/**
 * A really full disk: the buffer on a small tmpfs that a filler file eats up. The gateway keeps
 * running, refuses new readings with 503 (counted as disk_full in status and metrics), keeps
 * forwarding its backlog, reports unhealthy, and recovers by itself once space returns; started
 * on a full disk it comes up and says so instead of exiting.
 */
import assert from "node:assert/strict";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { subscribe } from "./helpers/subscriber.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { canMount, fillTo, mountTmpfs, unmount } from "./helpers/tmpfs.ts";

const TOKEN = "disk-full-test-token-0123456789";

interface Health {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

async function healthz(gw: GatewayProcess): Promise<{ status: number; body: Health }> {
  const r = await fetch(`http://127.0.0.1:${gw.httpPort}/healthz`);
  return { status: r.status, body: await r.json() };
}

async function metric(gw: GatewayProcess, line: string): Promise<number> {
  const text = await (await gw.get("/metrics")).text();
  const hit = text.split("\n").find((l) => l.startsWith(line + " "));
  return hit ? Number(hit.slice(line.length + 1)) : NaN;
}

Deno.test({
  name:
    "disk full: readings refused with 503 and counted, backlog still forwarded, unhealthy, recovers when space returns; a start on a full disk comes up",
  ignore: !canMount,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "outpost-diskfull-" });
    const mnt = `${dir}/mnt`;
    await Deno.mkdir(mnt);
    await mountTmpfs(mnt, 16 * 1024 * 1024);
    const filler = `${mnt}/filler`;
    const broker = await startMosquitto({ persistent: true });
    const sub = await subscribe(broker.url);
    const ingestPort = freePort();
    const yaml = `
gateway: { id: full-gw }
buffer: { path: ${mnt}/buffer.db, minFreeDisk: 2MB, reserve: 1MB }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 100ms, max: 500ms }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingestPort}
    tokens: [{ token: ${TOKEN} }]
`;
    let seq = 0;
    /** POSTs a batch of 50 readings; returns the HTTP status. */
    const post = async () => {
      const body = Array.from({ length: 50 }, () => ({
        device: `dev-${seq % 7}`,
        metric: "n",
        value: seq++,
      }));
      const r = await fetch(`http://127.0.0.1:${ingestPort}/ingest`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      await r.body?.cancel();
      return r.status;
    };
    const accepted = new Set<number>();
    let refused = 0;
    const send = async () => {
      const first = seq;
      const status = await post();
      if (status === 200) { for (let v = first; v < seq; v++) accepted.add(v); }
      else if (status === 503) refused += seq - first;
      else throw new Error(`POST answered ${status}`);
      return status;
    };
    let gw = await startGateway(dir, yaml, { waitHealthy: true });
    try {
      for (let i = 0; i < 5; i++) assert.equal(await send(), 200);
      // A backlog while the uplink is away, then a disk that something else fills up.
      await broker.stop();
      for (let i = 0; i < 20; i++) assert.equal(await send(), 200);
      const backlog = (await gw.status()).buffer.pending;
      assert.ok(backlog >= 900, `backlog ${backlog}`);
      fillTo(filler, 0);
      await waitFor("a refusal", async () => (await send()) === 503, 10_000, 20);
      // The reserve went to the buffer; the filler takes that too.
      fillTo(filler, 0);
      for (let i = 0; i < 10; i++) await send();
      const full = await healthz(gw);
      assert.equal(full.status, 503);
      assert.equal(full.body.checks.disk.ok, false, JSON.stringify(full.body));
      assert.match(full.body.checks.disk.detail, /full since/);
      const s = await gw.status() as unknown as {
        drops: { diskFull: number; writeFailed: number };
        buffer: { diskFull: unknown; reserve: string };
      };
      assert.ok(s.buffer.diskFull, "status names the full disk");
      assert.equal(s.buffer.reserve, "released");
      assert.equal(s.drops.writeFailed, 0);
      assert.equal(s.drops.diskFull, refused, "every refused reading counted as disk_full");
      assert.equal(
        await metric(gw, 'outpost_readings_refused_total{reason="disk_full"}'),
        refused,
      );
      assert.equal(await metric(gw, "outpost_buffer_disk_full"), 1);
      assert.equal(await metric(gw, "outpost_up"), 0);
      // Forwarding goes on while the disk is full.
      await broker.start();
      await waitFor(
        "the backlog to go upstream while the disk is full",
        () => [...accepted].every((v) => sub.all.some((r) => r.value === v)),
        30_000,
      );
      assert.equal((await healthz(gw)).body.checks.disk.ok, false, "still full");
      // Space comes back: the gateway takes readings again by itself.
      Deno.removeSync(filler);
      await waitFor(
        "the disk check to pass",
        async () => (await healthz(gw)).status === 200,
        10_000,
      );
      assert.equal(
        (await gw.status() as unknown as { buffer: { reserve: string } }).buffer.reserve,
        "ready",
      );
      for (let i = 0; i < 5; i++) assert.equal(await send(), 200);
      // Below the minFreeDisk floor: unhealthy, and the buffer stops growing.
      fillTo(filler, 1024 * 1024);
      await waitFor("the floor to show", async () => {
        const h = await healthz(gw);
        return h.status === 503 && /below buffer.minFreeDisk/.test(h.body.checks.disk.detail);
      }, 10_000);
      Deno.removeSync(filler);
      assert.equal(await gw.stop(), 0);

      // A restart on a full disk comes up, says so, and recovers once space returns.
      fillTo(filler, 0);
      gw = await startGateway(dir, yaml);
      fillTo(filler, 0);
      const h = await waitFor("healthz to report the full disk", async () => {
        const h = await healthz(gw);
        return h.body.checks.disk && !h.body.checks.disk.ok ? h : undefined;
      }, 10_000);
      assert.equal(h.status, 503);
      assert.equal(await send(), 503);
      Deno.removeSync(filler);
      await waitFor(
        "recovery after the start on a full disk",
        async () => (await healthz(gw)).status === 200,
        15_000,
      );
      assert.equal(await send(), 200);
      await waitFor(
        "every accepted reading upstream under its own device",
        () =>
          [...accepted].every((v) =>
            sub.all.some((r) => r.value === v && r.device === `dev-${v % 7}`)
          ),
        30_000,
      );
      assert.equal(await gw.stop(), 0);
    } finally {
      await gw.kill();
      await sub.close();
      await broker.stop();
      await unmount(mnt);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
