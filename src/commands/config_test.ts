import assert from "node:assert/strict";
import { gatewaySchema } from "../config/gateway.ts";
import { ConfigError, parseConfig } from "../config/load.ts";
import { commandsOf } from "./config.ts";
import { parseRequest } from "./service.ts";
import { CommandState } from "./state.ts";

const schema = gatewaySchema({});

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, schema);
  } catch (e) {
    if (e instanceof ConfigError) {
      return e.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`);
    }
    throw e;
  }
  return [];
}

Deno.test("commands are on by default with an mqtt uplink, off without one or when disabled", () => {
  const mqtt = parseConfig(
    "gateway: { id: a }\nuplink: { type: mqtt, url: mqtt://h:1883 }",
    schema,
  );
  assert.equal(commandsOf(mqtt)?.prefix, "gateways");
  assert.equal(commandsOf(mqtt)?.insecureUnsigned, false);
  assert.deepEqual(commandsOf(mqtt)?.operatorKeys, [], "no keys: nothing but ping is accepted");
  assert.equal(commandsOf(mqtt)?.replayWindow, 300_000);
  const off = parseConfig(
    "gateway: { id: a }\nuplink: { type: mqtt, url: mqtt://h:1883 }\ncommands: { enabled: false }",
    schema,
  );
  assert.equal(commandsOf(off), undefined);
  assert.equal(commandsOf(parseConfig("gateway: { id: a }", schema)), undefined);
});

Deno.test("a gateway id with a slash, a wildcard prefix and an explicit enable without mqtt are refused", () => {
  assert.deepEqual(
    problems("gateway: { id: site/a }\nuplink: { type: mqtt, url: mqtt://h:1883 }"),
    [
      '1:16 gateway.id: expected no "/" in the gateway id when remote commands are on (it is one topic level), got "site/a"',
    ],
  );
  assert.match(
    problems(
      "gateway: { id: a }\nuplink: { type: mqtt, url: mqtt://h:1883 }\ncommands: { prefix: a/+/b }",
    )[0],
    /^3:21 commands\.prefix: expected a topic prefix/,
  );
  assert.match(
    problems("gateway: { id: a }\ncommands: { enabled: true }")[0],
    /^2:22 commands\.enabled: remote commands ride on the MQTT uplink, and there is no uplink/,
  );
  // Off, a slash is fine (https uplink, no commands).
  assert.deepEqual(problems("gateway: { id: site/a }"), []);
});

Deno.test("operatorKeys: {key, scopes, name} entries; a plain key string is read-only; bad scopes and the removed requireSignature: false are named", () => {
  const key = "ed25519:" + "A".repeat(43) + "=";
  const c = parseConfig(
    `gateway: { id: a }
uplink: { type: mqtt, url: mqtt://h:1883 }
commands:
  requireSignature: true
  operatorKeys:
    - "${key}"
    - { key: "${key}", scopes: [operate, admin, operate], name: alice }
`,
    schema,
  );
  assert.deepEqual(commandsOf(c)?.operatorKeys, [
    { key, scopes: ["read"] },
    { key, scopes: ["operate", "admin"], name: "alice" },
  ]);
  const base = "gateway: { id: a }\nuplink: { type: mqtt, url: mqtt://h:1883 }\ncommands:\n";
  assert.deepEqual(
    problems(`${base}  operatorKeys: [{ key: "${key}", scopes: [root] }]`),
    ['4:90 commands.operatorKeys[0].scopes[0]: expected one of read, operate, admin, got "root"'],
  );
  assert.match(
    problems(`${base}  operatorKeys: [{ key: "${key}" }]`)[0],
    /commands\.operatorKeys\[0\]: missing required key "scopes"/,
  );
  assert.match(
    problems(`${base}  operatorKeys: [42]`)[0],
    /commands\.operatorKeys\[0\]: expected an operator key \{ key: "ed25519:…", scopes: \[read, operate, admin\]/,
  );
  assert.match(
    problems(`${base}  requireSignature: false`)[0],
    /^4:21 commands\.requireSignature: requireSignature was removed: .* set commands\.insecureUnsigned: true$/,
  );
});

Deno.test("parseRequest() reads id, args, ts, keyid and sig, and names what is wrong", () => {
  assert.deepEqual(parseRequest({ id: "1", args: { a: 1 }, ts: 5, keyid: "k", sig: "s" }), {
    request: { id: "1", args: { a: 1 }, ts: 5, keyid: "k", sig: "s" },
  });
  assert.deepEqual(parseRequest([1]), {
    error: "expected a JSON object with id (and args, ts, keyid, sig)",
    id: null,
  });
  assert.equal((parseRequest({ id: "" }) as { id: null }).id, null);
  assert.equal((parseRequest({ id: "x".repeat(201) }) as { id: null }).id, null);
  assert.deepEqual(parseRequest({ id: "2", args: "x" }), {
    error: "expected args to be a JSON object",
    id: "2",
  });
  assert.deepEqual(parseRequest({ id: "3", ts: "now" }), {
    error: "expected ts to be ms since the epoch (a number)",
    id: "3",
  });
  assert.deepEqual(parseRequest({ id: "4", sig: 1 }), {
    error: "expected sig to be a string of at most 256 characters",
    id: "4",
  });
  assert.deepEqual(parseRequest({ id: "5", keyid: "k".repeat(65) }), {
    error: "expected keyid to be a string of at most 64 characters",
    id: "5",
  });
});

Deno.test("CommandState keeps time-stamped ids and pending commands across a reload, and forgets expired ids", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/commands-state.json`;
  const now = Date.now();
  const a = new CommandState(path);
  await a.remember("signed", now + 60_000, true, now);
  await a.remember("unsigned", now + 60_000, false, now);
  await a.remember("old", now + 10, true, now);
  await a.addPending({
    kind: "restart",
    id: "r1",
    cmd: "restart",
    prefix: "gateways",
    at: now,
    previousStartedAt: 1,
    previousPid: 2,
  });
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  const b = new CommandState(path);
  assert.equal(b.load(now + 20), undefined);
  assert.equal(b.seen("signed", now + 20), true);
  assert.equal(b.seen("unsigned", now + 20), false, "only time-stamped ids are kept on disk");
  assert.equal(b.seen("old", now + 20), false);
  assert.deepEqual(b.pending().map((p) => p.id), ["r1"]);
  await b.removePending("r1");
  const c = new CommandState(path);
  c.load();
  assert.deepEqual(c.pending(), []);
  await Deno.writeTextFile(path, "{not json");
  assert.match(new CommandState(path).load()!, /not valid JSON/);
  await Deno.remove(dir, { recursive: true });
});
