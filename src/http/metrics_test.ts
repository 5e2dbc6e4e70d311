import assert from "node:assert/strict";
import { adapters } from "../../adapters/mod.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { parseConfig } from "../config/load.ts";
import { Gateway, type GatewayStatus } from "../gateway.ts";
import { createLogger } from "../log.ts";
import { freePort, waitFor } from "../../test/helpers/ports.ts";
import { parsePrometheus, PromParseError, sampleValue } from "../../test/helpers/prometheus.ts";
import { escapeLabelValue, METRICS_CONTENT_TYPE, processStats, renderMetrics } from "./metrics.ts";
import { startHttpServer } from "./server.ts";
import { readTokenFile, TokenStore } from "./token.ts";

/** An HTTP ingest endpoint that accepts every batch; `up` false makes it answer 503. */
function ingest(port: number) {
  const state = { up: true, posts: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    await req.arrayBuffer();
    if (!state.up) return new Response("down", { status: 503 });
    state.posts++;
    return new Response("ok");
  });
  return { state, close: () => server.shutdown() };
}

async function withGateway(
  fn: (gw: Gateway, ingestState: { up: boolean; posts: number }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const server = ingest(port);
  const config = parseConfig(
    `
gateway: { id: metrics-gw, site: "Plant \\"North\\"" }
buffer: { path: ${dir}/buffer.db, maxSeries: 100 }
uplink:
  type: https
  url: http://127.0.0.1:${port}/ingest
  allowInsecure: true
  retry: { min: 20ms, max: 100ms }
adapters:
  - { type: simulated, name: sim, devices: 3, interval: 20ms, prefix: pump }
`,
    gatewaySchema(adapters),
  );
  const gw = Gateway.start({
    config,
    adapters,
    log: createLogger({ sink: () => {} }),
    version: "1.2.3-test",
  });
  try {
    await fn(gw, server.state);
  } finally {
    await gw.stop();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function scrape(gw: Gateway) {
  return parsePrometheus(renderMetrics(gw.status(), { process: processStats() }));
}

Deno.test("the strict parser refuses malformed exposition text", () => {
  const head = "# HELP a_total A.\n# TYPE a_total counter\n";
  const bad = [
    "a_total 1\n", // no TYPE/HELP
    `${head}a_total 1`, // no final line feed
    `${head}a_total{x="1} 1\n`, // unterminated label value
    `${head}a_total{x="\\t"} 1\n`, // bad escape
    `${head}a_total{x="1",x="2"} 1\n`, // duplicate label
    `${head}a_total{1x="1"} 1\n`, // bad label name
    `${head}a_total one\n`, // bad value
    `${head}a_total 1\na_total 2\n`, // duplicate series
    `${head}a_total -1\n`, // negative counter
    `${head}\na_total 1\n`, // blank line
    "# HELP a A.\n# TYPE a counter\na 1\n", // counter without _total
    `${head}a_total{x="1"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\na_total{x="2"} 1\n`, // split
    `# TYPE a_total counter\n# TYPE a_total counter\n`, // second TYPE
    `# HELP a_total A.\n# TYPE a_total widget\na_total 1\n`, // unknown type
  ];
  for (const text of bad) {
    assert.throws(() => parsePrometheus(text), PromParseError, JSON.stringify(text));
  }
  const ok = parsePrometheus(
    `${head}a_total{x="q\\"\\\\\\n"} 1.5e3\n# HELP g G.\n# TYPE g gauge\ng +Inf\n`,
  );
  assert.equal(sampleValue(ok, "a_total", { x: 'q"\\\n' }), 1500);
  assert.equal(sampleValue(ok, "g"), Infinity);
});

Deno.test("escapeLabelValue() escapes backslash, double quote and line feed only", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd\te'), 'a\\\\b\\"c\\nd\te');
});

Deno.test("renderMetrics() gives every family HELP and TYPE and escapes hostile label values", async () => {
  await withGateway(async (gw) => {
    await waitFor(
      "an adapter running with devices",
      () => gw.status().adapters[0]?.state === "running",
    );
    const st: GatewayStatus = structuredClone(gw.status());
    const nasty = 'pump "7"\\east\nline2';
    st.adapters[0].name = nasty;
    st.adapters[0].devices = {
      [nasty]: { state: "offline", since: 0, lastSeen: null, offlineAfterMs: 1000 },
    };
    st.adapters[0].counters = { requests: 5, readings: 9 };
    const text = renderMetrics(st, {
      process: { residentBytes: 1000, cpuSeconds: 0.5, startTimeSeconds: 1_700_000_000 },
      now: Date.now(),
    });
    const m = parsePrometheus(text);
    for (const [name, f] of m) {
      assert.ok(f.help.length > 0, `${name} has HELP`);
      assert.ok(f.samples.length > 0, `${name} has samples`);
      if (f.type === "counter") assert.match(name, /_total$/);
    }
    assert.equal(sampleValue(m, "outpost_device_up", { adapter: nasty, device: nasty }), 0);
    assert.equal(
      sampleValue(m, "outpost_adapter_events_total", { adapter: nasty, event: "requests" }),
      5,
    );
    assert.equal(
      sampleValue(m, "outpost_build_info", {
        version: "1.2.3-test",
        gateway: st.gatewayId,
        site: st.site ?? "",
      }),
      1,
    );
    assert.equal(sampleValue(m, "outpost_gateway_start_time_seconds"), st.startedAt / 1000);
    // Readings of an adapter are counted once, as outpost_adapter_readings_received_total.
    assert.ok(
      !m.get("outpost_adapter_events_total")!.samples.some((x) => x.labels.event === "readings"),
    );
    // Kept or to be resent is not lost: neither is among the drops.
    const dropReasons = m.get("outpost_readings_dropped_total")!.samples.map((x) =>
      x.labels.reason
    );
    for (const r of ["set_aside", "disk_full", "write_failed"]) {
      assert.ok(!dropReasons.includes(r), r);
    }
    assert.equal(sampleValue(m, "outpost_readings_refused_total", { reason: "disk_full" }), 0);
    assert.equal(sampleValue(m, "outpost_update_state", { state: "disabled" }), 1);
    assert.equal(sampleValue(m, "outpost_update_state", { state: "idle" }), 0);
    assert.equal(sampleValue(m, "process_resident_memory_bytes"), 1000);
    assert.equal(sampleValue(m, "process_cpu_seconds_total"), 0.5);
    assert.equal(sampleValue(m, "process_start_time_seconds"), 1_700_000_000);
    assert.equal(m.get("process_cpu_seconds_total")?.type, "counter");
    assert.equal(m.get("outpost_buffer_pending_readings")?.type, "gauge");
    // Raw text: no sample line may carry an unescaped line break or quote.
    assert.ok(text.includes('adapter="pump \\"7\\"\\\\east\\nline2"'));
  });
});

Deno.test("counters move as readings flow through a gateway; drops are counted by reason", async () => {
  await withGateway(async (gw, ingestState) => {
    await waitFor("readings forwarded", () => {
      const m = scrape(gw);
      return sampleValue(m, "outpost_readings_forwarded_total") >= 30 &&
        sampleValue(m, "outpost_uplink_connected") === 1;
    });
    const first = scrape(gw);
    assert.ok(sampleValue(first, "outpost_readings_received_total") >= 30);
    assert.ok(sampleValue(first, "outpost_readings_accepted_total") >= 30);
    assert.ok(sampleValue(first, "outpost_uplink_messages_total") >= 1);
    assert.ok(sampleValue(first, "outpost_uplink_bytes_total") > 100);
    assert.equal(
      sampleValue(first, "outpost_adapter_up", { adapter: "sim", type: "simulated" }),
      1,
    );
    assert.equal(sampleValue(first, "outpost_adapter_errors_total", { adapter: "sim" }), 0);
    assert.equal(sampleValue(first, "outpost_adapter_restarts_total", { adapter: "sim" }), 0);
    assert.equal(sampleValue(first, "outpost_uplink_info", { type: "https" }), 1);
    assert.ok(sampleValue(first, "outpost_buffer_rows") >= 30);
    assert.ok(sampleValue(first, "outpost_buffer_size_bytes") > 0);
    assert.ok(sampleValue(first, "process_resident_memory_bytes") > 1e6);
    assert.ok(sampleValue(first, "process_cpu_seconds_total") > 0);
    const start = sampleValue(first, "process_start_time_seconds");
    assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 3600);
    for (const d of ["pump-1", "pump-2", "pump-3"]) {
      // The simulated adapter only reports devices that changed state; absent means never down.
      const f = first.get("outpost_device_up");
      const s = f?.samples.find((x) => x.labels.device === d);
      if (s) assert.equal(s.value, 1);
    }

    const now = Date.now();
    await gw.pipeline.emit("sim", [
      { device: "pump-1", metric: "t", value: NaN, ts: now },
      { device: "pump-1", metric: "t", value: 1, ts: 1 },
      { device: "pump-1", metric: "t", value: 2, ts: now + 3 * 86_400_000 },
    ]);
    const afterDrops = scrape(gw);
    const dropped = (reason: string, after = afterDrops) =>
      sampleValue(after, "outpost_readings_dropped_total", { reason }) -
      sampleValue(first, "outpost_readings_dropped_total", { reason });
    assert.equal(dropped("invalid_value"), 1);
    assert.equal(dropped("invalid_timestamp"), 2);
    assert.equal(dropped("invalid_device"), 0);
    assert.equal(dropped("buffer_full_dropped"), 0);
    assert.equal(dropped("buffer_full_rejected"), 0);
    assert.equal(sampleValue(afterDrops, "outpost_readings_set_aside_total"), 0);
    assert.equal(dropped("series_limit"), 0);
    // 100 new devices where maxSeries (100) has room for 100 minus the pumps' series.
    const known = gw.buffer.seriesCount;
    await gw.pipeline.emit(
      "sim",
      Array.from(
        { length: 100 },
        (_, i) => ({ device: `new-${i}`, metric: "t", value: i, ts: now }),
      ),
    );
    assert.equal(dropped("series_limit", scrape(gw)), known);

    // Uplink trouble: the backlog and its age grow while forwarding stalls.
    ingestState.up = false;
    await waitFor("a pending backlog older than 200ms", () => {
      const m = scrape(gw);
      return sampleValue(m, "outpost_buffer_pending_readings") > 20 &&
        sampleValue(m, "outpost_buffer_oldest_pending_age_seconds") > 0.2;
    });
    assert.ok(sampleValue(scrape(gw), "outpost_uplink_failures_total") >= 1);
    ingestState.up = true;
    await waitFor("the backlog drained", () => {
      const m = scrape(gw);
      return sampleValue(m, "outpost_readings_forwarded_total") >
          sampleValue(afterDrops, "outpost_readings_forwarded_total") &&
        sampleValue(m, "outpost_buffer_pending_readings") < 20;
    });
    const last = scrape(gw);
    for (const name of ["outpost_readings_received_total", "outpost_uplink_messages_total"]) {
      assert.ok(sampleValue(last, name) > sampleValue(first, name), `${name} grew`);
    }
  });
});

Deno.test("GET /metrics needs the token and serves the exposition with the 0.0.4 content type", async () => {
  await withGateway(async (gw) => {
    const dir = await Deno.makeTempDir();
    const { store } = TokenStore.open(`${dir}/http-token`);
    const token = readTokenFile(`${dir}/http-token`);
    const http = await startHttpServer({
      listen: "127.0.0.1:0",
      gateway: gw,
      tokens: store,
      log: createLogger({ sink: () => {} }),
    });
    try {
      const anon = await fetch(`http://${http.address}/metrics`);
      assert.equal(anon.status, 401);
      await anon.body?.cancel();
      const res = await fetch(`http://${http.address}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), METRICS_CONTENT_TYPE);
      const m = parsePrometheus(await res.text());
      assert.equal(sampleValue(m, "outpost_build_info"), 1);
      assert.equal(sampleValue(m, "outpost_http_unauthorized_requests_total"), 1);
      const nf = await fetch(`http://${http.address}/nope`);
      assert.deepEqual((await nf.json()).paths, [
        "/",
        "/healthz",
        "/status",
        "/metrics",
        "/logs",
        "/audit",
        "/api/dashboard",
        "/api/history",
        "/api/history/series",
        "/api/history.csv",
        "/api/alarms",
        "/api/alarms/acknowledge",
        "/api/alarms/clear",
      ]);
    } finally {
      await http.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("outpost_update_state follows the self-updater: disabled, idle, staged, trial", async () => {
  await withGateway((gw) => {
    const base: GatewayStatus = structuredClone(gw.status());
    const proc = { residentBytes: 1, cpuSeconds: 1, startTimeSeconds: 1 };
    const stateOf = (update: unknown) => {
      const m = parsePrometheus(renderMetrics({ ...base, update }, { process: proc }));
      const on = m.get("outpost_update_state")!.samples.filter((x) => x.value === 1);
      assert.equal(on.length, 1, "exactly one state is 1");
      assert.equal(m.get("outpost_update_state")!.samples.length, 4);
      return { state: on[0].labels.state, m };
    };
    assert.equal(stateOf(undefined).state, "disabled");
    const committed = { phase: "committed", committed: { slot: "a", version: "1.2.0" } };
    const idle = stateOf({
      ...committed,
      lastCheck: { at: 1_700_000_000_000, result: "refused", reason: "bad signature" },
      lastRollback: { at: 1_690_000_000_000, version: "1.3.0", reason: "unhealthy" },
      metadataExpires: 1_700_086_400_000,
    });
    assert.equal(idle.state, "idle");
    assert.equal(
      sampleValue(idle.m, "outpost_update_metadata_expires_timestamp_seconds"),
      1_700_086_400,
    );
    assert.equal(
      sampleValue(idle.m, "outpost_update_committed_info", { slot: "a", version: "1.2.0" }),
      1,
    );
    assert.equal(sampleValue(idle.m, "outpost_update_last_check_timestamp_seconds"), 1_700_000_000);
    assert.equal(sampleValue(idle.m, "outpost_update_last_check_refused"), 1);
    assert.equal(
      sampleValue(idle.m, "outpost_update_last_rollback_timestamp_seconds"),
      1_690_000_000,
    );
    assert.equal(
      stateOf({ ...committed, staged: { slot: "b", version: "1.3.0" } }).state,
      "staged",
    );
    assert.equal(
      stateOf({ ...committed, phase: "trial", trial: { slot: "b", version: "1.3.0" } }).state,
      "trial",
    );
    return Promise.resolve();
  });
});
