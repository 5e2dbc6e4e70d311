/**
 * A broker subscription for adapters (`mqtt`, `zigbee2mqtt`), reached through `src/adapter.ts`:
 * the broker's config keys, and a subscriber that acknowledges a QoS 1 message only once the
 * adapter has stored it, reconnecting with the shared backoff of {@linkcode reconnectDelay}.
 */
import mqtt from "mqtt";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import { type InferShape, s } from "../config/schema.ts";
import type { Logger } from "../log.ts";
import { BROKER_URL, BrokerSetupError, mqttClientOptions, reconnectDelay } from "./mqtt.ts";
import { sleep } from "./timing.ts";
import { tlsSchema } from "./tls.ts";

/** Config keys of a connection to an MQTT broker, shared by the `mqtt` and `zigbee2mqtt` adapters. */
export const brokerShape = {
  url: s.string({
    pattern: BROKER_URL,
    patternName: "a broker URL such as mqtt://127.0.0.1:1883 or mqtts://broker.lan:8883",
  }).describe("Broker URL: mqtt:// (plain) or mqtts:// (TLS)"),
  username: s.string().optional().describe("Username; use ${ENV} or ${file:...}"),
  password: s.string().optional().describe("Password; use ${ENV} or ${file:...}"),
  clientId: s.string({ min: 1, max: 128 }).optional()
    .describe("MQTT client id; defaults to outpost-<name>-<random>"),
  cleanSession: s.boolean().default(true)
    .describe("false (with a fixed clientId) lets the broker queue QoS 1 messages while away"),
  tls: tlsSchema.optional().describe("TLS and mutual TLS settings (PEM files)"),
  keepalive: s.duration({ min: 1000, max: 3_600_000 }).default(30_000)
    .describe("MQTT keepalive interval"),
  connectTimeout: s.duration({ min: 100 }).default(15_000)
    .describe("Give up a connection attempt after this long"),
  reconnect: s.object({
    min: s.duration({ min: 10 }).default(1000).describe("First retry delay"),
    max: s.duration({ min: 10 }).default(60_000).describe("Largest retry delay"),
  }).default({ min: 1000, max: 60_000 })
    .describe("Reconnect backoff: exponential with full jitter, reset after a connection"),
  maxPending: s.integer({ min: 1, max: 10_000_000 }).default(10_000)
    .describe("Readings waiting for the buffer before reading from the broker pauses"),
};

/** Validated broker connection settings. */
export type BrokerConfig = InferShape<typeof brokerShape>;

/** Options of {@linkcode runSubscriber}. */
export interface SubscriberOptions {
  /** Instance name, used in the default client id. */
  name: string;
  /** Topic filters to subscribe to, each with its QoS. */
  topics: Record<string, 0 | 1 | 2>;
  /**
   * Handles one message. Returning a promise holds the message's acknowledgement (the PUBACK of
   * QoS 1) until it resolves, which the adapter does once the message is durable; if it rejects,
   * the message stays unacknowledged and the broker sends it again after a reconnect. Returning
   * nothing acknowledges the message (in order, after those before it).
   */
  onMessage(topic: string, payload: Uint8Array): void | Promise<void>;
  /**
   * Asked after each message; a promise pauses reading from the broker until it settles
   * (back-pressure when too much waits for the buffer).
   */
  ready?(): Promise<void> | undefined;
  log: Logger;
  count(counter: string, by?: number): void;
  signal: AbortSignal;
}

