import type { Logger } from "./log.ts";
import type { Reading } from "./reading.ts";
import type { Path, Schema } from "./config/schema.ts";

/** What `emit` reports back: how many readings the buffer accepted and how many it refused. */
export interface EmitResult {
  accepted: number;
  /** Refused by validation, filters or a full buffer in `reject-new` mode. */
  rejected: number;
  /** Sequence numbers of the accepted readings, in order. */
  seqs: number[];
  /**
   * Set when the buffer refused readings for want of room (`overflow: reject-new` at a cap), which
   * may come back: every reading before this index was stored (or refused for good, or filtered
   * out); from it on some were not stored, and the source may send them again.
   */
  retryFrom?: number;
}

/** Hands readings to the pipeline; resolves once they are durable in the buffer. */
export type Emit = (readings: Reading[]) => Promise<EmitResult>;

/** Device availability reported by an adapter (Modbus unit stops answering, Zigbee offline). */
export type DeviceState = "online" | "offline" | "unavailable";

/** Everything an adapter gets when it starts. Stopping is aborting `signal`. */
export interface AdapterContext<C> {
  /** The adapter instance's name from the YAML (`name:`), unique per gateway. */
  name: string;
  /** The adapter's own validated config. */
  config: C;
  emit: Emit;
  /** A logger already tagged with the adapter's name. */
  log: Logger;
  signal: AbortSignal;
  /** Reports a device's availability; shown in status and metrics. */
  setDeviceState(device: string, state: DeviceState, reason?: string): void;
  /** Increments a named counter of this adapter (shown in status and metrics). */
  count(counter: string, by?: number): void;
  /** Registers this instance's write handler, used by local rules (e.g. a Modbus write). */
  setWriter(writer: (request: WriteRequest) => Promise<void>): void;
}

/**
 * A protocol adapter: a config schema and a `start` that runs until the signal aborts.
 * `start` rejecting (or returning early) counts as a failure and is retried with backoff.
 */
export interface AdapterModule<C = unknown> {
  /** The adapter's type: folder name, YAML `type:`, registry key and log tag. */
  type: string;
  /** Schema of the adapter's own keys (`type` and `name` are handled by the gateway). */
  schema: Schema<C>;
  start(ctx: AdapterContext<C>): Promise<void>;
  /**
   * What an instance with this config holds on the host, so the gateway's config check can
   * refuse two entries (or the gateway's own server) holding the same serial port or address.
   */
  claims?(config: C): AdapterClaims;
  /**
   * For adapters that poll: the longest time between two polls of a device with this config.
   * A device silent for a few such intervals shows as offline (see `src/presence.ts`).
   */
  pollInterval?(config: C): number | undefined;
}

/** Host resources one adapter instance holds, each with its key path inside the entry. */
export interface AdapterClaims {
  /** Serial device paths it opens; devices of one entry may share a line. */
  serialPorts?: { port: string; at: Path }[];
  /** `host:port` addresses it listens on. */
  listen?: { address: string; at: Path }[];
}

/**
 * Adapters by their `type:`, as `adapters/mod.ts` registers them. An object literal keeps each
 * adapter's config type, so a gateway schema built from it infers a discriminated union.
 */
// deno-lint-ignore no-explicit-any
export type AdapterRegistry = Record<string, AdapterModule<any>>;

/** A write a rule asks an adapter instance to perform on a device. */
export interface WriteRequest {
  device: string;
  /** Adapter-specific address (register name, coil, topic…). */
  point: string;
  value: number | boolean | string;
}

/** Defines an adapter with its config type inferred from the schema. */
export function defineAdapter<C>(adapter: AdapterModule<C>): AdapterModule<C> {
  return adapter;
}

/**
 * Waiting and retry delays for adapters: `sleep(ms, signal)`, `within(promise, ms)`,
 * `deadline(promise, ms, { timeout, signal })` and `backoffDelay(attempt, { min, max })`.
 */
export {
  type BackoffBounds,
  backoffDelay,
  deadline,
  type DeadlineOptions,
  sleep,
  within,
} from "./common/timing.ts";

/**
 * MQTT for adapters: the broker config keys (`brokerShape`), a subscriber that acknowledges a
 * QoS 1 message once it is stored (`runSubscriber`), the connection helper the gateway's own
 * MQTT clients use (`connectMqtt`, `mqttClientOptions`, `reconnectDelay`), and a queue that
 * groups readings of many messages into few `emit` calls (`ReadingQueue`).
 */
export {
  BROKER_URL,
  BrokerSetupError,
  connectMqtt,
  DEFAULT_RECONNECT,
  describeMqttError,
  keepReconnecting,
  type MqttClientOptions,
  mqttClientOptions,
  type MqttConnection,
  type MqttTls,
  reconnectDelay,
  topicMatchesFilter,
} from "./common/mqtt.ts";
export {
  type BrokerConfig,
  brokerShape,
  runSubscriber,
  type SubscriberOptions,
} from "./common/mqtt_subscriber.ts";
export { type TlsConfig, tlsSchema } from "./common/tls.ts";
/** Whether a `host:port` listen address only accepts connections from this machine. */
export { isLoopbackListen } from "./common/net.ts";
export {
  QueueStoppedError,
  ReadingQueue,
  type ReadingQueueOptions,
} from "./common/reading_queue.ts";
