/**
 * The control plane of remote commands under attack: a real Mosquitto and real gateway
 * processes. Someone who can only publish on the broker replays every attack against the default
 * config and changes nothing; operators with signed requests get exactly their scopes; a remote
 * config-set never changes a trust anchor, even when signed by an admin key.
 */
import assert from "node:assert/strict";
import mqtt, { type MqttClient } from "mqtt";
import {
  type CommandReply,
  type CommandRequest,
  sha256Hex,
  signRequest,
} from "../src/protocol/mod.ts";
import { generateKey, importSigningKey, type SigningKey } from "../src/update/keys.ts";
import { Slots } from "../src/update/mod.ts";
import { VERSION } from "../src/version.ts";
import { type GatewayProcess, startGateway } from "./helpers/gateway.ts";
import { type Broker, startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Publishes requests and collects replies by id, as any client on the broker can. */
interface Client {
  mqtt: MqttClient;
  replies(id: string): CommandReply[];
  /** Sends `cmd` to `target` (signed with `key` when given) and waits for the final reply. */
  call(
    target: string,
    cmd: string,
    args?: Record<string, unknown>,
    o?: { key?: SigningKey; tweak?: (req: CommandRequest) => Promise<void> | void },
  ): Promise<CommandReply>;
  /** Publishes a request as given and waits for its final reply. */
  send(target: string, cmd: string, req: CommandRequest): Promise<CommandReply>;
  close(): Promise<void>;
}

async function connect(url: string): Promise<Client> {
  const client = await mqtt.connectAsync(url, {
    clientId: `attacker-${crypto.randomUUID().slice(0, 8)}`,
  });
  const byId = new Map<string, CommandReply[]>();
  client.on("message", (_t, payload) => {
    const r = JSON.parse(payload.toString()) as CommandReply;
    if (r.id !== null) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
  });
  await client.subscribeAsync("gateways/+/reply", { qos: 1 });
  const c: Client = {
    mqtt: client,
    replies: (id) => byId.get(id) ?? [],
    send: async (target, cmd, req) => {
      const before = c.replies(req.id).filter((r) => r.final).length;
      await client.publishAsync(`gateways/${target}/cmd/${cmd}`, JSON.stringify(req), { qos: 1 });
      return await waitFor(
        `the final reply to ${cmd} ${req.id}`,
        () => c.replies(req.id).filter((r) => r.final)[before],
        30_000,
      );
    },
    call: async (target, cmd, args, o = {}) => {
      const req: CommandRequest = { id: crypto.randomUUID(), ...(args ? { args } : {}) };
      if (o.key) await signRequest(o.key, cmd, target, req);
      await o.tweak?.(req);
      return await c.send(target, cmd, req);
    },
    close: () => client.endAsync(true),
  };
  return c;
}

function refused(r: CommandReply, code: string, message?: RegExp): void {
  assert.equal(r.status, "error", JSON.stringify(r));
  assert.equal(r.error?.code, code, JSON.stringify(r));
  if (message) assert.match(r.error!.message, message);
  if (code !== "protected") assert.equal(r.result, undefined, "a refusal carries no data");
}

function done(r: CommandReply): Record<string, unknown> {
  assert.equal(r.status, "done", JSON.stringify(r));
  return r.result as Record<string, unknown>;
}

async function waitSubscribed(gw: GatewayProcess): Promise<void> {
  await waitFor(
    "request topics subscribed",
    async () => {
      const s = await gw.status() as { commands?: { subscribed?: boolean } };
      return s.commands?.subscribed === true;
    },
    30_000,
    50,
  ).catch((e) => {
    throw new Error(`${e.message}\n--- gateway output ---\n${gw.output()}`);
  });
}

async function startedAt(gw: GatewayProcess): Promise<{ pid: number; startedAt: number }> {
  const s = await gw.status() as unknown as { pid: number; startedAt: number };
  return { pid: s.pid, startedAt: s.startedAt };
}

/** A gateway config with self-update on (a local channel nobody serves) and `extra` sections. */
async function baseYaml(id: string, dir: string, broker: Broker, extra = ""): Promise<string> {
  await Deno.writeTextFile(`${dir}/artifact`, "#!/bin/sh\necho not a release\n");
  await new Slots(`${dir}/opt`).init(`${dir}/artifact`, VERSION);
  const release = await generateKey();
  return `gateway: { id: ${id}, site: plant 3 }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 100ms, max: 500ms }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 200ms }
update:
  channel: http://127.0.0.1:${freePort()}/stable/
  allowInsecure: true
  installRoot: ${dir}/opt
  checkInterval: 24h
  trustedKeys: ["${release.public}"]
${extra}`;
}

/** The attacks of the issue as config-set payloads built from the file on the gateway. */
function attacks(original: string, dir: string, attackerKey: string) {
  const marker = `${dir}/pwned`;
  return {
    marker,
    exec: original.replace(
      "adapters:\n",
      `adapters:\n  - type: exec\n    name: probe\n    command: /bin/sh\n    args: ["-c", "touch ${marker}; sleep 60"]\n`,
    ),
    fileRef: original.replace("site: plant 3", `site: "\${file:${dir}/secret}"`),
    envRef: original.replace("site: plant 3", 'site: "${HOME}"'),
    channel: original.replace(/channel: \S+/, "channel: https://attacker.invalid/stable/"),
    trustedKeys: original.replace(/trustedKeys: \[.*\]/, `trustedKeys: ["${attackerKey}"]`),
  };
}

Deno.test({
  name:
    "a broker-only attacker against the default config: config-set (exec adapter, ${file:}, update channel and keys), query, config-get, logs, status and a fleet restart are all refused and change nothing",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-attack-" });
  await Deno.writeTextFile(`${dir}/secret`, "root:$6$planted-secret-hash:19000:0:99999:7:::\n");
  const broker = await startMosquitto();
  const attacker = await connect(broker.url);
  const gw = await startGateway(dir, await baseYaml("victim", dir, broker));
  try {
    await waitSubscribed(gw);
    const original = await Deno.readTextFile(gw.configPath);
    const sha = await sha256Hex(original);
    const before = await startedAt(gw);
    const rogue = await generateKey();
    const a = attacks(original, dir, rogue.public);

    for (const yaml of [a.exec, a.fileRef, a.envRef, a.channel, a.trustedKeys]) {
      refused(
        await attacker.call("victim", "config-set", { yaml }),
        "unsigned",
        /missing signature/,
      );
    }
    // Signed by a key the gateway does not know: no better.
    const rogueKey = await importSigningKey(rogue);
    refused(
      await attacker.call("victim", "config-set", { yaml: a.exec }, { key: rogueKey }),
      "unknown-key",
    );
    for (const cmd of ["query", "config-get", "logs", "status", "update-apply", "rollback"]) {
      const args = cmd === "query" ? { device: "sim-1" } : undefined;
      refused(await attacker.call("victim", cmd, args), "unsigned");
      refused(await attacker.call("fleet", cmd, args), "unsigned");
    }
    refused(await attacker.call("fleet", "restart"), "unsigned");
    refused(await attacker.call("victim", "restart"), "unsigned");
    // ping stays open and says no more than the retained status.
    const pong = done(await attacker.call("victim", "ping"));
    assert.equal(pong.pong, true);
    assert.equal(pong.operator, null);

    assert.equal(await Deno.readTextFile(gw.configPath), original, "config file unchanged");
    assert.equal(await sha256Hex(await Deno.readTextFile(gw.configPath)), sha);
    await assert.rejects(Deno.stat(`${gw.configPath}.prev`), "no config-set ran");
    await assert.rejects(Deno.stat(a.marker), "the exec adapter never ran");
    assert.deepEqual(await startedAt(gw), before, "no restart");

    // Counted in /metrics by reason, logged, and in the audit trail (token required).
    const metrics = await (await gw.get("/metrics")).text();
    const unsigned = Number(
      /outpost_commands_refused_total\{reason="unsigned"\} (\d+)/
        .exec(metrics)?.[1],
    );
    assert.equal(unsigned, 5 + 12 + 2);
    assert.match(metrics, /outpost_commands_refused_total\{reason="unknown-key"\} 1/);
    assert.match(gw.output(), /no commands\.operatorKeys: every remote command except ping/);
    assert.match(gw.output(), /command config-set refused.*result=unsigned/);
    const anonymous = await fetch(`http://127.0.0.1:${gw.httpPort}/audit`);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const audit = (await (await gw.get("/audit?n=1000")).json()).audit as {
      cmd: string;
      target: string;
      keyid: string | null;
      verified: boolean;
      result: string;
      ts: number;
    }[];
    assert.equal(audit.length, 5 + 1 + 12 + 2 + 1);
    assert.deepEqual(audit[0], { ...audit[0], cmd: "config-set", target: "victim", keyid: null });
    assert.equal(audit[0].result, "unsigned");
    assert.equal(audit[5].keyid, rogueKey.keyid);
    assert.equal(audit[5].verified, false);
    assert.equal(audit[5].result, "unknown-key");
    assert.ok(audit.some((e) => e.cmd === "restart" && e.target === "fleet"));
    assert.equal(audit.at(-1)!.cmd, "ping");
    assert.equal(audit.at(-1)!.result, "done");
    assert.doesNotMatch(gw.output(), /planted-secret-hash/);

    // A flood: every request is answered and counted, but only 60 refusals a minute are written
    // out one by one (journal and audit file).
    await Promise.all(Array.from({ length: 60 }, () => attacker.call("victim", "status")));
    const flooded = await (await gw.get("/metrics")).text();
    assert.match(flooded, /outpost_commands_refused_total\{reason="unsigned"\} 79\n/);
    const rows = (await (await gw.get("/audit?n=1000")).json()).audit as unknown[];
    assert.equal(rows.length, 60 + 1, "60 refusals and the ping");
    assert.match(gw.output(), /60 refusals this minute: further ones are only counted/);
    assert.equal(gw.output().match(/command status refused/g)?.length, 2 + (60 - 20));
  } finally {
    await gw.kill();
    await attacker.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "signed commands run with their key's scopes: read cannot restart or config-set, operate restarts the fleet, admin config-sets but never a trust anchor; replayed, expired, cross-gateway and cross-command signatures fail",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-scopes-" });
  await Deno.writeTextFile(`${dir}/secret`, "planted-secret-value\n");
  const files = {
    reader: await generateKey(),
    ops: await generateKey(),
    admin: await generateKey(),
  };
  const reader = await importSigningKey(files.reader);
  const ops = await importSigningKey(files.ops);
  const admin = await importSigningKey(files.admin);
  const broker = await startMosquitto();
  const client = await connect(broker.url);
  const commands = `commands:
  operatorKeys:
    - "${files.reader.public}"
    - { key: "${files.ops.public}", scopes: [read, operate], name: ops }
    - { key: "${files.admin.public}", scopes: [read, operate, admin], name: alice }
  replayWindow: 1m
`;
  const gw = await startGateway(dir, await baseYaml("scoped", dir, broker, commands));
  try {
    await waitSubscribed(gw);
    const original = await Deno.readTextFile(gw.configPath);

    // read (a plain key string is read-only): data, but no restart, update or config-set.
    const pong = done(await client.call("scoped", "ping", undefined, { key: reader }));
    assert.deepEqual(pong.operator, { keyid: reader.keyid, scopes: ["read"] });
    assert.equal(
      done(await client.call("scoped", "status", undefined, { key: reader })).gatewayId,
      "scoped",
    );
    assert.equal(
      done(await client.call("scoped", "config-get", undefined, { key: reader })).yaml,
      original,
    );
    done(await client.call("scoped", "query", { device: "sim-1", limit: 5 }, { key: reader }));
    done(await client.call("scoped", "logs", { lines: 10 }, { key: reader }));
    refused(
      await client.call("scoped", "restart", undefined, { key: reader }),
      "forbidden",
      /needs the operate scope; operator key \w+ has read/,
    );
    refused(await client.call("fleet", "update-apply", undefined, { key: reader }), "forbidden");
    refused(
      await client.call("scoped", "config-set", { yaml: original }, { key: ops }),
      "forbidden",
      /needs the admin scope; operator key "ops" \(\w+\) has read, operate/,
    );

    // admin: a plain change applies; trust anchors never, whoever signs.
    const a = attacks(original, dir, files.reader.public);
    const cases: [string, RegExp][] = [
      [a.exec, /adapters\[name=probe\] \(adding an exec adapter/],
      [a.fileRef, /gateway\.site \(the reference \$\{file:/],
      [a.envRef, /gateway\.site \(the reference \$\{HOME\}/],
      [a.channel, /update\.channel/],
      [a.trustedKeys, /update\.trustedKeys/],
      [
        original.replace("replayWindow: 1m", "replayWindow: 1m\n  insecureUnsigned: true"),
        /commands\.insecureUnsigned/,
      ],
      [
        original.replace(
          `"${files.reader.public}"`,
          `{ key: "${files.reader.public}", scopes: [admin] }`,
        ),
        /commands\.operatorKeys/,
      ],
    ];
    for (const [yaml, named] of cases) {
      const r = await client.call("scoped", "config-set", { yaml }, { key: admin });
      refused(r, "protected", named);
      assert.match(r.error!.message, /nothing changed/);
    }
    assert.equal(await Deno.readTextFile(gw.configPath), original);
    await assert.rejects(Deno.stat(`${dir}/pwned`));
    const site = original.replace("site: plant 3", "site: plant 4");
    const set = done(
      await client.call("scoped", "config-set", { yaml: site, deadline: "20s" }, { key: admin }),
    );
    assert.equal(set.changed, true);
    assert.equal(await Deno.readTextFile(gw.configPath), site);

    // Signatures bind command, target, id, ts and args.
    const req: CommandRequest = { id: crypto.randomUUID(), args: { lines: 5 } };
    await signRequest(reader, "logs", "scoped", req);
    done(await client.send("scoped", "logs", req));
    refused(await client.send("scoped", "logs", req), "replayed", /already received/);
    refused(
      await client.send("scoped", "logs", { ...req, id: crypto.randomUUID() }),
      "bad-signature",
    );
    refused(
      await client.send("scoped", "config-get", { ...req, args: undefined }),
      "bad-signature",
      /does not verify/,
    );
    const other: CommandRequest = { id: crypto.randomUUID() };
    await signRequest(ops, "restart", "another-gateway", other);
    refused(await client.send("scoped", "restart", other), "bad-signature");
    refused(await client.send("fleet", "restart", other), "bad-signature");
    const cmd: CommandRequest = { id: crypto.randomUUID() };
    await signRequest(ops, "ping", "scoped", cmd);
    refused(await client.send("scoped", "restart", cmd), "bad-signature");
    refused(
      await client.call("scoped", "status", undefined, {
        tweak: async (r) => {
          r.ts = Date.now() - 5 * 60_000;
          await signRequest(reader, "status", "scoped", r);
        },
      }),
      "expired",
      /outside the replay window of 60s/,
    );
    refused(
      await client.call("scoped", "status", undefined, {
        tweak: (r) => {
          r.keyid = reader.keyid;
          r.ts = Date.now();
          r.sig = "AAAA";
        },
      }),
      "bad-signature",
    );

    // operate: a fleet-wide restart runs.
    const before = await startedAt(gw);
    const restart = await client.call("fleet", "restart", undefined, { key: ops });
    assert.equal(restart.status, "done", JSON.stringify(restart));
    assert.notEqual((restart.result as { startedAt: number }).startedAt, before.startedAt);

    // The audit trail names each key and outcome; logs {audit: true} serves it to read keys.
    await waitSubscribed(gw);
    const trail = done(
      await client.call("scoped", "logs", { audit: true, lines: 500 }, { key: reader }),
    ).audit as { cmd: string; keyid: string | null; key?: string; result: string }[];
    assert.ok(
      trail.some((e) =>
        e.cmd === "restart" && e.keyid === reader.keyid && e.result === "forbidden"
      ),
    );
    assert.ok(
      trail.some((e) => e.cmd === "config-set" && e.key === "alice" && e.result === "protected"),
    );
    assert.ok(
      trail.some((e) => e.cmd === "config-set" && e.key === "alice" && e.result === "done"),
    );
    const restarts = trail.filter((e) => e.cmd === "restart" && e.key === "ops");
    assert.deepEqual(restarts.map((e) => [e.keyid, e.result]), [
      [ops.keyid, "accepted"],
      [ops.keyid, "done"],
    ]);
    const metrics = await (await gw.get("/metrics")).text();
    for (const reason of ["forbidden", "bad-signature", "replayed", "expired"]) {
      assert.match(
        metrics,
        new RegExp(`outpost_commands_refused_total\\{reason="${reason}"\\} \\d`),
      );
    }
    assert.doesNotMatch(gw.output(), /planted-secret-value/);
  } finally {
    await gw.kill();
    await client.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "commands.insecureUnsigned: true accepts unsigned commands and says so loudly at start and at every reload; requireSignature: false is a config error",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-insecure-" });
  const broker = await startMosquitto();
  const client = await connect(broker.url);
  const gw = await startGateway(
    dir,
    await baseYaml("lab", dir, broker, "commands: { insecureUnsigned: true }\n"),
  );
  try {
    await waitSubscribed(gw);
    assert.equal(done(await client.call("lab", "status")).gatewayId, "lab");
    const warning = /WARN.*INSECURE: commands\.insecureUnsigned is true/g;
    assert.equal(gw.output().match(warning)?.length, 1);
    Deno.kill(gw.pid, "SIGHUP");
    await waitFor(
      "the warning again after a reload",
      () => gw.output().match(warning)?.length === 2,
    );
  } finally {
    await gw.kill();
    await client.close();
    await broker.stop();
  }
  await Deno.writeTextFile(
    `${dir}/old.yaml`,
    `gateway: { id: old }\nuplink: { type: mqtt, url: ${broker.url} }\ncommands:\n  requireSignature: false\n`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "check-config", `${dir}/old.yaml`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /old\.yaml:4:\d+ commands\.requireSignature: requireSignature was removed.*commands\.insecureUnsigned: true/,
  );
});

/** The Mosquitto acl_file docs/security.md gives (the code block after "A Mosquitto `acl_file`"). */
async function readmeAcl(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../docs/security.md", import.meta.url));
  const at = readme.indexOf("A Mosquitto `acl_file`");
  assert.ok(at > 0, "docs/security.md has the ACL example");
  const block = /```\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, "the ACL example is a code block");
  return block[1];
}

Deno.test({
  name:
    "the Mosquitto ACL of docs/security.md confines a gateway to its own topics: another gateway's identity cannot fake its status or replies, nor send it commands; the gateway and the console work under it",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-acl-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/acl`, await readmeAcl());
  await Deno.chmod(`${dir}/acl`, 0o644);
  const broker = await startMosquitto({ extra: [`acl_file ${dir}/acl`] });
  const opsFile = await generateKey();
  const ops = await importSigningKey(opsFile);
  const as = (username: string) =>
    mqtt.connectAsync(broker.url, { clientId: `${username}-${crypto.randomUUID()}`, username });
  const cloud = await as("cloud");
  const seen: string[] = [];
  cloud.on("message", (topic, payload) => seen.push(`${topic} ${payload}`));
  await cloud.subscribeAsync("gateways/#", { qos: 1 });
  const gw = await startGateway(
    dir,
    (await baseYaml(
      "gw-a",
      dir,
      broker,
      `commands:
  operatorKeys: [{ key: "${opsFile.public}", scopes: [read, operate], name: ops }]
`,
    )).replace("  reconnect:", "  username: gw-a\n  reconnect:"),
  );
  const intruder = await as("gw-b");
  const operator = await as("ops");
  const opsReplies: CommandReply[] = [];
  operator.on("message", (_t, p) => opsReplies.push(JSON.parse(p.toString())));
  try {
    await waitSubscribed(gw);
    await waitFor(
      "gw-a's status at the cloud",
      () => seen.some((m) => m.startsWith("gateways/gw-a/status")),
    );
    // Another gateway's identity: fake status, fake reply, a request. The broker drops them all.
    await intruder.publishAsync(
      "gateways/gw-a/status",
      JSON.stringify({ gatewayId: "gw-a", state: "offline", reason: "FAKE-STATUS" }),
      { qos: 1, retain: true },
    );
    await intruder.publishAsync(
      "gateways/gw-a/reply",
      JSON.stringify({
        id: "x",
        gatewayId: "gw-a",
        cmd: "ping",
        status: "done",
        final: true,
        result: "FAKE-REPLY",
      }),
      { qos: 1 },
    );
    await intruder.publishAsync("gateways/gw-a/cmd/ping", JSON.stringify({ id: "INTRUDER-PING" }), {
      qos: 1,
    });
    await intruder.publishAsync(
      "gateways/fleet/cmd/ping",
      JSON.stringify({ id: "INTRUDER-FLEET" }),
      {
        qos: 1,
      },
    );
    // The operator: a signed ping goes through, and its reply comes back.
    await operator.subscribeAsync("gateways/+/reply", { qos: 1 });
    const req = await signRequest(ops, "ping", "gw-a", { id: crypto.randomUUID() });
    await operator.publishAsync("gateways/gw-a/cmd/ping", JSON.stringify(req), { qos: 1 });
    const pong = await waitFor(
      "the operator's pong",
      () => opsReplies.find((r) => r.id === req.id && r.final),
    );
    assert.deepEqual((pong.result as { operator: unknown }).operator, {
      keyid: ops.keyid,
      name: "ops",
      scopes: ["read", "operate"],
    });
    // The intruder's messages were acknowledged before the operator's ping was sent: Mosquitto
    // would have handed them to the cloud before the pong.
    await waitFor("the pong at the cloud", () => seen.some((m) => m.includes(req.id)));
    assert.ok(!seen.some((m) => /FAKE-STATUS|FAKE-REPLY|INTRUDER/.test(m)), seen.join("\n"));
    const audit = (await (await gw.get("/audit")).json()).audit as { id: string }[];
    assert.deepEqual(audit.map((e) => e.id), [req.id], "no intruder request reached the gateway");
    // The retained status is still the gateway's own.
    const fresh = await as("cloud");
    const retained: string[] = [];
    fresh.on("message", (t, p) => retained.push(`${t} ${p}`));
    await fresh.subscribeAsync("gateways/gw-a/status", { qos: 1 });
    await waitFor("the retained status", () => retained.length > 0);
    assert.match(retained[0], /"state":"online"/);
    await fresh.endAsync(true);
  } finally {
    await gw.kill();
    await Promise.all([cloud, intruder, operator].map((c) => c.endAsync(true)));
    await broker.stop();
  }
});