/** Shows a broker URL without credentials, for logs. */
function target(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

/**
 * Connects to the broker, subscribes, and hands every message to `onMessage` until the signal
 * aborts; a lost or refused connection is retried with backoff. Resolves after the abort.
 */
export async function runSubscriber(
  config: BrokerConfig,
  options: SubscriberOptions,
): Promise<void> {
  const { log, signal } = options;
  const opts = mqttClientOptions({ ...config, clean: config.cleanSession }, {
    clientId: `outpost-${options.name}-${crypto.randomUUID().slice(0, 8)}`,
  });
  let attempt = 0;
  let failures = 0;
  while (!signal.aborted) {
    const { connected, error } = await session(config.url, opts, options);
    if (signal.aborted) break;
    if (connected) {
      attempt = 0;
      failures = 0;
      options.count("disconnects");
      log.warn("lost the broker connection; reconnecting", {
        broker: target(config.url),
        error: error?.message,
      });
    } else {
      // The first failure is news; the following ones while the broker stays away are noise.
      (failures++ === 0 ? log.warn : log.debug)("cannot connect to the broker", {
        broker: target(config.url),
        error: error?.message ?? "connection closed",
      });
      options.count("connect_failures");
    }
    await sleep(reconnectDelay(attempt++, config.reconnect), signal);
  }
}

/** Longest wait on stop for messages being stored, so they are acknowledged and not resent. */
const ACK_GRACE_MS = 3000;

/**
 * Passed to mqtt.js's `handleMessage` callback: an error there makes it skip its own PUBACK
 * (and go on with the next packet), because the adapter sends it once the message is stored.
 */
const HELD = new Error("PUBACK held until the message is stored");

type SendPacket = (packet: { cmd: "puback"; messageId: number }) => void;

/**
 * mqtt.js has no public call to acknowledge later over MQTT 3.1.1; `_sendPacket` is the one it
 * uses itself. Checked before connecting so an mqtt.js without it fails loudly, not by acking
 * early.
 */
function sendPacket(): SendPacket {
  const send = (mqtt.MqttClient.prototype as unknown as { _sendPacket?: SendPacket })._sendPacket;
  if (typeof send !== "function") {
    throw new BrokerSetupError("this mqtt.js has no _sendPacket: cannot acknowledge after storing");
  }
  return send;
}

/** Sends the PUBACK of QoS 1 message `id` on this connection; nothing once it is gone. */
function acknowledger(client: MqttClient, send: SendPacket): (id: number) => void {
  return (id) => {
    // Not connected: mqtt.js would queue it for the next connection, where the id means another
    // message; the broker resends this one on the new session instead.
    if (!client.connected || client.disconnecting) return;
    send.call(client, { cmd: "puback", messageId: id });
  };
}

interface SessionEnd {
  connected: boolean;
  error?: Error;
}

function session(url: string, opts: IClientOptions, o: SubscriberOptions): Promise<SessionEnd> {
  return new Promise((resolve) => {
    let connected = false;
    let error: Error | undefined;
    let client: MqttClient;
    const send = sendPacket();
    try {
      client = mqtt.connect(url, opts);
    } catch (e) {
      return resolve({ connected, error: e as Error });
    }
    const ack = acknowledger(client, send);
    // Acknowledgements go out in the order the messages came in (MQTT-4.6.0-2): each waits for
    // the one before it.
    let tail: Promise<void> = Promise.resolve();
    let stopping = false;
    const onAbort = () => {
      stopping = true;
      // What is being stored now gets its PUBACK (bounded wait); the rest the broker resends.
      const timer = setTimeout(() => client.end(true), ACK_GRACE_MS);
      tail.then(() => {
        clearTimeout(timer);
        if (!client.connected) return client.end(true);
        // A clean end flushes the PUBACKs just written (a forced one may drop them); a broker
        // that does not take them within a second gets the forced one.
        const force = setTimeout(() => client.end(true), 1000);
        client.once("close", () => clearTimeout(force));
        client.end(false);
      });
    };
    client.handleMessage = (packet: IPublishPacket, done) => {
      // After a stop nothing more is taken (and so nothing more acknowledged).
      if (stopping) return;
      let stored: void | Promise<void> = undefined;
      try {
        stored = o.onMessage(packet.topic, packet.payload as Uint8Array);
      } catch (e) {
        o.log.error("message handler failed", { topic: packet.topic, error: e as Error });
      }
      if (packet.qos === 1 && packet.messageId !== undefined) {
        // Only the id and topic wait with the acknowledgement, not the payload.
        const { messageId: id, topic } = packet;
        tail = tail.then(() => stored).then(() => ack(id), (e) => {
          // Not stored: no PUBACK. The broker redelivers it when the session resumes.
          if (!(e instanceof Error && e.name === "QueueStoppedError")) {
            o.log.error("message not stored; left unacknowledged", { topic, error: e as Error });
          }
        });
      }
      // The PUBACK is ours to send (above), so mqtt.js is told to send none: it then goes on
      // with the next packet at once, and many messages can wait for one buffer commit.
      const held = packet.qos === 1;
      const next = () => held ? done(HELD) : done();
      const wait = o.ready?.();
      if (wait) wait.then(next, next);
      else next();
    };
    client.on("connect", () => {
      connected = true;
      o.count("connects");
      o.log.info("connected to the broker", { broker: target(url) });
      client.subscribe(
        Object.fromEntries(Object.entries(o.topics).map(([t, qos]) => [t, { qos }])),
        (err, granted) => {
          if (err) {
            o.log.error("subscribe failed", { error: err });
            return;
          }
          for (const g of granted ?? []) {
            if (g.qos === 128) o.log.error("broker refused subscription", { topic: g.topic });
          }
          o.count("subscribed");
        },
      );
    });
    client.on("error", (e) => {
      error = e;
    });
    let ended = false;
    client.on("close", () => {
      if (ended) return;
      ended = true;
      o.signal.removeEventListener("abort", onAbort);
      client.end(true);
      resolve({ connected, error });
    });
    if (o.signal.aborted) onAbort();
    else o.signal.addEventListener("abort", onAbort, { once: true });
  });
}
