import assert from "node:assert/strict";
import { CSV_HEADER, csvLine } from "../buffer/export.ts";
import { topicMatchesFilter } from "../common/mqtt.ts";
import { gatewayView, parseReply } from "./client.ts";
import { parseTime } from "../common/cli.ts";
import { FleetUsageError, parseFleetArgs } from "./cli.ts";
import { FleetConfigError, resolveConnection } from "./config.ts";
import { ExportError, PageAssembler } from "./export.ts";
import { formatAge, formatElapsed, formatFleetTable, formatResults } from "./format.ts";
import { CommandRun, expectsRestart } from "./run.ts";
import { MemoryToken } from "../common/http/mod.ts";
import { type CommandReply, type QueryRow, queryRowReading } from "../protocol/mod.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

function view(id: string, status: Record<string, unknown>, live = false, receivedAt = NOW) {
  return gatewayView(
    id,
    { gatewayId: id, version: "1.2.0", ts: NOW - 10_000, ...status } as never,
    {
      receivedAt,
      live,
      now: NOW,
      staleAfterMs: 120_000,
    },
  );
}

Deno.test("formatFleetTable() aligns columns, right-aligns numbers, shows host checks and device updates, counts states", () => {
  const table = formatFleetTable([
    view("gw-2", {
      state: "online",
      backlog: 0,
      oldestPendingAgeMs: null,
      doctor: { ok: false, summary: { fail: 1, warn: 2 }, failing: ["uplink.tls"] },
      deviceUpdates: {
        classes: [{
          class: "boiler",
          devices: 4,
          states: { current: 3, failed: 1 },
          rollout: { name: "fw", version: "1.1.0", status: "stopped", failures: 1 },
        }],
      },
    }),
    view("gw-10", {
      state: "offline",
      backlog: 1234,
      oldestPendingAgeMs: 60_000,
      reason: "connection lost (last will)",
      ts: NOW - 3 * 3600_000,
    }),
    view("gw-3", { state: "online", ts: NOW - 600_000, backlog: 7, oldestPendingAgeMs: 1000 }),
  ], NOW);
  const lines = table.split("\n");
  assert.deepEqual(lines.slice(0, 4), [
    "GATEWAY  STATE    VERSION  BACKLOG  OLDEST PENDING  LAST SEEN  HOST CHECKS            DEVICE UPDATES                          NOTE",
    "gw-2     online   1.2.0          0               -  10s ago    1 failing, 2 warnings  boiler: 3/4 current, stopped: 1 failed",
    "gw-10    offline  1.2.0       1234            3.0h  3.0h ago   ?                      -                                       connection lost (last will)",
    "gw-3     stale    1.2.0          7             10m  10m ago    ?                      -",
  ]);
  assert.equal(lines.at(-1), "3 gateway(s): 2 online (1 stale), 1 offline");
  assert.equal(formatFleetTable([], NOW), "no gateway has published a status yet");
});

Deno.test("gatewayView(): last seen is the arrival of a live status, the status ts of a retained one", () => {
  assert.equal(view("a", { state: "online" }, false).lastSeen, NOW - 10_000);
  assert.equal(view("a", { state: "offline" }, true, NOW - 5).lastSeen, NOW - 5);
  // The oldest pending reading keeps ageing while nothing is forwarded.
  const v = view("a", { state: "offline", backlog: 3, oldestPendingAgeMs: 50_000 });
  assert.equal(v.oldestPendingAgeMs, 60_000);
  assert.equal(
    view("a", { state: "online", backlog: 0, oldestPendingAgeMs: null })
      .oldestPendingAgeMs,
    null,
  );
  assert.equal(view("a", { state: "online", startedAt: 42 }).startedAt, 42);
});

Deno.test("formatAge() picks seconds, minutes, hours, days", () => {
  assert.equal(formatAge(null), "-");
  assert.equal(formatAge(59_400), "59s");
  assert.equal(formatAge(30 * 60_000), "30m");
  assert.equal(formatAge(5 * 3600_000), "5.0h");
  assert.equal(formatAge(30 * 86400_000), "30.0d");
});

