import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { collectOutput } from "./helpers/proc.ts";
import { notifySocket } from "./helpers/notify_socket.ts";
import { parsePrometheus, sampleValue } from "./helpers/prometheus.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

const SIM = (dir: string, extra = "") => `
gateway: { id: ops-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 50ms }
${extra}`;

Deno.test("under systemd: READY=1 once serving, WATCHDOG=1 at half WATCHDOG_USEC, STATUS, STOPPING=1 on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const sock = notifySocket(`${dir}/notify`, {
    healthz: () => `http://127.0.0.1:${port}/healthz`,
  });
  const gw = await startGateway(dir, SIM(dir), {
    httpPort: port,
    env: { NOTIFY_SOCKET: `${dir}/notify`, WATCHDOG_USEC: "1000000" },
  });
  try {
    // `served` is set once the probe of /healthz made on arrival has settled.
    await waitFor("READY=1", () => sock.lines("READY")[0]?.served !== undefined);
    const ready = sock.lines("READY")[0];
    assert.equal(sock.lines("READY").length, 1);
    assert.equal(sock.got[0], ready, "READY=1 is the first notification");
    assert.equal(ready.served, true, "/healthz answered when READY=1 arrived");
    assert.match(ready.text, /^READY=1\nSTATUS=\d+ pending.*; no uplink; adapters 1\/1 running$/);

    await waitFor("six watchdog pings", () => sock.lines("WATCHDOG").length >= 6, 10_000);
    const pings = sock.lines("WATCHDOG").map((d) => d.at);
    const gaps = pings.slice(1).map((t, i) => t - pings[i]).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)];
    // WATCHDOG_USEC of 1 s: pings every 500 ms, leaving a loaded CI machine room for a stall.
    assert.ok(median > 350 && median < 700, `median ping gap ${median}ms, expected ~500ms`);
    assert.ok(gaps.at(-1)! < 1000, `no gap reaches WATCHDOG_USEC: ${gaps}`);
    for (const d of sock.lines("WATCHDOG")) {
      assert.match(d.text, /^WATCHDOG=1\nSTATUS=\d+ pending.*; no uplink; adapters 1\/1 running$/);
    }
    assert.match(gw.output(), /\[systemd\] notified systemd: ready watchdog=500ms/);

    const code = await gw.stop();
    assert.equal(code, 0);
    await waitFor("STOPPING=1", () => sock.lines("STOPPING").length === 1);
    assert.match(sock.lines("STOPPING")[0].text, /^STOPPING=1\nSTATUS=stopping \(SIGTERM\)$/);
    assert.ok(
      sock.got.indexOf(sock.lines("STOPPING")[0]) === sock.got.length - 1,
      "STOPPING=1 is the last notification",
    );
  } finally {
    await gw.kill();
    await sock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an @abstract NOTIFY_SOCKET works; SIGHUP sends RELOADING=1 then READY=1", async () => {
  const dir = await Deno.makeTempDir();
  const name = `outpost-ops-${crypto.randomUUID()}`;
  const sock = notifySocket(`\0${name}`);
  const gw = await startGateway(dir, SIM(dir), { env: { NOTIFY_SOCKET: `@${name}` } });
  try {
    await waitFor("READY=1", () => sock.lines("READY").length === 1);
    Deno.kill(gw.pid, "SIGHUP");
    await waitFor("READY=1 after the reload", () => sock.lines("READY").length === 2);
    const texts = sock.got.map((d) => d.text.split("\n")[0]);
    assert.deepEqual(texts, ["READY=1", "RELOADING=1", "READY=1"]);
    assert.equal(await gw.stop(), 0);
    await waitFor("STOPPING=1", () => sock.lines("STOPPING").length === 1);
    assert.doesNotMatch(gw.output(), /cannot notify systemd/);
  } finally {
    await gw.kill();
    await sock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without NOTIFY_SOCKET nothing is sent and /metrics parses from the running process", async () => {
  const dir = await Deno.makeTempDir();
  const gw = await startGateway(dir, SIM(dir), { env: { NOTIFY_SOCKET: "" } });
  try {
    await waitFor("readings counted", async () => {
      const res = await gw.get("/metrics");
      const m = parsePrometheus(await res.text());
      return sampleValue(m, "outpost_readings_accepted_total") > 10;
    });
    assert.doesNotMatch(gw.output(), /\[systemd\]/);
  } finally {
    assert.equal(await gw.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `outpost run` with extra flags until the simulated adapter has started, then SIGTERM. */
async function runBriefly(dir: string, yaml: string, flags: string[], env = {}): Promise<string> {
  const configPath = `${dir}/site.yaml`;
  await Deno.writeTextFile(configPath, `${yaml}\nhttp: { enabled: false }\n`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, "run", "--config", configPath, ...flags],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  const { output, drained } = collectOutput(child);
  try {
    await waitFor("the adapter to start", () => output().includes("simulating devices"), 30_000);
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await drained;
    assert.equal(status.code, 0, output());
  }
  return output();
}

function assertJsonLines(out: string, prefix = ""): Record<string, unknown>[] {
  const lines = out.trimEnd().split("\n");
  assert.ok(lines.length >= 4, out);
  return lines.map((line) => {
    assert.ok(line.startsWith(prefix), line);
    const rec = JSON.parse(line.slice(prefix ? line.indexOf("{") : 0));
    assert.equal(typeof rec.ts, "string");
    assert.ok(!Number.isNaN(Date.parse(rec.ts)), rec.ts);
    assert.match(rec.level, /^(debug|info|warn|error)$/);
    assert.equal(typeof rec.component, "string");
    assert.equal(typeof rec.msg, "string");
    return rec;
  });
}

Deno.test("log.format: json in the config gives one JSON object per line with ts, level, component, msg", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await runBriefly(dir, SIM(dir, "log: { format: json }"), []);
    const recs = assertJsonLines(out);
    assert.ok(recs.some((r) => r.component === "sim" && r.msg === "simulating devices"));
    assert.ok(recs.some((r) => r.component === "gateway" && r.msg === "stopped"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--log-format json overrides a text config; under journald lines carry <N> priorities", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await runBriefly(dir, SIM(dir, "log: { format: text }"), ["--log-format", "json"]);
    assertJsonLines(out);
    const journal = await runBriefly(dir, SIM(dir), ["--log-format", "json"], {
      JOURNAL_STREAM: "8:12345",
    });
    const recs = assertJsonLines(journal, "<");
    for (const line of journal.trimEnd().split("\n")) {
      const rec = JSON.parse(line.slice(line.indexOf("{")));
      const want = { debug: 7, info: 6, warn: 4, error: 3 }[rec.level as "info"];
      assert.ok(line.startsWith(`<${want}>{`), line);
    }
    assert.ok(recs.length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("text logs: one line per event with time, level and [component]", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await runBriefly(dir, SIM(dir), []);
    for (const line of out.trimEnd().split("\n")) {
      assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO |WARN |ERROR) \[[\w.-]+\] \S/);
    }
    const journal = await runBriefly(dir, SIM(dir), [], { JOURNAL_STREAM: "8:12345" });
    for (const line of journal.trimEnd().split("\n")) {
      assert.match(line, /^<[3467]>(DEBUG|INFO |WARN |ERROR) \[[\w.-]+\] \S/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
