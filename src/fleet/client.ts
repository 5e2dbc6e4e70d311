/**
 * The fleet console's connection to the broker: every gateway's retained status, and commands
 * to one, some or all gateways with their replies (see protocol.ts for the wire contract).
 */
import type { MqttClient } from "mqtt";
import {
  BrokerSetupError,
  connectMqtt,
  DEFAULT_RECONNECT,
  describeMqttError,
  keepReconnecting,
  type MqttTls,
  topicMatchesFilter,
} from "../common/mqtt.ts";
import type { Logger } from "../log.ts";
import type { SigningKey } from "../update/keys.ts";
import type { StatusMessage } from "../uplink/mod.ts";
import { CommandRun, type ProcessSeen } from "./run.ts";
import { type GatewayView, gatewayView, type GrantedKey, num } from "./view.ts";
import {
  type CommandReply,
  type CommandRequest,
  commandTopic,
  DEFAULT_PREFIX,
  FLEET_TARGET,
  signRequest,
} from "../protocol/mod.ts";

/** Where and how the console connects. */
export interface FleetConnection {
  /** mqtt:// or mqtts:// broker URL. */
  url: string;
  clientId?: string;
  username?: string;
  password?: string;
  /** TLS files (PEM), as in the MQTT uplink's `tls:`. */
  tls?: MqttTls;
  /** Topic prefix of commands and replies (the gateways' `commands.prefix`). */
  prefix?: string;
  /** MQTT filter matching every gateway's status topic; default `{prefix}/+/status`. */
  statusTopic?: string;
  /** ms; default 10 s. */
  connectTimeout?: number;
  /** ms; default 30 s. */
  keepalive?: number;
}

/** Options of {@linkcode Fleet.connect}. */
export interface FleetOptions {
  connection: FleetConnection;
  /** Operator key: every request is signed with it. */
  key?: SigningKey;
  /** Keep reconnecting after the first connection (long-running views); default false. */
  reconnect?: boolean;
  /** An online gateway whose status is older than this is shown stale; default 2 min. */
  staleAfterMs?: number;
  log?: Logger;
  now?: () => number;
}

export { type GatewayView, gatewayView, type GrantedKey } from "./view.ts";

/** A failure to reach or use the broker. */
export class FleetError extends Error {
  override name = "FleetError";
}

/** Options of {@linkcode Fleet.send}. */
export interface SendOptions {
  /** Gateway ids, or `all` for the fleet-wide topic (every gateway online is expected to reply). */
  targets: readonly string[] | "all";
  args?: Record<string, unknown>;
  timeoutMs: number;
  /** See {@linkcode CommandRunOptions.followRestart}. */
  followRestart?: (reply: CommandReply) => boolean;
  signal?: AbortSignal;
}

interface Entry {
  status: StatusMessage;
  receivedAt: number;
  /** Arrived live (not as a retained message on subscribe). */
  live: boolean;
}