Deno.test("topicMatchesFilter() and parseReply() follow MQTT wildcards and the reply shape", () => {
  assert.ok(topicMatchesFilter("gateways/+/status", "gateways/gw-1/status"));
  assert.ok(!topicMatchesFilter("gateways/+/status", "gateways/gw-1/reply"));
  assert.ok(!topicMatchesFilter("gateways/+/status", "gateways/a/b/status"));
  assert.ok(topicMatchesFilter("site/#", "site/a/b/status"));
  assert.equal(parseReply("{not json"), undefined);
  assert.equal(
    parseReply(JSON.stringify({ id: 1, gatewayId: "a", status: "done", final: true })),
    undefined,
  );
  assert.equal(parseReply(JSON.stringify({ id: "x", gatewayId: "a", status: "done" })), undefined);
  assert.equal(
    parseReply(JSON.stringify({ id: null, gatewayId: "a", status: "error", final: true }))?.id,
    null,
  );
});

Deno.test("parseFleetArgs(): subcommands, targets, durations and times", () => {
  assert.equal(parseFleetArgs([]).sub, "list");
  const l = parseFleetArgs(["--broker", "mqtt://h:1883", "--json", "--watch", "--interval", "5s"]);
  assert.deepEqual([l.sub, l.json, l.watch, l.intervalMs, l.connection.broker], [
    "list",
    true,
    true,
    5000,
    "mqtt://h:1883",
  ]);
  const s = parseFleetArgs([
    "send",
    "logs",
    "--args",
    '{"lines":5}',
    "--gateway",
    "a,b",
    "--gateway",
    "c,a",
  ]);
  assert.deepEqual([s.cmd, s.args, s.targets, s.timeoutMs], [
    "logs",
    { lines: 5 },
    ["a", "b", "c"],
    30_000,
  ]);
  assert.equal(parseFleetArgs(["send", "ping", "--all"]).targets, "all");
  assert.equal(parseFleetArgs(["restart", "--all"]).timeoutMs, 120_000);
  const u = parseFleetArgs(["update", "--gateway", "a", "--version", "1.4.0", "--timeout", "90s"]);
  assert.deepEqual([u.version, u.check, u.timeoutMs], ["1.4.0", false, 90_000]);
  assert.equal(parseFleetArgs(["update", "--all", "--check"]).timeoutMs, 60_000);
  const x = parseFleetArgs(
    ["export", "--gateway", "a", "--device", "d", "--from", "30d", "--out", "f.csv"],
    NOW,
  );
  assert.deepEqual(x.export, {
    gateway: "a",
    device: "d",
    metric: undefined,
    from: NOW - 30 * 86400_000,
    to: undefined,
    out: "f.csv",
    pageRows: undefined,
  });
  const sv = parseFleetArgs(["serve", "--listen", "0.0.0.0:9000", "--allow-insecure-http"]);
  assert.deepEqual(sv.serve, {
    listen: "0.0.0.0:9000",
    tokenFile: undefined,
    httpsCert: undefined,
    httpsKey: undefined,
    allowInsecureHttp: true,
  });
  assert.equal(parseFleetArgs(["send", "--help"]).help, true);
  const tls = parseFleetArgs(
    ["serve", "--listen", "[::]:9443", "--https-cert", "c.pem", "--https-key", "k.pem"],
  );
  assert.deepEqual([tls.serve?.listen, tls.serve?.httpsCert], ["[::]:9443", "c.pem"]);
});

Deno.test("parseFleetArgs() refuses bad usage with a message naming the problem", () => {
  const bad: [string[], RegExp][] = [
    [["frob"], /unknown subcommand "frob"/],
    [["send", "ping"], /--gateway ID.*or --all/],
    [["send", "ping", "--all", "--gateway", "a"], /either --gateway or --all/],
    [["send"], /missing CMD/],
    [["send", "ping", "--all", "--args", "[1]"], /expected a JSON object/],
    [["send", "ping", "--all", "--args", "{"], /--args: not JSON/],
    [["send", "ping", "--all", "--timeout", "soon"], /--timeout: expected a duration/],
    [["send", "ping", "--gateway", "fleet"], /"fleet" is not a gateway id/],
    [["send", "ping", "--gateway", "a/b"], /not a gateway id/],
    [["list", "--all"], /list does not take --all/],
    [["restart", "--all", "--version", "1"], /restart does not take --version/],
    [["update", "--all", "--check", "--version", "1"], /--version applies to an update/],
    [
      ["export", "--gateway", "a,b", "--device", "d", "--from", "1d", "--out", "x"],
      /one --gateway/,
    ],
    [["export", "--gateway", "a", "--from", "1d", "--out", "x"], /missing --device/],
    [["export", "--gateway", "a", "--device", "d", "--out", "x"], /missing --from/],
    [
      ["export", "--gateway", "a", "--device", "d", "--from", "yesterday", "--out", "x"],
      /--from: expected ISO 8601/,
    ],
    [
      ["export", "--gateway", "a", "--device", "d", "--from", "1d", "--to", "2d", "--out", "x"],
      /must be after --from/,
    ],
    [["serve", "--https-cert", "c.pem"], /go together/],
    [
      ["serve", "--listen", "0.0.0.0:9000"],
      /accepts connections from other machines.*--https-cert/,
    ],
    [["serve", "--listen", "everywhere"], /--listen: expected host:port/],
    [["list", "--bogus"], /bogus/],
    [["list", "extra"], /unexpected argument "extra"/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseFleetArgs(args, NOW), (e: Error) => {
      assert.ok(e instanceof FleetUsageError, `${args.join(" ")}: ${e}`);
      assert.match(e.message, re, args.join(" "));
      return true;
    });
  }
  assert.equal(parseTime("2026-01-01T00:00:00Z", "--from"), Date.UTC(2026, 0, 1));
  assert.equal(parseTime("1767225600000", "--from"), 1767225600000);
});

