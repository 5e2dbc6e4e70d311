/**
 * A week offline, in compressed time (docs/reliability.md, "Week-long offline soak").
 *
 * 200 devices × 3 metrics, one sample every 10 minutes of source time over 7 days (604,800
 * readings), posted to the `http` adapter of a real gateway process (production heap flags) in ~60
 * s while its Mosquitto uplink is unreachable. An alarm rule on one device raises and clears every
 * 6 hours of source time and calls a local webhook. Then the uplink comes back with backfill
 * pacing while live readings keep coming, and an independent subscriber checks what arrived.
 */
import assert from "node:assert/strict";
import { decodeBatch } from "../src/uplink/encode.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { fileSize, rssBytes } from "./helpers/proc.ts";
import { subscribe } from "./helpers/subscriber.ts";
import { openTcpLink } from "./helpers/tcp_link.ts";

const DEVICES = 200;
const METRICS = [["temperature", "C"], ["humidity", "%"], ["pressure", "bar"]] as const;
const PER_STEP = DEVICES * METRICS.length;
const STEP_MS = 10 * 60_000;
const STEPS = 7 * 24 * 6;
const WEEK_READINGS = STEPS * PER_STEP;
/** One request carries 10 steps (6,000 readings); one goes every 600 ms: the week in ~60 s. */
const STEPS_PER_POST = 10;
const POST_EVERY_MS = 600;
/** dev-001's pressure goes above 8 bar for 3 hours in every 6 (36 steps): 28 raises, 28 clears. */
const CYCLE = 36;
const CYCLES = STEPS / CYCLE;
/** Live rounds (every device and metric once) go every second after the uplink is back. */
const LIVE_EVERY_MS = 1000;
const BACKFILL_MSGS = 20;
const BACKFILL_BYTES = 512 * 1024;
const MAX_BYTES = 32 * 1024 * 1024;
const RSS_GROWTH_LIMIT = 25 * 1024 * 1024;
const TOKEN = "soak-test-ingest-token-0123456789";
const RULE = "dev-001-pressure-high";

const device = (d: number) => `dev-${String(d).padStart(3, "0")}`;

/** The value of device `d` (1-based), metric `m`, at week step `step`: known to the checker. */
function weekValue(d: number, m: number, step: number): number {
  if (m === 0) return Math.round((20 + 5 * Math.sin(step * 2 * Math.PI / 144 + d)) * 100) / 100;
  if (m === 1) return 40 + (d * 7 + step) % 20;
  if (d !== 1) return 6 + (d + step) % 10 / 10;
  const k = Math.floor(step / CYCLE);
  const p = step % CYCLE;
  if (p === 0) return 9 + k / 100; // the raise: a value of its own per cycle
  if (p < CYCLE / 2) return 8.6;
  if (p === CYCLE / 2) return 7 + k / 100; // the clear
  return 6.5;
}

/** Live values: distinct per round, and dev-001's pressure stays in its normal band. */
const liveValue = (d: number, m: number, round: number) =>
  m === 2 ? 6 + (d + round) % 10 / 10 : 1000 * round + 10 * d + m;

interface Sent {
  at: number;
  bytes: number;
  first: number;
  last: number;
  count: number;
}

interface Sample {
  at: number;
  rss: number;
  db: number;
  wal: number;
}