/** Parses a reply payload; undefined when it is not a reply. */
export function parseReply(text: string): CommandReply | undefined {
  let r: Partial<CommandReply>;
  try {
    r = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (
    !r || typeof r !== "object" || typeof r.gatewayId !== "string" ||
    typeof r.status !== "string" || typeof r.final !== "boolean" ||
    (r.id !== null && typeof r.id !== "string")
  ) return undefined;
  return r as CommandReply;
}

/**
 * A live view of the fleet over one MQTT connection: retained statuses by gateway id, and
 * commands with their replies.
 *
 * @example
 * ```ts
 * const fleet = await Fleet.connect({ connection: { url: "mqtt://127.0.0.1:1883" } });
 * await fleet.sync();
 * const run = fleet.send("ping", { targets: "all", timeoutMs: 10_000 });
 * console.log(await run.done);
 * await fleet.close();
 * ```
 */
export class Fleet {
  readonly prefix: string;
  readonly statusFilter: string;
  readonly url: string;
  readonly #client: MqttClient;
  readonly #clientId: string;
  readonly #key?: SigningKey;
  readonly #staleAfter: number;
  readonly #now: () => number;
  readonly #log?: Logger;
  readonly #gateways = new Map<string, Entry>();
  readonly #listeners = new Set<(id: string) => void>();
  readonly #connListeners = new Set<(connected: boolean) => void>();
  readonly #replyHandlers = new Map<string, Set<(r: CommandReply) => void>>();
  readonly #runs = new Set<CommandRun>();
  readonly #syncWaiters = new Map<string, () => void>();
  readonly #granted = new Map<string, GrantedKey | null>();
  readonly #idSegment: number;
  #connected = true;
  #closing = false;
  #lastError: string | null = null;

  private constructor(client: MqttClient, clientId: string, opts: FleetOptions) {
    this.#client = client;
    this.#clientId = clientId;
    this.url = opts.connection.url;
    this.prefix = opts.connection.prefix ?? DEFAULT_PREFIX;
    this.statusFilter = opts.connection.statusTopic ?? `${this.prefix}/+/status`;
    this.#idSegment = this.statusFilter.split("/").indexOf("+");
    this.#key = opts.key;
    this.#staleAfter = opts.staleAfterMs ?? 120_000;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log;
  }

  /** Connects, subscribes to statuses and replies; rejects with the broker's reason. */
  static async connect(opts: FleetOptions): Promise<Fleet> {
    const c = opts.connection;
    const clientId = c.clientId ?? `outpost-fleet-${crypto.randomUUID().slice(0, 8)}`;
    const connectTimeout = c.connectTimeout ?? 10_000;
    let client: MqttClient;
    try {
      client = connectMqtt({ ...c, clientId, connectTimeout, keepalive: c.keepalive ?? 30_000 });
    } catch (e) {
      if (!(e instanceof BrokerSetupError)) throw e;
      throw new FleetError(e.message, { cause: e });
    }
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      let reason = "";
      const onError = (e: Error) => reason = describeMqttError(e);
      const onClose = () => {
        off();
        client.on("error", () => {});
        client.end(true);
        reason ||= Date.now() - t0 >= connectTimeout
          ? `no answer within ${Math.round(connectTimeout / 1000)}s`
          : "connection closed";
        reject(new FleetError(`Cannot connect to broker "${c.url}": ${reason}`));
      };
      const onConnect = () => {
        off();
        resolve();
      };
      const off = () => {
        client.off("error", onError);
        client.off("close", onClose);
        client.off("connect", onConnect);
      };
      client.on("error", onError);
      client.on("close", onClose);
      client.on("connect", onConnect);
    });
    const fleet = new Fleet(client, clientId, opts);
    try {
      await fleet.#start(opts.reconnect ?? false);
    } catch (e) {
      await fleet.close();
      throw e;
    }
    return fleet;
  }

  async #start(reconnect: boolean): Promise<void> {
    const client = this.#client;
    client.on("message", (topic, payload, packet) => {
      try {
        this.#onMessage(topic, payload.toString(), packet.retain);
      } catch (e) {
        this.#log?.warn("fleet: message handling failed", { topic, error: (e as Error).message });
      }
    });
    client.on("error", (e) => {
      const why = describeMqttError(e);
      // Retried every second while the broker is away: say it once.
      if (why !== this.#lastError) this.#log?.warn(`broker "${this.url}": ${why}`);
      this.#lastError = why;
    });
    client.on("close", () => {
      if (!this.#closing) this.#setConnected(false);
    });
    client.on("connect", () => {
      this.#lastError = null;
      this.#setConnected(true);
    });
    // Before subscribing: mqtt.js renews only subscriptions made while reconnecting is on.
    if (reconnect) keepReconnecting(client, DEFAULT_RECONNECT);
    const granted = await client.subscribeAsync(
      [this.statusFilter, `${this.prefix}/+/reply`, this.#syncTopic],
      { qos: 1 },
    ).catch((e) => {
      throw new FleetError(`Cannot subscribe on broker "${this.url}": ${(e as Error).message}`, {
        cause: e,
      });
    });
    const refused = granted.filter((g) => g.qos === 128);
    if (refused.length) {
      throw new FleetError(
        `broker "${this.url}" refused the subscription to ${
          refused.map((g) => `"${g.topic}"`).join(", ")
        } (not authorised?)`,
      );
    }
  }

  get #syncTopic(): string {
    return `${this.prefix}/${FLEET_TARGET}/console/${this.#clientId}`;
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    this.#log?.[connected ? "info" : "warn"](
      `${connected ? "connected to" : "disconnected from"} broker "${this.url}"`,
    );
    for (const l of this.#connListeners) l(connected);
  }

  /** Whether the console is connected to the broker now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The last connection error, while disconnected. */
  get lastError(): string | null {
    return this.#lastError;
  }

  #onMessage(topic: string, text: string, retained: boolean): void {
    if (topic === this.#syncTopic) {
      try {
        this.#syncWaiters.get(JSON.parse(text).sync)?.();
      } catch { /* not our marker */ }
      return;
    }
    const parts = topic.split("/");
    const rest = topic.startsWith(this.prefix + "/")
      ? topic.slice(this.prefix.length + 1).split("/")
      : [];
    if (rest.length === 2 && rest[1] === "reply" && !topicMatchesFilter(this.statusFilter, topic)) {
      const reply = parseReply(text);
      if (!reply || reply.id === null) return;
      this.#noteGrant(reply);
      for (const h of this.#replyHandlers.get(reply.id) ?? []) h(reply);
      for (const run of this.#runs) run.handleReply(reply);
      return;
    }
    if (!topicMatchesFilter(this.statusFilter, topic)) return;
    const fromTopic = this.#idSegment >= 0 ? parts[this.#idSegment] : undefined;
    if (text === "") {
      // A cleared retained status: the gateway was decommissioned.
      if (fromTopic && this.#gateways.delete(fromTopic)) this.#emit(fromTopic);
      return;
    }
    let status: StatusMessage;
    try {
      status = JSON.parse(text);
    } catch {
      this.#log?.debug("fleet: status is not JSON", { topic });
      return;
    }
    if (!status || typeof status !== "object") return;
    const id = typeof status.gatewayId === "string" ? status.gatewayId : fromTopic;
    if (!id || (status.state !== "online" && status.state !== "offline")) return;
    this.#gateways.set(id, { status, receivedAt: this.#now(), live: !retained });
    for (const run of this.#runs) {
      run.handleStatus(id, {
        state: status.state,
        startedAt: num(status.startedAt),
        version: typeof status.version === "string" ? status.version : null,
      });
    }
    this.#emit(id);
  }

  /** Remembers the scopes a gateway's ping reply says this console's key has there. */
  #noteGrant(reply: CommandReply): void {
    if (reply.cmd !== "ping" || reply.status !== "done") return;
    const op = (reply.result as { operator?: unknown } | undefined)?.operator;
    if (op === undefined) return;
    const o = op as Partial<GrantedKey> | null;
    const grant = o && typeof o.keyid === "string" && Array.isArray(o.scopes)
      ? {
        keyid: o.keyid,
        ...(typeof o.name === "string" ? { name: o.name } : {}),
        scopes: o.scopes.filter((x): x is string => typeof x === "string"),
      }
      : null;
    this.#granted.set(reply.gatewayId, grant);
    if (this.#gateways.has(reply.gatewayId)) this.#emit(reply.gatewayId);
  }

  /** Key id of the operator key requests are signed with; null when unsigned. */
  get keyid(): string | null {
    return this.#key?.keyid ?? null;
  }

  #emit(id: string): void {
    for (const l of this.#listeners) l(id);
  }

  /**
   * Resolves once every retained status the broker held at subscription has arrived: a marker
   * published after the subscription comes back behind them (Mosquitto delivers in order).
   */
  async sync(timeoutMs = 5000): Promise<void> {
    const nonce = crypto.randomUUID();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#syncWaiters.set(nonce, resolve);
    const timer = setTimeout(() => {
      this.#log?.warn(`no echo of the sync marker within ${timeoutMs}ms; the list may be partial`);
      resolve();
    }, timeoutMs);
    try {
      await this.#client.publishAsync(this.#syncTopic, JSON.stringify({ sync: nonce }), {
        qos: 1,
      });
      await promise;
    } finally {
      clearTimeout(timer);
      this.#syncWaiters.delete(nonce);
    }
  }

  /** Every gateway with a retained status, sorted by id (numbers in ids in numeric order). */
  gateways(): GatewayView[] {
    return [...this.#gateways.keys()]
      .sort((a, b) => a.localeCompare(b, "en", { numeric: true }))
      .map((id) => this.gateway(id)!);
  }

  /** One gateway's view; undefined when no status was seen. */
  gateway(id: string): GatewayView | undefined {
    const e = this.#gateways.get(id);
    if (!e) return undefined;
    const view = gatewayView(id, e.status, {
      receivedAt: e.receivedAt,
      live: e.live,
      now: this.#now(),
      staleAfterMs: this.#staleAfter,
    });
    if (this.#granted.has(id)) view.operator = this.#granted.get(id);
    return view;
  }

  /** Calls `listener` with the id of every gateway whose status changes. */
  onChange(listener: (id: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `listener` when the broker connection drops or comes back. */
  onConnection(listener: (connected: boolean) => void): () => void {
    this.#connListeners.add(listener);
    return () => this.#connListeners.delete(listener);
  }

  /** Calls `handler` with every reply to request `id`; returns the unsubscribe function. */
  onReply(id: string, handler: (reply: CommandReply) => void): () => void {
    let set = this.#replyHandlers.get(id);
    if (!set) this.#replyHandlers.set(id, set = new Set());
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0) this.#replyHandlers.delete(id);
    };
  }

  /**
   * Publishes request `cmd` to `target` (a gateway id or `fleet`), signed when the console has
   * an operator key; resolves once the broker has it (PUBACK).
   */
  async request(
    target: string,
    cmd: string,
    req: CommandRequest,
  ): Promise<CommandRequest> {
    if (this.#key) await signRequest(this.#key, cmd, target, req);
    const topic = commandTopic(this.prefix, target, cmd);
    if (!this.#connected) {
      throw new FleetError(`Cannot send ${cmd} to ${target}: not connected to "${this.url}"`);
    }
    try {
      await this.#client.publishAsync(topic, JSON.stringify(req), { qos: 1 });
    } catch (e) {
      throw new FleetError(`Cannot publish to "${topic}": ${(e as Error).message}`, { cause: e });
    }
    return req;
  }

  /**
   * Sends `cmd` to the targets and tracks every reply. With `all`, one request goes on the
   * fleet-wide topic and every gateway online at that moment is expected to answer.
   */
  send(cmd: string, opts: SendOptions): CommandRun {
    const fleetWide = opts.targets === "all";
    const args = opts.args ?? {};
    const run = new CommandRun({
      id: crypto.randomUUID(),
      cmd,
      args,
      fleetWide,
      timeoutMs: opts.timeoutMs,
      followRestart: opts.followRestart,
      now: this.#now,
      signal: opts.signal,
    });
    this.#runs.add(run);
    run.done.then(() => this.#runs.delete(run));
    const seen = (id: string): ProcessSeen => {
      const v = this.gateway(id);
      return { startedAt: v?.startedAt ?? null, version: v?.version ?? null };
    };
    if (fleetWide) {
      const online = this.gateways().filter((g) => g.state === "online");
      for (const g of online) run.addTarget(g.id, run.id, seen(g.id));
      run.seal();
      if (!online.length) return run;
      this.request(FLEET_TARGET, cmd, { id: run.id, args }).catch((e) => {
        for (const g of online) run.fail(g.id, (e as Error).message);
      });
    } else {
      const ids = [...new Set(opts.targets as readonly string[])];
      const reqs = ids.map((id) => ({ id, req: { id: crypto.randomUUID(), args } }));
      for (const { id, req } of reqs) run.addTarget(id, req.id, seen(id));
      run.seal();
      for (const { id, req } of reqs) {
        this.request(id, cmd, req).catch((e) => run.fail(id, (e as Error).message));
      }
    }
    return run;
  }

  /** Disconnects. */
  async close(): Promise<void> {
    for (const run of this.#runs) run.expire();
    this.#closing = true;
    await this.#client.endAsync(false).catch(() => {});
  }
}