Deno.test("resolveConnection(): flags over environment over file; the password never inline", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/pw`, "s3cret\n");
  await Deno.writeTextFile(
    `${dir}/fleet.yaml`,
    `url: mqtts://file:8883\nusername: fromfile\npassword: \${file:${dir}/pw}\n` +
      `tls: { ca: ca.pem }\nprefix: site\nkey: op.key\n`,
  );
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  const a = resolveConnection({ connection: `${dir}/fleet.yaml` }, env({}));
  assert.deepEqual(
    [
      a.connection.url,
      a.connection.username,
      a.connection.password,
      a.connection.prefix,
      a.keyFile,
    ],
    ["mqtts://file:8883", "fromfile", "s3cret", "site", "op.key"],
  );
  assert.deepEqual(a.connection.tls, { ca: "ca.pem", rejectUnauthorized: true });
  const b = resolveConnection(
    {
      connection: `${dir}/fleet.yaml`,
      broker: "mqtt://flag:1",
      cert: "c.pem",
      "cert-key": "k.pem",
    },
    env({ OUTPOST_BROKER: "mqtt://env:1", OUTPOST_BROKER_PASSWORD: "envpw" }),
  );
  assert.equal(b.connection.url, "mqtt://flag:1");
  assert.equal(b.connection.password, "envpw");
  assert.deepEqual(b.connection.tls, {
    ca: "ca.pem",
    rejectUnauthorized: true,
    cert: "c.pem",
    key: "k.pem",
  });
  const c = resolveConnection(
    { "password-file": `${dir}/pw` },
    env({ OUTPOST_BROKER: "mqtt://e:1" }),
  );
  assert.deepEqual([c.connection.url, c.connection.password], ["mqtt://e:1", "s3cret"]);
  assert.throws(() => resolveConnection({}, env({})), FleetConfigError);
  assert.throws(() => resolveConnection({ broker: "http://x" }, env({})), /expected a broker URL/);
  assert.throws(() => resolveConnection({ broker: "mqtt://x", cert: "c" }, env({})), /go together/);
  assert.throws(
    () => resolveConnection({ broker: "mqtt://x", prefix: "a/+" }, env({})),
    /--prefix/,
  );
});

function rows(n: number, start = 1): QueryRow[] {
  return Array.from({ length: n }, (_, i) => [
    start + i,
    NOW + (start + i) * 1000,
    "pump-1",
    "pressure",
    i % 3 === 0 ? 1.5 : i % 3 === 1 ? true : 'a,"b"',
    i % 3 === 0 ? "bar" : null,
    i % 2 === 0,
  ]);
}

function page(n: number, r: QueryRow[], gatewayId = "gw-1"): CommandReply {
  return {
    id: "q",
    gatewayId,
    cmd: "query",
    status: "page",
    final: false,
    ts: NOW,
    page: n,
    result: { columns: [], rows: r, lastSeq: r.at(-1)?.[0] ?? 0 },
  };
}

function done(rowsN: number, pages: number, lastSeq: number | null, complete = true): CommandReply {
  return {
    id: "q",
    gatewayId: "gw-1",
    cmd: "query",
    status: "done",
    final: true,
    ts: NOW,
    result: { rows: rowsN, pages, lastSeq, complete },
  };
}

