/**
 * Remote commands end to end: a real Mosquitto, real gateway processes (simulated adapter), and a
 * test console that publishes requests and reads the replies, as the fleet console does.
 */
import assert from "node:assert/strict";
import { laughs } from "./helpers/hostile.ts";
import { type CommandRequest, sha256Hex, signRequest } from "../src/protocol/mod.ts";
import { readSigningKey } from "../src/update/keys.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { subscribe } from "./helpers/subscriber.ts";
import {
  commandRig,
  expectDone,
  expectError,
  gatewayYaml,
  openConsole,
  OPERATOR,
  startCommandGateway,
  statusOf,
} from "./helpers/commands.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test({
  name:
    "ping, status, logs and config-get answer on the gateway and fleet topics; bad requests get error replies and the gateway keeps serving",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const rig = await commandRig("cmd-basic", {
    commands: [
      "allow: [ping, status, logs, config-get, query, update-check, update-apply, rollback]",
    ],
  });
  const { con, gw } = rig;
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
    await rig.close();
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
  const rig = await commandRig("cmd-config");
  const { con, gw } = rig;
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
    await rig.close();
  }
});

Deno.test({
  name:
    "config-set of a config the gateway is not healthy with is reverted automatically after the deadline",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const rig = await commandRig("cmd-revert");
  const { broker, con, gw } = rig;
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
    await rig.close();
  }
});

/** Writes readings with explicit timestamps into a buffer file, as a gateway would have. */
