import type { MqttClient } from "mqtt";
import {
  connectMqtt,
  describeMqttError,
  reconnectDelay,
  topicMatchesFilter,
} from "../common/mqtt.ts";
import type { Logger } from "../log.ts";
import { redactUrl } from "../redact.ts";
import type { StoredReading } from "../reading.ts";
import type { MqttUplinkConfig } from "./mqtt_config.ts";
import { encodeBatches, encodeReading, fillTopic } from "./encode.ts";
import { fitStatus, STATUS_SCHEMA, statusBudget } from "./status_budget.ts";
import {
  type InboundMessage,
  type OutMessage,
  type StatusMessage,
  type Uplink,
  UplinkError,
  type UplinkState,
  type UplinkSubscription,
} from "./uplink.ts";

/** Options of {@linkcode MqttUplink}. */
export interface MqttUplinkOptions {
  config: MqttUplinkConfig;
  gatewayId: string;
  /** Buffer epoch stamped on messages. */
  epoch: string;
  version: string;
  log: Logger;
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Subscription {
  filters: readonly string[];
  handler: (msg: InboundMessage) => void;
  /** Granted on the current connection. */
  active: boolean;
  closed: boolean;
}

/**
 * The MQTT uplink: QoS 1 publishes with several in flight, PUBACK as the confirmation, a retained
 * status and last-will, reconnect with exponential backoff and full jitter. A fresh client is
 * made for each connection so nothing is resent behind the forwarder's back.
 */
export class MqttUplink implements Uplink {
  readonly type = "mqtt";
  readonly #cfg: MqttUplinkConfig;
  readonly #gatewayId: string;
  readonly #epoch: string;
  readonly #version: string;
  readonly #log: Logger;
  readonly #listeners = new Set<(connected: boolean) => void>();
  readonly #pending = new Map<number, Pending>();
  readonly #subs = new Set<Subscription>();
  #nextId = 1;
  #client: MqttClient | undefined;
  #connected = false;
  #since = Date.now();
  #lastError: string | null = null;
  #acked = 0;
  #failed = 0;
  #attempt = 0;
  #closed = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #nextAttemptAt: number | null = null;
  #loggedError = "";
  /** The broker URL as shown in logs, errors and status: credentials masked. */
  readonly #display: string;

  constructor(opts: MqttUplinkOptions) {
    this.#cfg = opts.config;
    this.#display = redactUrl(opts.config.url);
    this.#gatewayId = opts.gatewayId;
    this.#epoch = opts.epoch;
    this.#version = opts.version;
    this.#log = opts.log;
  }

  /** Broker URL without credentials. */
  get target(): string {
    return this.#display;
  }