Deno.test("PageAssembler: pages out of order and twice give each row once, in order, as export CSV", () => {
  const all = rows(25);
  const pages = [all.slice(0, 10), all.slice(10, 20), all.slice(20)];
  const asm = new PageAssembler({ device: "pump-1" });
  const out = [
    ...asm.add(page(2, pages[2])),
    ...asm.add(page(0, pages[0])),
    ...asm.add(page(0, pages[0])),
    ...asm.add(page(1, pages[1])),
    ...asm.add(page(2, pages[2])),
  ];
  asm.add(done(25, 3, 25));
  assert.deepEqual(asm.finish(), { rows: 25, pages: 3, lastSeq: 25, complete: true });
  assert.deepEqual(out.map((r) => r.seq), all.map((r) => r[0]));
  const csv = [CSV_HEADER, ...out.map(csvLine)];
  assert.equal(csv[0], "seq,time,device,metric,value,unit,forwarded");
  assert.equal(csv[1], `1,${new Date(NOW + 1000).toISOString()},pump-1,pressure,1.5,bar,true`);
  assert.equal(csv[2], `2,${new Date(NOW + 2000).toISOString()},pump-1,pressure,true,,false`);
  assert.equal(csv[3], `3,${new Date(NOW + 3000).toISOString()},pump-1,pressure,"a,""b""",,true`);
  // The same line `outpost export` writes for the same stored reading.
  assert.equal(csv[1], csvLine(queryRowReading(all[0])));
});

Deno.test("PageAssembler: a missing page, a wrong count or no final reply is an error", () => {
  const all = rows(30);
  const gap = new PageAssembler({ device: "pump-1" });
  gap.add(page(0, all.slice(0, 10)));
  gap.add(page(2, all.slice(20)));
  gap.add(done(30, 3, 30));
  assert.throws(
    () => gap.finish(),
    /incomplete: the gateway sent 3 page\(s\), 1 arrived in order; missing page\(s\) 1/,
  );

  const short = new PageAssembler({ device: "pump-1" });
  short.add(page(0, all.slice(0, 10)));
  short.add(done(11, 1, 11));
  assert.throws(() => short.finish(), /the gateway sent 11 rows, 10 arrived/);

  const none = new PageAssembler({ device: "pump-1" });
  none.add(page(0, all.slice(0, 10)));
  assert.throws(() => none.finish(), /no final reply after 1 page/);

  const refused = new PageAssembler({ device: "pump-1" });
  assert.throws(
    () =>
      refused.add({
        ...done(0, 0, null),
        status: "error",
        error: { code: "bad-args", message: "device is required" },
      }),
    (e: Error) => e instanceof ExportError && /bad-args: device is required/.test(e.message),
  );
});

Deno.test("PageAssembler: rows out of sequence order or outside the query are refused", () => {
  const all = rows(10);
  const back = new PageAssembler({ device: "pump-1" });
  assert.throws(() => back.add(page(0, [all[3], all[2]])), /seq 3 is not after 4/);
  const other = new PageAssembler({ device: "pump-2" });
  assert.throws(() => other.add(page(0, all)), /outside the query/);
  const window = new PageAssembler({ device: "pump-1", from: NOW + 5000 });
  assert.throws(() => window.add(page(0, all)), /row seq 1 .* is outside the query/);
  const malformed = new PageAssembler({ device: "pump-1" });
  assert.throws(() => malformed.add(page(0, [[1, 2] as unknown as QueryRow])), /malformed row/);
  assert.throws(() => malformed.add({ ...page(0, []), page: -1 }), /malformed page/);
});

function reply(
  id: string,
  gatewayId: string,
  status: CommandReply["status"],
  extra: Partial<CommandReply> = {},
): CommandReply {
  return {
    id,
    gatewayId,
    cmd: "restart",
    status,
    final: status === "done" || status === "error",
    ts: NOW,
    ...extra,
  };
}

Deno.test("CommandRun: the targets that do not answer in time time out, the others count", async () => {
  const run = new CommandRun({ id: "r", cmd: "ping", fleetWide: false, timeoutMs: 80 });
  const before = { startedAt: 1, version: "1" };
  run.addTarget("a", "ra", before);
  run.addTarget("b", "rb", before);
  run.addTarget("c", "rc", before);
  run.seal();
  const seen: string[] = [];
  run.onUpdate((t) => seen.push(`${t.gatewayId}:${t.state}`));
  assert.ok(run.handleReply(reply("ra", "a", "done", { result: { pong: true } })));
  assert.ok(run.handleReply(reply("rb", "b", "accepted")));
  assert.ok(!run.handleReply(reply("other", "a", "done")));
  const t0 = performance.now();
  const s = await run.done;
  assert.ok(performance.now() - t0 < 1000);
  assert.deepEqual(
    { total: s.total, ok: s.ok, failed: s.failed, timedOut: s.timedOut, replied: s.replied },
    { total: 3, ok: 1, failed: 0, timedOut: 2, replied: 2 },
  );
  const [a, b, c] = run.results();
  assert.deepEqual([a.state, b.state, c.state], ["done", "timeout", "timeout"]);
  assert.equal(b.note, "accepted, but no final reply within 80ms");
  assert.equal(c.note, "no reply within 80ms");
  assert.deepEqual(seen, ["a:done", "b:accepted", "b:timeout", "c:timeout"]);
  const table = formatResults(run.results());
  assert.match(
    table,
    /^GATEWAY {2}RESULT {3}AFTER {2}DETAIL\na {8}done .*pong\nb {8}timeout .*accepted, but no final reply/,
  );
  // A late reply after the timeout changes nothing.
  run.handleReply(reply("rc", "c", "done"));
  assert.equal(run.results()[2].state, "timeout");
});