Deno.test("week-long offline soak: a week of readings buffered with the uplink down, the rule acting locally, then every reading upstream exactly once, paced, in order per lane, in flat memory and under the disk cap", async () => {
  const started = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "outpost-soak-" });
  const dbPath = `${dir}/buffer.db`;
  const broker = await startMosquitto();
  const uplinkPort = freePort();
  const ingestPort = freePort();

  // The cloud: an independent subscriber on the broker, connected before the gateway starts.
  let backlogEnd = Infinity; // last seq of the backlog lane, known before the uplink returns
  const backlog: Sent[] = [];
  const live: Sent[] = [];
  const liveArrival = new Map<number, { count: number; last: number }>();
  const alarms: { at: number; event: Record<string, unknown> }[] = [];
  const mixed: string[] = [];
  const sub = await subscribe(broker.url, "gateways/#", {
    onMessage: (topic, payload, at) => {
      const text = new TextDecoder().decode(payload);
      if (topic.endsWith("/alarms")) {
        alarms.push({ at, event: JSON.parse(text) });
        return;
      }
      if (!topic.endsWith("/telemetry")) return;
      const { readings } = decodeBatch(text);
      const first = readings[0].seq;
      const last = readings[readings.length - 1].seq;
      const sent = { at, bytes: payload.length, first, last, count: readings.length };
      if (last > backlogEnd && first <= backlogEnd) mixed.push(`${first}..${last}`);
      (last <= backlogEnd ? backlog : live).push(sent);
      if (first > backlogEnd) {
        for (const r of readings) {
          const a = liveArrival.get(r.ts) ?? { count: 0, last: 0 };
          a.count++;
          a.last = at;
          liveArrival.set(r.ts, a);
        }
      }
    },
  });

  // The local rule's webhook target.
  const hooks: { at: number; event: Record<string, unknown> }[] = [];
  const hookPort = freePort();
  const hookServer = Deno.serve({ hostname: "127.0.0.1", port: hookPort, onListen() {} }, async (
    req,
  ) => {
    hooks.push({ at: Date.now(), event: await req.json() });
    return new Response("ok");
  });

  const gw = await startGateway(
    dir,
    `
gateway: { id: soak-gw }
buffer:
  path: ${dbPath}
  maxBytes: ${MAX_BYTES / 1024 / 1024}MB
uplink:
  type: mqtt
  url: mqtt://127.0.0.1:${uplinkPort}
  reconnect: { min: 500ms, max: 2s }
  statusInterval: 2s
  backfill: { messagesPerSecond: ${BACKFILL_MSGS}, bytesPerSecond: ${BACKFILL_BYTES / 1024}KB }
adapters:
  - type: http
    name: ingest
    listen: 127.0.0.1:${ingestPort}
    tokens: [{ token: ${TOKEN} }]
    rate: { perSecond: 1000, burst: 5000 } # time is compressed: 50 readings/s per device
rules:
  - name: ${RULE}
    severity: critical
    message: "dev-001 pressure {value} bar"
    when: { device: dev-001, metric: pressure, above: 8, clearBelow: 7.5 }
    actions:
      - { on: both, webhook: { url: "http://127.0.0.1:${hookPort}/alarm" } }
`,
  );
  // RSS and file sizes every second, from outside the process.
  const samples: Sample[] = [];
  let samplerError: unknown;
  const sample = () => {
    try {
      samples.push({
        at: Date.now(),
        rss: rssBytes(gw.pid),
        db: fileSize(dbPath),
        wal: fileSize(`${dbPath}-wal`),
      });
    } catch (e) {
      samplerError ??= e;
    }
  };
  sample();
  const sampler = setInterval(sample, 1000);
  let link: ReturnType<typeof openTcpLink> | undefined;

  const post = async (readings: unknown[]): Promise<void> => {
    const r = await fetch(`http://127.0.0.1:${ingestPort}/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ readings }),
    });
    const body = await r.text();
    assert.equal(r.status, 200, `POST /ingest: ${r.status} ${body}`);
    assert.deepEqual(JSON.parse(body), { accepted: readings.length, rejected: 0 });
  };
  const status = () =>
    gw.status() as unknown as Promise<{
      buffer: {
        pending: number;
        rows: number;
        bytes: number;
        nextSeq: number;
        droppedUnforwarded: number;
        atCap: string | null;
      };
      uplink: { connected: boolean; since: number; forSeconds: number; lastError: string | null };
      forwarder: { backlogLane: { from: number; to: number } | null };
      edge: {
        activeAlarms: Record<string, number>;
        alarmsQueued: number;
        actions: { run: number; failed: number; pending: number };
      };
    }>;

  try {
    // ---- The week, with the uplink down all along. ----
    const weekStart = Math.floor((Date.now() - 7 * 86_400_000) / STEP_MS) * STEP_MS;
    const outageFrom = Date.now();
    const offline: { since: number; forSeconds: number; lastError: string | null }[] = [];
    const dashboards: { connected: boolean; drain: string }[] = [];
    for (let i = 0; i * STEPS_PER_POST < STEPS; i++) {
      const wait = outageFrom + i * POST_EVERY_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // the load's schedule
      const readings = [];
      for (
        let step = i * STEPS_PER_POST;
        step < Math.min(STEPS, (i + 1) * STEPS_PER_POST);
        step++
      ) {
        for (let d = 1; d <= DEVICES; d++) {
          for (let m = 0; m < METRICS.length; m++) {
            readings.push({
              device: device(d),
              metric: METRICS[m][0],
              unit: METRICS[m][1],
              value: weekValue(d, m, step),
              ts: weekStart + step * STEP_MS,
            });
          }
        }
      }
      await post(readings);
      if (i % 10 === 0) {
        const s = await status();
        assert.equal(s.uplink.connected, false, "the uplink stays down");
        offline.push(s.uplink);
        const r = await gw.get("/api/dashboard?logs=0");
        const d = await r.json();
        dashboards.push({ connected: d.status.uplink.connected, drain: d.drain.state });
      }
    }
    const outageSeconds = (Date.now() - outageFrom) / 1000;

    // The rule acted locally, offline: 28 raises and 28 clears reached the webhook.
    await waitFor(
      "every alarm transition at the webhook",
      () => hooks.length >= 2 * CYCLES,
      15_000,
    );
    assert.equal(hooks.length, 2 * CYCLES);
    // Each call is its own request: ordered by when the transition happened, not by arrival.
    hooks.sort((a, b) => (a.event.ts as number) - (b.event.ts as number));
    hooks.forEach(({ event }, i) => {
      const k = Math.floor(i / 2);
      assert.equal(event.rule, RULE);
      assert.equal(event.state, i % 2 === 0 ? "raised" : "cleared", `webhook call ${i}`);
      assert.equal(event.value, i % 2 === 0 ? 9 + k / 100 : 7 + k / 100, `webhook call ${i}`);
    });
    const weekDone = await status();
    assert.equal(weekDone.uplink.connected, false);
    assert.deepEqual(weekDone.edge.activeAlarms, {}, "the last alarm of the week cleared");
    assert.equal(weekDone.edge.alarmsQueued, 2 * CYCLES, "alarm events wait for the uplink");
    assert.equal(weekDone.edge.actions.failed, 0);
    assert.equal(weekDone.buffer.pending, WEEK_READINGS);
    assert.equal(weekDone.buffer.droppedUnforwarded, 0);

    // "Offline since …": the same moment, from the gateway's start, all through the outage.
    assert.ok(offline.length >= 10, `${offline.length} status samples`);
    for (const u of offline) assert.equal(u.since, offline[0].since, "offline since one moment");
    assert.ok(offline[0].since <= outageFrom, "offline since before the first reading");
    assert.ok(
      weekDone.uplink.forSeconds >= Math.floor(outageSeconds) - 1,
      `offline for ${weekDone.uplink.forSeconds} s after a ${outageSeconds} s outage`,
    );
    assert.match(weekDone.uplink.lastError ?? "", /ECONNREFUSED|refused/i);
    for (const d of dashboards) assert.deepEqual(d, { connected: false, drain: "offline" });

    // ---- The uplink returns; live readings keep coming while the backlog is paced out. ----
    backlogEnd = weekDone.buffer.nextSeq - 1;
    assert.equal(backlogEnd, WEEK_READINGS, "one seq per accepted reading, from 1");
    const linkAt = Date.now();
    link = openTcpLink(uplinkPort, broker.port);
    const online = await waitFor("the uplink to reconnect", async () => {
      const s = await status();
      return s.uplink.connected ? s : undefined;
    }, 20_000);
    assert.deepEqual(online.forwarder.backlogLane?.to, backlogEnd, "the week is the backlog lane");

    const rounds: { ts: number; acceptedAt: number; backlogDone: boolean }[] = [];
    const backlogReceived = () => backlog.reduce((n, m) => n + m.count, 0);
    let backlogDoneAt = 0;
    const liveUntil = Date.now() + 180_000;
    for (let round = 0;; round++) {
      const wait = linkAt + round * LIVE_EVERY_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // the load's schedule
      const ts = Date.now();
      const readings = [];
      for (let d = 1; d <= DEVICES; d++) {
        for (let m = 0; m < METRICS.length; m++) {
          readings.push({
            device: device(d),
            metric: METRICS[m][0],
            unit: METRICS[m][1],
            value: liveValue(d, m, round),
            ts,
          });
        }
      }
      await post(readings);
      rounds.push({ ts, acceptedAt: Date.now(), backlogDone: backlogDoneAt > 0 });
      if (!backlogDoneAt && backlogReceived() >= WEEK_READINGS) backlogDoneAt = Date.now();
      // Three more rounds once the backlog is through: live keeps flowing after it too.
      if (backlogDoneAt && rounds.filter((r) => r.backlogDone).length >= 3) break;
      assert.ok(Date.now() < liveUntil, `backlog not through after 180 s: ${backlogReceived()}`);
    }
    await waitFor(
      "every live round at the subscriber",
      () => rounds.every((r) => (liveArrival.get(r.ts)?.count ?? 0) >= PER_STEP),
      30_000,
    );
    await waitFor("every alarm event upstream", () => alarms.length >= 2 * CYCLES, 10_000);
    const end = await status();
    clearInterval(sampler); // before the stop: an exiting process has no RSS to read
    assert.equal(await gw.stop(), 0, "graceful stop");

    // ---- Every accepted reading exactly once, with its content. ----
    const liveReadings = rounds.length * PER_STEP;
    const unique = sub.unique();
    assert.equal(sub.epochs.size, 1);
    assert.equal(unique.size, WEEK_READINGS + liveReadings, "every accepted reading arrived");
    assert.equal(sub.all.length, unique.size, "and none twice");
    assert.equal(end.buffer.nextSeq - 1, unique.size, "as many as the gateway numbered");
    for (let seq = 1; seq <= unique.size; seq++) assert.ok(unique.has(seq), `seq ${seq} missing`);
    const seen = new Uint8Array(WEEK_READINGS);
    const roundOf = new Map(rounds.map((r, i) => [r.ts, i]));
    for (const r of unique.values()) {
      const d = Number(r.device.slice(4));
      const m = METRICS.findIndex(([name]) => name === r.metric);
      assert.ok(d >= 1 && d <= DEVICES && m >= 0, `unknown series ${r.device}/${r.metric}`);
      assert.equal(r.unit, METRICS[m][1]);
      if (r.seq <= backlogEnd) {
        const step = (r.ts - weekStart) / STEP_MS;
        assert.ok(Number.isInteger(step) && step >= 0 && step < STEPS, `seq ${r.seq} ts ${r.ts}`);
        assert.equal(r.value, weekValue(d, m, step), `seq ${r.seq} ${r.device}/${r.metric}`);
        const idx = step * PER_STEP + (d - 1) * METRICS.length + m;
        assert.equal(seen[idx], 0, `${r.device}/${r.metric} step ${step} twice`);
        seen[idx] = 1;
      } else {
        const round = roundOf.get(r.ts);
        assert.ok(round !== undefined, `live seq ${r.seq} with a ts no round had: ${r.ts}`);
        assert.equal(r.value, liveValue(d, m, round), `live seq ${r.seq}`);
      }
    }
    assert.equal(seen.indexOf(0), -1, "every week reading once");

    // ---- In order per lane, per device. ----
    assert.deepEqual(mixed, [], `messages holding both lanes (backlog ends at ${backlogEnd})`);
    for (const [dev, list] of sub.byDevice()) {
      const last = { backlog: 0, live: 0, backlogTs: 0 };
      for (const r of list) {
        const lane = r.seq <= backlogEnd ? "backlog" : "live";
        assert.ok(r.seq > last[lane], `${dev} ${lane}: seq ${r.seq} after ${last[lane]}`);
        last[lane] = r.seq;
        if (lane === "backlog") {
          assert.ok(r.ts >= last.backlogTs, `${dev}: backlog time order at seq ${r.seq}`);
          last.backlogTs = r.ts;
        }
      }
    }

    // ---- Backfill within its caps, over sliding 10 s windows at the subscriber. ----
    // The bucket starts full (one second's worth) and lets one message through on credit; arrival
    // times at the subscriber carry some jitter from this busy test process (JITTER).
    const W = 10_000;
    const JITTER = 500;
    const maxMsg = Math.max(...backlog.map((m) => m.bytes));
    let worstBytes = 0;
    let worstMsgs = 0;
    for (let i = 0, j = 0, bytes = 0; i < backlog.length; i++) {
      while (j < backlog.length && backlog[j].at < backlog[i].at + W) bytes += backlog[j++].bytes;
      worstBytes = Math.max(worstBytes, bytes);
      worstMsgs = Math.max(worstMsgs, j - i);
      bytes -= backlog[i].bytes;
    }
    const allowed = (cap: number) => cap * (W + 1000 + JITTER) / 1000;
    assert.ok(
      worstBytes <= allowed(BACKFILL_BYTES) + maxMsg,
      `backlog bytes in a 10 s window: ${worstBytes} > ${allowed(BACKFILL_BYTES) + maxMsg}`,
    );
    assert.ok(
      worstMsgs <= allowed(BACKFILL_MSGS) + 1,
      `backlog messages in a 10 s window: ${worstMsgs} > ${allowed(BACKFILL_MSGS) + 1}`,
    );
    // Past the first second (the full bucket), the average is the cap, within 2 %.
    const t0 = backlog[0].at;
    const tEnd = backlog.at(-1)!.at;
    const steady = backlog.filter((m) => m.at >= t0 + 1000);
    const steadySeconds = (tEnd - t0 - 1000) / 1000;
    const steadyBytes = steady.reduce((n, m) => n + m.bytes, 0) / steadySeconds;
    const steadyMsgs = steady.length / steadySeconds;
    assert.ok(steadyBytes <= BACKFILL_BYTES * 1.02, `backfill at ${steadyBytes} B/s`);
    assert.ok(steadyMsgs <= BACKFILL_MSGS * 1.02, `backfill at ${steadyMsgs} msg/s`);
    // Pacing, not a slow gateway, set the pace: at least half of a cap was used.
    assert.ok(
      steadyBytes >= BACKFILL_BYTES / 2 || steadyMsgs >= BACKFILL_MSGS / 2,
      `backfill at ${steadyBytes} B/s and ${steadyMsgs} msg/s: far below both caps`,
    );
    const backfillSeconds = (tEnd - t0) / 1000;
    const backlogBytes = backlog.reduce((n, m) => n + m.bytes, 0);

    // ---- Live data kept flowing meanwhile: interleaved, and each round quickly upstream. ----
    assert.ok(live.length > 0 && live[0].at < backlog.at(-1)!.at, "live data during the backfill");
    const during = rounds.filter((r) => !r.backlogDone);
    assert.ok(during.length >= 10, `${during.length} live rounds during the backfill`);
    const latencies = rounds.map((r) => liveArrival.get(r.ts)!.last - r.acceptedAt);
    const maxLatency = Math.max(...latencies);
    assert.ok(maxLatency <= 5000, `a live round took ${maxLatency} ms to arrive`);

    // ---- Alarm events raised offline went upstream, each once, in order, ahead of the backlog's end.
    assert.equal(alarms.length, 2 * CYCLES);
    assert.equal(new Set(alarms.map((a) => a.event.id)).size, 2 * CYCLES, "distinct event ids");
    alarms.forEach(({ event }, i) =>
      assert.equal(event.state, i % 2 === 0 ? "raised" : "cleared", `alarm ${i}`)
    );
    assert.ok(alarms.at(-1)!.at < backlog.at(-1)!.at, "alarms before the backlog's end");
    assert.equal(end.edge.alarmsQueued, 0);

    // ---- Memory flat, disk under its cap. ----
    if (samplerError) throw new Error("sampling the gateway failed", { cause: samplerError });
    const third = Math.floor(samples.length / 3);
    const maxRss = (s: Sample[]) => Math.max(...s.map((x) => x.rss));
    const firstRss = maxRss(samples.slice(0, third));
    const lastRss = maxRss(samples.slice(-third));
    assert.ok(
      lastRss <= firstRss + RSS_GROWTH_LIMIT,
      `RSS grew: first third max ${firstRss}, last third max ${lastRss}`,
    );
    const maxDb = Math.max(...samples.map((s) => s.db));
    const maxDisk = Math.max(...samples.map((s) => s.db + s.wal));
    assert.ok(maxDisk <= MAX_BYTES, `buffer file and WAL ${maxDisk} B over the ${MAX_BYTES} B cap`);
    assert.ok(weekDone.buffer.bytes <= MAX_BYTES);
    assert.equal(end.buffer.droppedUnforwarded, 0);
    assert.equal(end.buffer.atCap, null);

    const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
    const kb = (n: number) => (n / 1024).toFixed(1);
    const rss = samples.map((s) => s.rss);
    console.log([
      `soak: ${WEEK_READINGS} week readings + ${liveReadings} live; ${samples.length} samples`,
      `  outage ${outageSeconds.toFixed(1)} s; backfill ${backfillSeconds.toFixed(1)} s: ` +
      `${backlog.length} messages, ${mb(backlogBytes)} MB`,
      `  backfill past the first second ${kb(steadyBytes)} KB/s, ${steadyMsgs.toFixed(1)} msg/s; ` +
      `worst 10 s window ${kb(worstBytes)} KB, ${worstMsgs} messages`,
      `  live rounds ${rounds.length} (${during.length} during the backfill), ` +
      `slowest ${maxLatency} ms from 200 OK to the subscriber`,
      `  RSS max first third ${mb(firstRss)} MB, last third ${mb(lastRss)} MB, ` +
      `range ${mb(Math.min(...rss))}–${mb(Math.max(...rss))} MB`,
      `  buffer file max ${mb(maxDb)} MB, with WAL ${mb(maxDisk)} MB, ` +
      `pages in use after the week ${mb(weekDone.buffer.bytes)} MB (cap ${mb(MAX_BYTES)} MB)`,
      `  run time ${((performance.now() - started) / 1000).toFixed(1)} s`,
    ].join("\n"));
  } catch (e) {
    console.error(gw.output().slice(-5000));
    throw e;
  } finally {
    clearInterval(sampler);
    await gw.kill();
    link?.close();
    await sub.close();
    await broker.stop();
    await hookServer.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
