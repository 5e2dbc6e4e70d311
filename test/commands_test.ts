/**
 * Remote commands end to end: a real Mosquitto, real gateway processes (simulated adapter), and a
 * test console that publishes requests and reads the replies, as the fleet console does.
 */
import assert from "node:assert/strict";
import { laughs } from "./helpers/hostile.ts";
import mqtt, { type MqttClient } from "mqtt";
import { Buffer } from "../src/buffer/buffer.ts";
import { exportReadings } from "../src/buffer/export.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import {
  type CommandReply,
  type CommandRequest,
  type QueryDone,
  type QueryPage,
  queryRowReading,
  sha256Hex,
  signRequest,
} from "../src/protocol/mod.ts";
import { generateKey, importSigningKey, readSigningKey } from "../src/update/keys.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { type Broker, startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";
import {
  artifacts,
  assertFlowing,
  bufferContents,
  channelServer,
  type Device,
  device,
  keypair,
  publish,
  VERSIONS,
} from "./helpers/update.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The test console's operator key: every gateway here grants it all scopes. */
const OPERATOR_FILE = await generateKey();
const OPERATOR = await importSigningKey(OPERATOR_FILE);
const OPERATOR_YAML = `commands:
  operatorKeys: [{ key: "${OPERATOR_FILE.public}", scopes: [read, operate, admin], name: test }]
`;

/** The test's side of the protocol: requests out, every reply in, by request id. */
interface Console {
  client: MqttClient;
  replies(id: string): CommandReply[];
  /** Replies with `id: null` (requests too malformed to read an id from), in arrival. */
  anonymous: CommandReply[];
  /** Sizes of reply messages, by request id. */
  sizes(id: string): number[];
  publish(topic: string, payload: string, opts?: { retain?: boolean }): Promise<void>;
  request(
    target: string,
    cmd: string,
    req: CommandRequest | Record<string, unknown>,
  ): Promise<void>;
  /** Sends `cmd` (a fresh id unless given) and waits for the final reply. */
  call(
    target: string,
    cmd: string,
    args?: Record<string, unknown>,
    /** `sign` replaces the default signature by the console's operator key (a no-op: unsigned). */
    opts?: { id?: string; timeoutMs?: number; sign?: (req: CommandRequest) => Promise<void> },
  ): Promise<{ final: CommandReply; all: CommandReply[] }>;
  /** Waits for the final reply to `id`. */
  final(id: string, timeoutMs?: number): Promise<CommandReply>;
  close(): Promise<void>;
}

async function openConsole(url: string, prefix = "gateways"): Promise<Console> {
  const client = await mqtt.connectAsync(url, {
    clientId: `test-console-${crypto.randomUUID().slice(0, 8)}`,
    reconnectPeriod: 200,
  });
  const byId = new Map<string, CommandReply[]>();
  const sizes = new Map<string, number[]>();
  const anonymous: CommandReply[] = [];
  client.on("message", (_topic, payload) => {
    const r = JSON.parse(payload.toString()) as CommandReply;
    if (r.id === null) {
      anonymous.push(r);
      return;
    }
    byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
    sizes.set(r.id, [...(sizes.get(r.id) ?? []), payload.length]);
  });
  await client.subscribeAsync(`${prefix}/+/reply`, { qos: 1 });
  const con: Console = {
    client,
    anonymous,
    replies: (id) => byId.get(id) ?? [],
    sizes: (id) => sizes.get(id) ?? [],
    publish: async (topic, payload, opts = {}) => {
      await client.publishAsync(topic, payload, { qos: 1, retain: opts.retain ?? false });
    },
    request: async (target, cmd, req) => {
      await con.publish(`${prefix}/${target}/cmd/${cmd}`, JSON.stringify(req));
    },
    final: (id, timeoutMs = 20_000) =>
      waitFor(`the final reply to ${id}`, () => con.replies(id).find((r) => r.final), timeoutMs),
    call: async (target, cmd, args, opts = {}) => {
      const req: CommandRequest = { id: opts.id ?? crypto.randomUUID(), ...(args ? { args } : {}) };
      await (opts.sign ?? ((r) => signRequest(OPERATOR, cmd, target, r).then(() => {})))(req);
      await con.request(target, cmd, req);
      const final = await con.final(req.id, opts.timeoutMs);
      return { final, all: con.replies(req.id) };
    },
    close: async () => {
      await client.endAsync(true);
    },
  };
  return con;
}

/** A gateway config; `commands` lines (indented two spaces) join the operator key's section. */
function gatewayYaml(
  id: string,
  dir: string,
  broker: Broker,
  extra = "",
  commands: string[] = [],
): string {
  const keys = commands.some((l) => l.startsWith("operatorKeys:"))
    ? []
    : [OPERATOR_YAML.split("\n")[1].trim()];
  return `gateway: { id: ${id} }
commands:
${[...keys, ...commands].map((l) => `  ${l}\n`).join("")}
buffer: { path: ${dir}/buffer.db, retention: 60d }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 100ms, max: 500ms }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 100ms }
${extra}`;
}

/** Starts a gateway and waits until the broker granted its request subscriptions. */
async function startCommandGateway(
  dir: string,
  yaml: string,
  opts: { httpPort?: number } = {},
): Promise<GatewayProcess> {
  const gw = await startGateway(dir, yaml, opts);
  await waitForSubscribed(gw);
  return gw;
}

