/**
 * The test side of remote commands: an operator key every test gateway grants all scopes, a
 * console that publishes signed requests and collects the replies by id, gateway configs with
 * commands on, and a broker + console + gateway rig.
 */
import assert from "node:assert/strict";
import mqtt, { type MqttClient } from "mqtt";
import { type CommandReply, type CommandRequest, signRequest } from "../../src/protocol/mod.ts";
import { generateKey, importSigningKey } from "../../src/update/mod.ts";
import { type GatewayProcess, startGateway } from "./gateway.ts";
import { type Broker, startMosquitto } from "./mosquitto.ts";
import { waitFor } from "./ports.ts";

/** The test console's operator key: every gateway here grants it all scopes. */
export const OPERATOR_FILE = await generateKey();
export const OPERATOR = await importSigningKey(OPERATOR_FILE);
export const OPERATOR_YAML = `commands:
  operatorKeys: [{ key: "${OPERATOR_FILE.public}", scopes: [read, operate, admin], name: test }]
`;

/** The test's side of the protocol: requests out, every reply in, by request id. */
export interface Console {
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

export async function openConsole(url: string, prefix = "gateways"): Promise<Console> {
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
export function gatewayYaml(
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
export async function startCommandGateway(
  dir: string,
  yaml: string,
  opts: { httpPort?: number } = {},
): Promise<GatewayProcess> {
  const gw = await startGateway(dir, yaml, opts);
  await waitForSubscribed(gw);
  return gw;
}

/** A broker, the test console, and a command gateway `id` (see {@linkcode gatewayYaml}) in `dir`. */
export async function commandRig(
  id: string,
  o: { dir?: string; extra?: string; commands?: string[] } = {},
): Promise<
  { dir: string; broker: Broker; con: Console; gw: GatewayProcess; close(): Promise<void> }
> {
  const dir = o.dir ?? await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  const gw = await startCommandGateway(dir, gatewayYaml(id, dir, broker, o.extra, o.commands));
  return {
    dir,
    broker,
    con,
    gw,
    async close() {
      await gw.kill();
      await con.close();
      await broker.stop();
    },
  };
}

export async function waitForSubscribed(gw: GatewayProcess): Promise<void> {
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
export interface StatusView {
  pid: number;
  startedAt: number;
  health: { ok: boolean };
  uplink: { connected: boolean; target: string };
  devices: Record<string, unknown>;
  commands?: { subscribed?: boolean };
}

export async function statusOf(gw: GatewayProcess): Promise<StatusView> {
  return await gw.status() as unknown as StatusView;
}

export function expectError(r: CommandReply, code: string, message?: RegExp): void {
  assert.equal(r.status, "error", JSON.stringify(r));
  assert.equal(r.final, true);
  assert.equal(r.error?.code, code, JSON.stringify(r));
  if (message) assert.match(r.error!.message, message);
}

export function expectDone(r: CommandReply): Record<string, unknown> {
  assert.equal(r.status, "done", JSON.stringify(r));
  assert.equal(r.final, true);
  return r.result as Record<string, unknown>;
}