  get maxInflight(): number {
    return this.#cfg.maxInflight;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Topic of retained status messages. */
  get statusTopic(): string {
    return fillTopic(this.#cfg.statusTopic, { gatewayId: this.#gatewayId });
  }

  encode(readings: StoredReading[]): OutMessage[] {
    const id = { gatewayId: this.#gatewayId, epoch: this.#epoch };
    if (this.#cfg.topicMode === "per-reading") {
      return readings.map((r) => ({
        topic: fillTopic(this.#cfg.readingTopic, {
          gatewayId: this.#gatewayId,
          deviceId: r.device,
          metric: r.metric,
        }),
        payload: encodeReading(r, id),
        first: r.seq,
        last: r.seq,
        count: 1,
      }));
    }
    const topic = fillTopic(this.#cfg.topic, { gatewayId: this.#gatewayId });
    return encodeBatches(readings, id, {
      maxBytes: this.#cfg.maxMessageBytes,
      targetBytes: this.#cfg.targetMessageBytes,
    }).map((b) => ({ topic, ...b }));
  }

  send(message: OutMessage): Promise<void> {
    return this.#publish(message.topic, message.payload, false);
  }

  sendAlarm(event: Record<string, unknown>): Promise<void> {
    const topic = fillTopic(this.#cfg.alarmTopic, { gatewayId: this.#gatewayId });
    return this.#publish(topic, JSON.stringify({ gw: this.#gatewayId, ...event }), false);
  }

  publishStatus(status: StatusMessage): Promise<void> {
    return this.#publish(this.statusTopic, JSON.stringify(status), true);
  }

  /** Publishes one message with QoS 1 on the uplink's connection; resolves on PUBACK. */
  publish(topic: string, payload: string, opts: { retain?: boolean } = {}): Promise<void> {
    return this.#publish(topic, payload, opts.retain ?? false);
  }

  /**
   * Subscribes to `filters` with QoS 1, now and after every reconnect (each connection is a fresh
   * clean session). A refused subscription is logged and stays inactive until the next connect.
   */
  subscribe(
    filters: readonly string[],
    handler: (msg: InboundMessage) => void,
  ): UplinkSubscription {
    const sub: Subscription = { filters: [...filters], handler, active: false, closed: false };
    this.#subs.add(sub);
    const client = this.#client;
    if (client && this.#connected) this.#subscribeOn(client, sub);
    return {
      get active() {
        return sub.active && !sub.closed;
      },
      close: () => {
        if (sub.closed) return;
        sub.closed = true;
        sub.active = false;
        this.#subs.delete(sub);
        const kept = new Set([...this.#subs].flatMap((s) => s.filters));
        const drop = sub.filters.filter((f) => !kept.has(f));
        const c = this.#client;
        if (c && this.#connected && drop.length) c.unsubscribe(drop, () => {});
      },
    };
  }

  #subscribeOn(client: MqttClient, sub: Subscription): void {
    client.subscribe([...sub.filters], { qos: 1 }, (err, granted) => {
      if (this.#client !== client || sub.closed) return;
      if (err) {
        this.#log.error(`Cannot subscribe to ${sub.filters.join(", ")}: ${err.message}`);
        return;
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128);
      if (refused.length) {
        this.#log.error(
          `broker "${this.#display}" refused the subscription to ${
            refused.map((g) => `"${g.topic}"`).join(", ")
          } (not authorised?)`,
        );
        return;
      }
      sub.active = true;
      this.#log.debug("subscribed", { filters: sub.filters.join(",") });
    });
  }

  #deliver(topic: string, payload: Uint8Array, retain: boolean): void {
    for (const sub of this.#subs) {
      if (!sub.filters.some((f) => topicMatchesFilter(f, topic))) continue;
      try {
        sub.handler({ topic, payload, retain });
      } catch (e) {
        this.#log.error("message handler failed", { topic, error: (e as Error).message });
      }
    }
  }

  #publish(topic: string, payload: string, retain: boolean): Promise<void> {
    const client = this.#client;
    if (!client || !this.#connected) {
      return Promise.reject(new UplinkError(`not connected to broker "${this.#display}"`));
    }
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#failed++;
        reject(
          new UplinkError(`no PUBACK from "${this.#display}" within ${this.#cfg.ackTimeout}ms`),
        );
        // A connection that stops acknowledging is dead even if TCP has not noticed.
        this.#dropConnection("acknowledgement timeout");
      }, this.#cfg.ackTimeout);
      this.#pending.set(id, { resolve, reject, timer });
      client.publish(topic, payload, { qos: 1, retain }, (err) => {
        const p = this.#pending.get(id);
        if (!p) return;
        this.#pending.delete(id);
        clearTimeout(p.timer);
        if (err) {
          this.#failed++;
          p.reject(new UplinkError(`publish to "${topic}" failed: ${err.message}`, { cause: err }));
        } else {
          this.#acked++;
          p.resolve();
        }
      });
    });
  }

  state(): UplinkState {
    return {
      type: "mqtt",
      target: this.#display,
      connected: this.#connected,
      since: this.#since,
      lastError: this.#lastError,
      acked: this.#acked,
      failed: this.#failed,
      inflight: this.#pending.size,
      nextAttemptAt: this.#nextAttemptAt,
    };
  }

  onStateChange(listener: (connected: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    this.#since = Date.now();
    for (const l of this.#listeners) {
      try {
        l(connected);
      } catch (e) {
        this.#log.error("uplink state listener failed", { error: (e as Error).message });
      }
    }
  }

  #fail(reason: string): void {
    this.#lastError = reason;
    if (reason !== this.#loggedError) {
      this.#loggedError = reason;
      this.#log.error(`Cannot connect to broker "${this.#display}": ${reason}`);
    }
  }

  start(): void {
    this.#closed = false;
    this.#connect();
  }

  #connect(): void {
    if (this.#closed) return;
    const will = fitStatus({
      schema: STATUS_SCHEMA,
      gatewayId: this.#gatewayId,
      state: "offline",
      version: this.#version,
      ts: Date.now(),
      reason: "connection lost (last will)",
    }, statusBudget(this.#cfg.maxMessageBytes));
    let client: MqttClient;
    try {
      client = connectMqtt(this.#cfg, {
        clientId: this.#gatewayId,
        will: { topic: this.statusTopic, payload: JSON.stringify(will), qos: 1, retain: true },
      });
    } catch (e) {
      // An unreadable TLS file may be fixed in place: it is read again on the next attempt.
      this.#fail((e as Error).message);
      return this.#scheduleReconnect();
    }
    this.#client = client;
    client.on("connect", () => {
      if (this.#client !== client) return;
      this.#attempt = 0;
      this.#lastError = null;
      if (this.#loggedError) this.#log.info(`connected to broker "${this.#display}"`);
      else this.#log.info(`connected to broker "${this.#display}"`);
      this.#loggedError = "";
      this.#setConnected(true);
      for (const sub of this.#subs) this.#subscribeOn(client, sub);
    });
    client.on("message", (topic, payload, packet) => {
      if (this.#client !== client) return;
      this.#deliver(topic, payload, packet.retain);
    });
    client.on("error", (err) => {
      if (this.#client !== client) return;
      this.#fail(describeMqttError(err));
    });
    client.on("close", () => {
      if (this.#client !== client) return;
      this.#dropConnection(this.#lastError ?? "connection closed");
    });
  }

  #dropConnection(reason: string): void {
    const client = this.#client;
    if (!client) return;
    this.#client = undefined;
    for (const sub of this.#subs) sub.active = false;
    const wasConnected = this.#connected;
    this.#setConnected(false);
    if (wasConnected) this.#log.warn(`disconnected from broker "${this.#display}"`, { reason });
    const err = new UplinkError(`connection to "${this.#display}" lost: ${reason}`);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      this.#failed++;
      p.reject(err);
    }
    client.removeAllListeners();
    client.on("error", () => {});
    client.end(true);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    const delay = reconnectDelay(this.#attempt, this.#cfg.reconnect);
    this.#attempt++;
    this.#nextAttemptAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#nextAttemptAt = null;
      this.#connect();
    }, delay);
  }

  async close(status?: StatusMessage): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#nextAttemptAt = null;
    const client = this.#client;
    if (!client) return;
    if (status && this.#connected) {
      await Promise.race([
        this.publishStatus(status).catch(() => {}),
        new Promise((r) => setTimeout(r, 2000)),
      ]);
    }
    this.#client = undefined;
    for (const sub of this.#subs) sub.active = false;
    this.#setConnected(false);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new UplinkError("uplink closed"));
    }
    await new Promise<void>((resolve) => {
      client.end(false, {}, () => resolve());
      setTimeout(resolve, 2000);
    });
    client.removeAllListeners();
  }
}