async function waitForSubscribed(gw: GatewayProcess): Promise<void> {
  await waitFor(
    `gateway ${gw.pid}: request topics subscribed`,
    async () => {
      const s = await statusOf(gw);
      return s.commands?.subscribed === true;
    },
    20_000,
    50,
  ).catch((e) => {
    throw new Error(`${e.message}\n--- gateway output ---\n${gw.output()}`);
  });
}

/** The parts of /status these tests read. */
interface StatusView {
  pid: number;
  startedAt: number;
  health: { ok: boolean };
  uplink: { connected: boolean; target: string };
  devices: Record<string, unknown>;
  commands?: { subscribed?: boolean };
}

async function statusOf(gw: GatewayProcess): Promise<StatusView> {
  return await gw.status() as unknown as StatusView;
}

function expectError(r: CommandReply, code: string, message?: RegExp): void {
  assert.equal(r.status, "error", JSON.stringify(r));
  assert.equal(r.final, true);
  assert.equal(r.error?.code, code, JSON.stringify(r));
  if (message) assert.match(r.error!.message, message);
}

function expectDone(r: CommandReply): Record<string, unknown> {
  assert.equal(r.status, "done", JSON.stringify(r));
  assert.equal(r.final, true);
  return r.result as Record<string, unknown>;
}