Deno.test("CommandRun: a restart finishes once the status shows a new process", async () => {
  const run = new CommandRun({
    id: "r",
    cmd: "restart",
    fleetWide: true,
    timeoutMs: 5000,
    followRestart: expectsRestart("restart"),
  });
  run.addTarget("a", "r", { startedAt: 100, version: "1.0" });
  run.addTarget("b", "r", { startedAt: 100, version: "1.0" });
  run.seal();
  // a: the final reply before the new status.
  run.handleReply(reply("r", "a", "done"));
  assert.equal(run.results()[0].state, "restarting");
  run.handleStatus("a", { state: "online", startedAt: 100, version: "1.0" });
  assert.equal(run.results()[0].state, "restarting");
  run.handleStatus("a", { state: "online", startedAt: 200, version: "1.1" });
  // b: offline, back online (same startedAt shown, e.g. an older gateway), then the final reply.
  run.handleReply(reply("r", "b", "accepted"));
  run.handleStatus("b", { state: "offline", startedAt: 100, version: "1.0" });
  run.handleStatus("b", { state: "online", startedAt: null, version: "1.0" });
  // c answers the fleet-wide request without having been listed (while the run is open).
  run.handleReply(reply("r", "c", "error", { error: { code: "busy", message: "busy" } }));
  run.handleReply(reply("r", "b", "done"));
  const s = await run.done;
  assert.deepEqual([s.ok, s.failed, s.total], [2, 1, 3]);
  const [a, b, c] = run.results();
  assert.deepEqual([a.state, a.after], ["restarted", { startedAt: 200, version: "1.1" }]);
  assert.equal(b.state, "restarted");
  assert.deepEqual([c.state, c.unexpected, c.error?.code], ["error", true, "busy"]);
});

Deno.test("expectsRestart(): restart always; update-apply only when the reply says so", () => {
  const r = (result: unknown) => reply("x", "a", "done", { result });
  assert.equal(expectsRestart("restart")!(r({})), true);
  assert.equal(expectsRestart("update-apply")!(r({ applied: false, result: "current" })), false);
  assert.equal(expectsRestart("update-apply")!(r({ staged: true })), true);
  assert.equal(expectsRestart("ping"), undefined);
  assert.equal(formatElapsed(420), "0.4s");
  assert.equal(formatElapsed(65_000), "65s");
});

Deno.test("CommandRun: cancelling finishes every target at once", async () => {
  const ac = new AbortController();
  const run = new CommandRun({
    id: "r",
    cmd: "ping",
    fleetWide: false,
    timeoutMs: 60_000,
    signal: ac.signal,
  });
  run.addTarget("a", "ra", { startedAt: null, version: null });
  run.seal();
  ac.abort();
  const s = await run.done;
  assert.equal(s.failed, 1);
  assert.equal(run.results()[0].state, "cancelled");
});

Deno.test("MemoryToken: the token and sessions made with it verify, others do not", () => {
  const t = new MemoryToken("x".repeat(43));
  assert.ok(t.verify("x".repeat(43)));
  assert.ok(!t.verify("y".repeat(43)));
  const s = t.newSession(NOW);
  assert.ok(t.verifySession(s, NOW + 1000));
  assert.ok(!t.verifySession(s, NOW + 13 * 3600_000), "expired");
  assert.ok(!new MemoryToken("z".repeat(43)).verifySession(s, NOW + 1000), "other token");
  const tampered = s.slice(0, -1) + (s.endsWith("A") ? "B" : "A");
  assert.ok(!t.verifySession(tampered, NOW + 1000), "tampered");
  assert.ok(new MemoryToken().token.length >= 43);
});