Deno.test({
  name:
    "ping, status, logs and config-get answer on the gateway and fleet topics; bad requests get error replies and the gateway keeps serving",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const gw = await startCommandGateway(
    dir,
    gatewayYaml(
      "cmd-basic",
      dir,
      broker,
      "",
      ["allow: [ping, status, logs, config-get, query, update-check, update-apply, rollback]"],
    ),
  );
  try {
    const ping = expectDone((await con.call("cmd-basic", "ping")).final);
    assert.equal(ping.pong, true);
    assert.equal(ping.pid, gw.pid);
    assert.equal(typeof ping.startedAt, "number");

    // Fleet-wide: the same request id, answered on this gateway's own reply topic.
    const fleet = await con.call("fleet", "ping");
    assert.equal(fleet.final.gatewayId, "cmd-basic");
    assert.equal(expectDone(fleet.final).pid, gw.pid);

    const status = expectDone((await con.call("cmd-basic", "status")).final);
    assert.equal(status.gatewayId, "cmd-basic");
    assert.equal((status.health as { ok: boolean }).ok, true);
    assert.equal((status.uplink as { connected: boolean }).connected, true);

    const cfg = expectDone((await con.call("cmd-basic", "config-get")).final);
    const text = await Deno.readTextFile(gw.configPath);
    assert.equal(cfg.yaml, text);
    assert.equal(cfg.sha256, await sha256Hex(text));
    assert.equal(cfg.prevSha256, null);

    // Malformed: not JSON, no id, args of the wrong type, over-long id.
    await con.publish("gateways/cmd-basic/cmd/ping", "not json");
    await con.publish("gateways/cmd-basic/cmd/ping", JSON.stringify({ args: {} }));
    await waitFor("two anonymous error replies", () => con.anonymous.length >= 2);
    for (const r of con.anonymous) expectError(r, "malformed");
    assert.match(con.anonymous[0].error!.message, /not JSON/);
    assert.match(con.anonymous[1].error!.message, /expected id/);
    expectError(
      (await con.call("cmd-basic", "ping", [1, 2] as unknown as Record<string, unknown>)).final,
      "malformed",
      /args/,
    );
    // Unknown and not allowed here.
    expectError(
      (await con.call("cmd-basic", "reboot")).final,
      "unknown-command",
      /unknown command "reboot"/,
    );
    expectError((await con.call("cmd-basic", "restart")).final, "forbidden", /not allowed/);
    // Bad arguments.
    expectError(
      (await con.call("cmd-basic", "ping", { x: 1 })).final,
      "bad-args",
      /unknown args x/,
    );
    expectError((await con.call("cmd-basic", "logs", { lines: 0 })).final, "bad-args", /lines/);
    expectError((await con.call("cmd-basic", "query", {})).final, "bad-args", /device/);
    expectError(
      (await con.call("cmd-basic", "query", { device: "sim-1", from: "yesterday-ish" })).final,
      "bad-args",
      /args\.from/,
    );
    // No update: section.
    for (const cmd of ["update-check", "update-apply", "rollback"]) {
      expectError(
        (await con.call("cmd-basic", cmd)).final,
        "unavailable",
        /self-update is not configured/,
      );
    }
    // The same signed request again.
    const onceReq = await signRequest(OPERATOR, "ping", "cmd-basic", { id: "only-once" });
    await con.request("cmd-basic", "ping", onceReq);
    expectDone(await con.final("only-once"));
    await con.request("cmd-basic", "ping", onceReq);
    await waitFor("the replay's reply", () => con.replies("only-once").length === 2);
    expectError(con.replies("only-once")[1], "replayed", /already received/);

    const logs = expectDone((await con.call("cmd-basic", "logs", { lines: 40 })).final);
    const lines = logs.lines as { level: string; component: string; msg: string }[];
    assert.ok(lines.length <= 40 && lines.length > 0);
    assert.ok(
      lines.some((l) => l.component === "audit" && /command reboot refused/.test(l.msg)),
    );
    const warnings = expectDone(
      (await con.call("cmd-basic", "logs", { lines: 500, level: "warn" })).final,
    );
    const warned = warnings.lines as { level: string }[];
    assert.ok(warned.length > 0 && warned.every((l) => l.level === "warn" || l.level === "error"));

    // Still the same healthy process, still answering.
    const after = expectDone((await con.call("cmd-basic", "ping")).final);
    assert.equal(after.pid, gw.pid);
    assert.equal(after.startedAt, ping.startedAt);
    assert.equal((await statusOf(gw)).health.ok, true);
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "with signatures required, unsigned, unknown-key, tampered, misaddressed and stale requests are refused; signed ones run and stay spent across a restart",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const keys = `${dir}/keys`;
  const rogueKeys = `${dir}/rogue`;
  const keygen = async (out: string) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "release", "keygen", "--out", out],
      stdout: "piped",
    }).output();
    return /private key (\S+)/.exec(new TextDecoder().decode(r.stdout))![1];
  };
  const keyFile = await keygen(keys);
  const operator = await readSigningKey(keyFile);
  const rogue = await readSigningKey(await keygen(rogueKeys));
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const yaml = gatewayYaml(
    "cmd-signed",
    dir,
    broker,
    "",
    [
      `operatorKeys: [{ key: "\${file:${keyFile.replace(/\.key$/, ".pub")}}", scopes: [read] }]`,
      "replayWindow: 2m",
    ],
  );
  let gw = await startCommandGateway(dir, yaml);
  try {
    const signedBy =
      (key: typeof operator, cmd: string, target = "cmd-signed") => async (req: CommandRequest) => {
        await signRequest(key, cmd, target, req);
      };
    expectError(
      (await con.call("cmd-signed", "status", undefined, { sign: async () => {} })).final,
      "unsigned",
      /missing signature/,
    );
    expectError(
      (await con.call("cmd-signed", "ping", undefined, { sign: signedBy(rogue, "ping") })).final,
      "unknown-key",
      /unknown operator key/,
    );
    // Signed for "logs" with 5 lines, sent with 500: the signature no longer matches.
    const tampered = await con.call("cmd-signed", "logs", { lines: 500 }, {
      sign: async (req) => {
        req.args = { lines: 5 };
        await signRequest(operator, "logs", "cmd-signed", req);
        req.args = { lines: 500 };
      },
    });
    expectError(tampered.final, "bad-signature", /does not verify/);
    // Signed for another gateway, and for another command.
    expectError(
      (await con.call("cmd-signed", "ping", undefined, {
        sign: signedBy(operator, "ping", "other-gw"),
      })).final,
      "bad-signature",
    );
    expectError(
      (await con.call("cmd-signed", "status", undefined, { sign: signedBy(operator, "ping") }))
        .final,
      "bad-signature",
    );
    // A signature that is not one.
    for (const sig of ["AAAA", "not base64!"]) {
      const id = crypto.randomUUID();
      await con.request("cmd-signed", "ping", { id, ts: Date.now(), keyid: operator.keyid, sig });
      expectError(await con.final(id), "bad-signature");
    }
    // Outside the replay window.
    const stale = await con.call("cmd-signed", "ping", undefined, {
      sign: async (req) => {
        req.ts = Date.now() - 10 * 60_000;
        await signRequest(operator, "ping", "cmd-signed", req);
      },
    });
    expectError(stale.final, "expired", /outside the replay window of 120s/);

    const good: CommandRequest = { id: crypto.randomUUID() };
    await signRequest(operator, "ping", "cmd-signed", good);
    await con.request("cmd-signed", "ping", good);
    assert.equal(expectDone(await con.final(good.id)).pong, true);
    await con.request("cmd-signed", "ping", good);
    await waitFor("the replay's reply", () => con.replies(good.id).length === 2);
    expectError(con.replies(good.id)[1], "replayed", /already received/);
    const fleet = await con.call("fleet", "ping", undefined, {
      sign: signedBy(operator, "ping", "fleet"),
    });
    expectDone(fleet.final);

    // A new process: the signed request is still spent.
    assert.equal(await gw.stop(), 0);
    gw = await startCommandGateway(dir, yaml);
    await con.request("cmd-signed", "ping", good);
    await waitFor("the replay's reply after a restart", () => con.replies(good.id).length === 3);
    expectError(con.replies(good.id)[2], "replayed", /already received/);
    const signedPing = await con.call("cmd-signed", "ping", undefined, {
      sign: signedBy(operator, "ping"),
    });
    assert.equal(expectDone(signedPing.final).pid, gw.pid);
    assert.doesNotMatch(gw.output(), new RegExp(good.sig!.slice(0, 20).replace(/[+/]/g, ".")));
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "restart replies accepted, then done from the restarted gateway with a new startedAt; readings keep flowing; an invalid config file refuses it",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const sub = await subscribe(broker.url, "gateways/cmd-restart/#");
  const gw = await startCommandGateway(dir, gatewayYaml("cmd-restart", dir, broker));
  try {
    const before = expectDone((await con.call("cmd-restart", "ping")).final);
    await waitFor("readings at the broker", () => sub.unique().size > 20);
    // Published with retain: it runs now, and the broker hands it back on every new subscription.
    await con.publish("gateways/cmd-restart/cmd/ping", JSON.stringify({ id: "retained-1" }), {
      retain: true,
    });
    expectDone(await con.final("retained-1"));
    const { final, all } = await con.call("cmd-restart", "restart");
    assert.deepEqual(all.map((r) => r.status), ["accepted", "done"]);
    assert.equal((all[0].result as { startedAt: number }).startedAt, before.startedAt);
    const done = expectDone(final);
    assert.equal(done.pid, gw.pid, "the same process");
    assert.equal(done.previousStartedAt, before.startedAt);
    assert.ok((done.startedAt as number) > (before.startedAt as number));
    const s = await statusOf(gw);
    assert.equal(s.startedAt, done.startedAt);
    assert.equal(s.pid, gw.pid);
    // The offline status said why, then the gateway came back online.
    assert.ok(sub.statuses.some((st) => st.state === "offline" && st.reason === "restarting"));
    // Readings taken after the restart reach the broker.
    await waitFor(
      "readings timestamped after the restart at the broker",
      () => [...sub.unique().values()].filter((r) => r.ts > (done.startedAt as number)).length > 10,
      15_000,
    );
    const ping = expectDone((await con.call("cmd-restart", "ping")).final);
    assert.equal(ping.startedAt, done.startedAt);
    assert.equal(con.replies("retained-1").length, 1, "a retained request is not run again");
    assert.match(gw.output(), /ignoring a retained request/);

    // A config file that does not validate: no restart, the running gateway carries on.
    const text = await Deno.readTextFile(gw.configPath);
    await Deno.writeTextFile(gw.configPath, text.replace("devices: 2", "devices: two"));
    const refused = await con.call("cmd-restart", "restart");
    expectError(refused.final, "invalid-config", /adapters\[0\]\.devices: expected an integer/);
    await Deno.writeTextFile(gw.configPath, text);
    const still = expectDone((await con.call("cmd-restart", "ping")).final);
    assert.equal(still.startedAt, done.startedAt);
  } finally {
    await gw.kill();
    await sub.close();
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "config-set applies a valid config and keeps the previous; an invalid one is refused with line:col and nothing changes; a stale sha256 is a conflict",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const gw = await startCommandGateway(dir, gatewayYaml("cmd-config", dir, broker));
  try {
    const original = await Deno.readTextFile(gw.configPath);
    const got = expectDone((await con.call("cmd-config", "config-get")).final);
    const sha = got.sha256 as string;

    // Invalid: a bad value on line 8, and YAML that does not parse.
    const bad = original.replace("devices: 2", 'devices: "two"');
    const lineOf = bad.split("\n").findIndex((l) => l.includes('"two"')) + 1;
    const invalid = await con.call("cmd-config", "config-set", { yaml: bad, expectSha256: sha });
    expectError(invalid.final, "invalid-config", /nothing changed/);
    const problems = (invalid.final.result as { problems: { line: number; col: number }[] })
      .problems;
    assert.equal(problems[0].line, lineOf);
    assert.equal(problems[0].col, bad.split("\n")[lineOf - 1].indexOf('"two"') + 1);
    assert.match(
      invalid.final.error!.message,
      new RegExp(`${lineOf}:\\d+ adapters\\[0\\]\\.devices`),
    );
    const syntax = await con.call("cmd-config", "config-set", { yaml: "gateway: [\n  id: x" });
    expectError(syntax.final, "invalid-config", /\d+:\d+ YAML syntax error/);
    // YAML that exhausts a 64 MB heap or the stack when parsed naively: refused, gateway lives.
    const deep = await con.call("cmd-config", "config-set", {
      yaml: original + "x: " + "[".repeat(100_000) + "\n",
    });
    expectError(deep.final, "invalid-config", /\d+:\d+ nested deeper than 64 levels/);
    const laughing = await con.call("cmd-config", "config-set", { yaml: original + laughs() });
    expectError(laughing.final, "invalid-config", /aliases expand to more than 10000 values/);
    assert.equal(await Deno.readTextFile(gw.configPath), original, "nothing changed");
    await assert.rejects(Deno.stat(`${gw.configPath}.prev`), "no .prev either");

    // Valid: three simulated devices instead of two.
    const next = original.replace("devices: 2", "devices: 3");
    const ok = await con.call("cmd-config", "config-set", {
      yaml: next,
      expectSha256: sha,
      deadline: "20s",
    });
    const result = expectDone(ok.final);
    assert.deepEqual(ok.all.map((r) => r.status), ["accepted", "progress", "progress", "done"]);
    assert.equal(result.sha256, await sha256Hex(next));
    assert.equal(result.prevSha256, sha);
    assert.equal(await Deno.readTextFile(gw.configPath), next);
    assert.equal(await Deno.readTextFile(`${gw.configPath}.prev`), original);
    await waitFor("the third simulated device", async () => {
      const s = await statusOf(gw);
      return "sim-3" in s.devices;
    });
    const after = expectDone((await con.call("cmd-config", "config-get")).final);
    assert.equal(after.sha256, await sha256Hex(next));
    assert.equal(after.prevSha256, sha);

    // The console's view is out of date: refused, nothing changes.
    const stale = await con.call("cmd-config", "config-set", {
      yaml: original,
      expectSha256: sha,
    });
    expectError(stale.final, "conflict", /changed/);
    assert.equal((stale.final.result as { sha256: string }).sha256, await sha256Hex(next));
    assert.equal(await Deno.readTextFile(gw.configPath), next);
    // Refused outright: another gateway id.
    const renamed = await con.call("cmd-config", "config-set", {
      yaml: next.replace("id: cmd-config", "id: cmd-other"),
    });
    expectError(renamed.final, "invalid-config", /gateway\.id cannot be changed/);
    assert.equal((await statusOf(gw)).health.ok, true);
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "config-set of a config the gateway is not healthy with is reverted automatically after the deadline",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const gw = await startCommandGateway(dir, gatewayYaml("cmd-revert", dir, broker));
  try {
    const original = await Deno.readTextFile(gw.configPath);
    // A broker address nothing listens on: valid, but the uplink never connects.
    const unreachable = original.replace(broker.url, `mqtt://127.0.0.1:${freePort()}`);
    const started = Date.now();
    const { final, all } = await con.call("cmd-revert", "config-set", {
      yaml: unreachable,
      deadline: 3000,
    }, { timeoutMs: 40_000 });
    expectError(
      final,
      "reverted",
      /not healthy within 3s \(.*uplink.*\); the previous config is back/,
    );
    assert.ok(Date.now() - started >= 3000);
    assert.deepEqual(all.map((r) => r.status), ["accepted", "progress", "progress", "error"]);
    assert.equal(await Deno.readTextFile(gw.configPath), original);
    assert.equal(await Deno.readTextFile(`${gw.configPath}.prev`), original);
    const s = await statusOf(gw);
    assert.equal(s.uplink.target, broker.url);
    assert.equal(s.uplink.connected, true);
    assert.match(gw.output(), /REVERTING CONFIG/);
    assert.equal(expectDone((await con.call("cmd-revert", "ping")).final).pid, gw.pid);
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});

/** Writes readings with explicit timestamps into a buffer file, as a gateway would have. */
async function seedBuffer(path: string, series: { device: string; metric: string }[]) {
  const config = bufferSchema.check({ path, retention: "60d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  const end = Date.now() - 60_000;
  const start = end - 30 * 86_400_000;
  const step = 10_000;
  let batch: { device: string; metric: string; value: number; unit: string; ts: number }[] = [];
  let i = 0;
  for (let ts = start; ts < end; ts += step, i++) {
    for (const s of series) {
      batch.push({ device: s.device, metric: s.metric, value: (i % 1000) / 10, unit: "kW", ts });
    }
    if (batch.length >= 10_000) {
      await buf.append(batch);
      batch = [];
    }
  }
  if (batch.length) await buf.append(batch);
  buf.close();
  return { start, end, perSeries: i };
}

Deno.test({
  name:
    "query pages return exactly the stored rows of a 30-day buffer (259,200 readings of one device), each page within the size limit",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const path = `${dir}/buffer.db`;
  const seeded = await seedBuffer(path, [
    { device: "meter-1", metric: "power" },
    { device: "meter-2", metric: "power" },
  ]);
  assert.equal(seeded.perSeries, 259_200);
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const gw = await startCommandGateway(
    dir,
    gatewayYaml("cmd-query", dir, broker, "", ["query: { pageBytes: 64KB }"]),
  );
  try {
    const want = [...exportReadings(path, { device: "meter-1" })];
    assert.equal(want.length, 259_200);
    const { final, all } = await con.call("cmd-query", "query", { device: "meter-1" }, {
      timeoutMs: 120_000,
    });
    const done = expectDone(final) as unknown as QueryDone;
    const pages = all.filter((r) => r.status === "page");
    assert.equal(all[0].status, "accepted");
    assert.equal(done.rows, 259_200);
    assert.equal(done.pages, pages.length);
    assert.deepEqual(pages.map((p) => p.page), pages.map((_, i) => i), "pages in order, once each");
    // Progress: the total counted up front, and rows done after each page (not a timestamp).
    assert.equal((all[0].result as { total: number }).total, 259_200);
    let sent = 0;
    for (const p of pages) {
      sent += (p.result as QueryPage).rows.length;
      assert.deepEqual(p.progress, { done: sent, total: 259_200 });
    }
    const rows = pages.flatMap((p) => (p.result as QueryPage).rows.map(queryRowReading));
    assert.equal(rows.length, want.length);
    for (let i = 0; i < want.length; i++) {
      const [a, b] = [rows[i], want[i]];
      if (a.seq !== b.seq || a.ts !== b.ts || a.value !== b.value || a.device !== b.device) {
        assert.fail(`row ${i}: got ${JSON.stringify(a)}, stored ${JSON.stringify(b)}`);
      }
    }
    assert.equal(done.lastSeq, want.at(-1)!.seq);
    assert.equal(done.complete, true);
    const sizes = con.sizes(final.id!);
    assert.ok(Math.max(...sizes) <= 64 * 1024, `largest page ${Math.max(...sizes)} bytes`);
    assert.ok(pages.length >= 130, `${pages.length} pages`);

    // One day in the middle, resumed after a seq, with a limit.
    const from = seeded.start + 10 * 86_400_000;
    const to = from + 86_400_000;
    const day = want.filter((r) => r.ts >= from && r.ts < to);
    const part = await con.call("cmd-query", "query", {
      device: "meter-1",
      metric: "power",
      from: new Date(from).toISOString(),
      to,
      afterSeq: day[99].seq,
      limit: 5000,
      pageRows: 1000,
    });
    const partDone = expectDone(part.final) as unknown as QueryDone;
    const partRows = part.all.filter((r) => r.status === "page")
      .flatMap((p) => (p.result as QueryPage).rows.map((r) => queryRowReading(r).seq));
    assert.deepEqual(partRows, day.slice(100, 5100).map((r) => r.seq));
    assert.equal((part.all[0].result as { total: number }).total, 5000, "the limit caps the total");
    assert.equal(partDone.pages, 5);
    assert.equal(partDone.complete, false);
    const none = await con.call("cmd-query", "query", { device: "no-such-device" });
    assert.deepEqual(expectDone(none.final), { rows: 0, pages: 0, lastSeq: null, complete: true });
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "update-check, update-apply and rollback over MQTT: the new version sends the apply's final reply, the previous one the rollback's",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const channel = `${tmp}/channel/stable`;
  await Deno.mkdir(channel, { recursive: true });
  const keys = await keypair(`${tmp}/keys`);
  const srv = channelServer(channel);
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  // Checks on its own only once, a second after start: every install here is commanded.
  const dev = await device({
    extraYaml: OPERATOR_YAML,
    channelUrl: srv.url,
    pubkeys: [keys.pub],
    broker: broker.url,
    checkInterval: "1h",
    healthDeadline: "20s",
  });
  const ask = (cmd: string, args?: Record<string, unknown>, timeoutMs = 20_000) =>
    con.call(dev.id, cmd, args, { timeoutMs }).catch(async (e) => {
      throw new Error(`${e.message}\n--- gateway log ---\n${await Deno.readTextFile(dev.log)}`);
    });
  try {
    await dev.boot();
    // Answering, and past its own first check (nothing published yet).
    await waitFor(
      "the gateway's own first update check",
      async () => {
        const r = await con.call(dev.id, "status", undefined, { timeoutMs: 1000 }).catch(() =>
          null
        );
        const u = (r?.final.result as { update?: { lastCheck?: unknown } } | undefined)?.update;
        return u?.lastCheck !== undefined;
      },
      60_000,
      100,
    );
    assert.equal(expectDone((await ask("ping")).final).version, VERSIONS.base);
    expectError((await ask("rollback")).final, "unavailable", /no previous version/);

    await publish(channel, a.good, VERSIONS.good, [keys.key]);
    const check = expectDone((await ask("update-check")).final);
    assert.equal(check.available, true);
    assert.equal(check.version, VERSIONS.good);
    assert.equal(check.running, VERSIONS.base);
    expectError(
      (await ask("update-apply", { version: "9.9.9" })).final,
      "failed",
      /offers 2\.0\.0, not 9\.9\.9/,
    );
    assert.equal(await dev.slots.active(), "a", "a refused apply changes nothing");

    // A rollback while an update-apply is downloading is not "busy": it stops the download (the
    // apply fails saying so) and answers the truth (here: no previous version yet).
    const stall = srv.stallNext();
    const stalledApply = ask("update-apply", { version: VERSIONS.good }, 60_000);
    await stall.sent;
    expectError((await ask("rollback")).final, "unavailable", /no previous version/);
    const stopped = (await stalledApply).final;
    assert.equal(stopped.status, "error", JSON.stringify(stopped));
    assert.match(stopped.error!.message, /rollback was requested/);
    assert.equal(await dev.slots.active(), "a", "the stopped apply changed nothing");

    const apply = await ask("update-apply", { version: VERSIONS.good }, 90_000);
    // A download that takes over a second also reports the bytes so far in further progress.
    assert.match(apply.all.map((r) => r.status).join(","), /^accepted,progress(,progress)+,done$/);
    const applied = expectDone(apply.final);
    assert.equal(applied.version, VERSIONS.good, "the final reply comes from the new version");
    assert.equal(applied.from, VERSIONS.base);
    let state = await dev.slots.readState();
    assert.equal(state.phase, "committed");
    assert.deepEqual(state.committed, { slot: "b", version: VERSIONS.good });
    assert.equal(expectDone((await ask("ping")).final).version, VERSIONS.good);

    const rollback = await ask("rollback", undefined, 90_000);
    assert.deepEqual(rollback.all.map((r) => r.status), ["accepted", "progress", "done"]);
    assert.deepEqual(rollback.all[0].result, {
      from: VERSIONS.good,
      to: VERSIONS.base,
      slot: "a",
    });
    assert.equal(expectDone(rollback.final).version, VERSIONS.base);
    state = await dev.slots.readState();
    assert.deepEqual(state.committed, { slot: "a", version: VERSIONS.base });
    assert.equal(state.lastRollback?.version, VERSIONS.good);
    assert.match(state.lastRollback!.reason, /by remote command/);
    assert.equal(await dev.slots.active(), "a");
    assert.equal(expectDone((await ask("ping")).final).version, VERSIONS.base);
    // The version rolled back from is not offered again.
    const again = expectDone((await ask("update-check")).final);
    assert.equal(again.available, false);
    assert.equal(again.result, "skipped");
  } finally {
    await dev.close();
    await srv.close();
    await con.close();
    await broker.stop();
  }
});

/**
 * A device that installed 2.0.0 by itself, then restarted with the updater told to hold at `step`
 * of its next trial (see src/update/_test_hooks.ts): the trial a rollback command starts.
 */
async function rollbackRig(
  broker: Broker,
  con: Console,
  tmp: string,
  keys: { key: string; pub: string },
  step: "switch" | "trial",
) {
  const a = await artifacts();
  const channel = await Deno.makeTempDir({ dir: tmp, prefix: "channel-" });
  const hold = await Deno.makeTempDir({ dir: tmp, prefix: "hold-" });
  await publish(channel, a.good, VERSIONS.good, [keys.key]);
  const srv = channelServer(channel);
  // Checks once, a second after each start: enough to install 2.0.0 and to reinstall it after
  // the rollback, were it not recorded as rolled back.
  const dev = await device({
    extraYaml: OPERATOR_YAML,
    channelUrl: srv.url,
    pubkeys: [keys.pub],
    broker: broker.url,
    checkInterval: "1h",
  });
  const committedOn = (version: string) => async () => {
    const s = await dev.status().catch(() => undefined);
    return s?.version === version && s.update.phase === "committed" &&
      s.update.committed.version === version && !!s.uplink?.connected;
  };
  const answering = (version: string) =>
    waitFor(
      `${dev.id}: ${version} answering commands`,
      async () => {
        const r = await con.call(dev.id, "ping", undefined, { timeoutMs: 1000 }).catch(() => null);
        return r?.final.status === "done" && r.final.result &&
          (r.final.result as { version?: string }).version === version;
      },
      60_000,
      100,
    );
  // From the first start, so that it sees every reading the buffer ever held.
  const sub = await dev.subscriber();
  await dev.boot();
  await waitFor(`${dev.id}: 2.0.0 installed by itself`, committedOn(VERSIONS.good), 90_000, 100);
  await dev.powerCut();
  await dev.boot({ OUTPOST_TEST_HOLD: `${step}:${hold}` });
  await waitFor(`${dev.id}: 2.0.0 back`, committedOn(VERSIONS.good), 60_000, 100);
  await answering(VERSIONS.good);
  return { dev, srv, sub, hold, answering };
}

/** Sends `rollback` and waits until the updater holds at `step` of the trial it started. */
async function rollbackHeld(
  con: Console,
  r: { dev: Device; hold: string },
  step: string,
): Promise<string> {
  const id = crypto.randomUUID();
  await con.request(
    r.dev.id,
    "rollback",
    await signRequest(OPERATOR, "rollback", r.dev.id, { id }),
  );
  await waitFor(
    `${r.dev.id}: the rollback's trial held at "${step}"`,
    () => Deno.stat(`${r.hold}/held-${step}`),
    60_000,
    50,
  ).catch(async (e) => {
    throw new Error(`${e.message}\n--- gateway log ---\n${await Deno.readTextFile(r.dev.log)}`);
  });
  assert.deepEqual(con.replies(id).map((x) => x.status), ["accepted", "progress"]);
  return id;
}

/** SIGKILL of the unit while the rolled-back-to version runs on trial: it concludes the trial
 * itself after the restart, commits, and the version rolled back from is not installed again. */
async function rollbackCutDuringTrial(
  broker: Broker,
  con: Console,
  tmp: string,
  keys: { key: string; pub: string },
) {
  const r = await rollbackRig(broker, con, tmp, keys, "trial");
  const { dev } = r;
  try {
    const id = await rollbackHeld(con, r, "trial");
    await dev.waitStatus("the trial child (1.1.0) serving", (s) => s.version === VERSIONS.base);
    const st = await dev.slots.readState();
    assert.equal(st.phase, "trial");
    assert.equal(st.trial?.version, VERSIONS.base);
    assert.equal(st.trial?.rollback?.from, VERSIONS.good);
    assert.equal(await dev.slots.active(), "a");
    assert.match(await Deno.readTextFile(`${dev.slots.root}/trial.env`), /^MAX_ATTEMPTS=3$/m);
    const rows = (await dev.status()).buffer.rows;
    await dev.powerCut();
    const before = bufferContents(dev.buffer);
    assert.ok(before.size >= rows, `${before.size} readings after the cut, ${rows} before`);
    assert.equal(con.replies(id).some((x) => x.final), false, "no verdict before the cut");

    await dev.boot();
    const final = await con.final(id, 90_000).catch(async (e) => {
      throw new Error(`${e.message}\n--- gateway log ---\n${await Deno.readTextFile(dev.log)}`);
    });
    const done = expectDone(final);
    assert.equal(done.version, VERSIONS.base, "the final reply comes from the previous version");
    assert.equal(done.from, VERSIONS.good);
    const state = await dev.slots.readState();
    assert.equal(state.phase, "committed");
    assert.deepEqual(state.committed, { slot: "a", version: VERSIONS.base });
    assert.equal(state.lastRollback?.version, VERSIONS.good);
    assert.match(state.lastRollback!.reason, new RegExp(`by remote command ${id}`));
    assert.deepEqual(
      [state.history[0].result, state.history[0].version],
      ["rolled-back", VERSIONS.good],
    );
    assert.equal(await dev.slots.active(), "a");
    const log = await Deno.readTextFile(dev.log);
    assert.match(log, /outpost-guard: start 2 of at most 3 of the version on trial/);
    assert.match(log, /this version is on trial after a restart; it must become healthy/);
    for (const f of ["trial.env", "trial-boots"]) {
      assert.equal(await Deno.lstat(`${dev.slots.root}/${f}`).then(() => f, () => null), null);
    }
    await assertFlowing(dev, r.sub, before);
    // 2.0.0 is still offered; it is not installed again.
    const check = expectDone((await con.call(dev.id, "update-check")).final);
    assert.equal(check.available, false);
    assert.equal(check.result, "skipped");
    const apply = expectDone(
      (await con.call(dev.id, "update-apply", undefined, {
        timeoutMs: 60_000,
      })).final,
    );
    assert.equal(apply.applied, false);
    assert.equal(apply.result, "skipped");
    assert.equal((await dev.status()).version, VERSIONS.base);
    assert.equal(await dev.slots.active(), "a");
  } finally {
    await dev.close();
    await r.srv.close();
  }
}

/** SIGKILL after the rollback's trial state is written, before `current` moved: the previous
 * version never ran, so nothing changes; 2.0.0 runs on, answers, and is not marked rolled back. */
async function rollbackCutBeforeSwitch(
  broker: Broker,
  con: Console,
  tmp: string,
  keys: { key: string; pub: string },
) {
  const r = await rollbackRig(broker, con, tmp, keys, "switch");
  const { dev } = r;
  try {
    const id = await rollbackHeld(con, r, "switch");
    const st = await dev.slots.readState();
    assert.equal(st.phase, "trial");
    assert.equal(st.trial?.rollback?.from, VERSIONS.good);
    assert.equal(await dev.slots.active(), "b");
    await dev.powerCut();

    await dev.boot();
    expectError(
      await con.final(id, 60_000),
      "failed",
      /1\.1\.0 did not take over: rollback to 1\.1\.0 interrupted: restarted before 1\.1\.0 ran on trial; 2\.0\.0 keeps running/,
    );
    const state = await dev.slots.readState();
    assert.equal(state.phase, "committed");
    assert.deepEqual(state.committed, { slot: "b", version: VERSIONS.good });
    assert.equal(state.lastRollback, undefined, "the rollback never happened");
    assert.equal(state.history[0].result, "interrupted");
    assert.equal(await dev.slots.active(), "b");
    await r.answering(VERSIONS.good);
    const check = expectDone((await con.call(dev.id, "update-check")).final);
    assert.equal(check.result, "current");
  } finally {
    await dev.close();
    await r.srv.close();
  }
}

Deno.test({
  name:
    "a rollback command cut short by SIGKILL ends after the restart: during its trial the previous version commits and the one rolled back from is not installed again; before the switch nothing changes",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const [keys, broker] = await Promise.all([
    keypair(`${tmp}/keys`),
    startMosquitto(),
    artifacts(),
  ]);
  const con = await openConsole(broker.url);
  try {
    await Promise.all([
      rollbackCutDuringTrial(broker, con, tmp, keys),
      rollbackCutBeforeSwitch(broker, con, tmp, keys),
    ]);
  } finally {
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "a config-set whose watch a SIGKILL cut short is judged again when the gateway starts, and reverted",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  let gw = await startCommandGateway(dir, gatewayYaml("cmd-crash", dir, broker));
  try {
    const original = await Deno.readTextFile(gw.configPath);
    const unreachable = original.replace(broker.url, `mqtt://127.0.0.1:${freePort()}`);
    const id = crypto.randomUUID();
    await con.request(
      "cmd-crash",
      "config-set",
      await signRequest(OPERATOR, "config-set", "cmd-crash", {
        id,
        args: { yaml: unreachable, deadline: 4000 },
      }),
    );
    await waitFor(
      "the new config written",
      async () => (await Deno.readTextFile(gw.configPath)) === unreachable,
    );
    const pending = JSON.parse(await Deno.readTextFile(`${dir}/commands-state.json`));
    assert.equal(pending.pending[0]?.id, id, "the watch is recorded before anything changes");
    await gw.kill();
    assert.equal(con.replies(id).at(-1)?.final ?? false, false, "no verdict before the kill");

    // The file on disk now points at a broker nobody runs; the next start watches it again.
    const httpPort = gw.httpPort;
    // startGateway adds the same http section again: the file stays byte for byte what was set.
    const given = unreachable.replace(/\nhttp:\n {2}listen: 127\.0\.0\.1:\d+\n$/, "");
    gw = await startGateway(dir, given, { httpPort });
    assert.equal(await Deno.readTextFile(gw.configPath), unreachable);
    const final = await con.final(id, 40_000);
    expectError(final, "reverted", /not healthy within 4s/);
    assert.equal(await Deno.readTextFile(gw.configPath), original);
    await waitForSubscribed(gw);
    assert.equal(expectDone((await con.call("cmd-crash", "ping")).final).pid, gw.pid);
    assert.match(gw.output(), /a config-set was not judged before the gateway stopped/);
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});
