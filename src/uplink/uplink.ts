import type { StoredReading } from "../reading.ts";

/** One message ready for the uplink, covering readings with sequence numbers `first…last`. */
export interface OutMessage {
  /** MQTT topic, or the path/label an HTTPS uplink uses. */
  topic: string;
  payload: string;
  /** Sequence number of the first and last reading it holds. */
  first: number;
  last: number;
  /** Readings it holds. */
  count: number;
}

/** Uplink connection state, as shown in status. */
export interface UplinkState {
  type: string;
  /** The broker or endpoint, without credentials. */
  target: string;
  connected: boolean;
  /** When `connected` last changed, ms since epoch. */
  since: number;
  lastError: string | null;
  /** Messages confirmed (PUBACK / 2xx) since start. */
  acked: number;
  /** Messages that failed and will be retried. */
  failed: number;
  /** Batches set aside as rejected by the receiver (HTTPS 4xx), kept in the buffer. */
  rejected?: number;
  inflight: number;
  /** While disconnected: when the next connection attempt is due, ms since epoch. */
  nextAttemptAt?: number | null;
}

/** Retained gateway status message. */
export interface StatusMessage {
  gatewayId: string;
  state: "online" | "offline";
  version: string;
  ts: number;
  backlog?: number;
  oldestPendingAgeMs?: number | null;
  lastForwardedAt?: number | null;
  reason?: string;
  [key: string]: unknown;
}

/** A message received on a subscription of the uplink's connection. */
export interface InboundMessage {
  topic: string;
  payload: Uint8Array;
  /** The broker delivered it from its retained store (it was published earlier). */
  retain: boolean;
}

/** A subscription on an uplink's connection; it is renewed on every reconnect. */
export interface UplinkSubscription {
  /** True while the broker has granted it on the current connection. */
  readonly active: boolean;
  /** Ends the subscription. */
  close(): void;
}

/**
 * An uplink delivers messages and confirms them. `send` resolves only once the far end confirmed
 * (MQTT PUBACK for QoS 1, HTTP 2xx); it rejects on any failure, and the forwarder retries.
 */
export interface Uplink {
  readonly type: string;
  /** Most messages the forwarder should have in flight at once. */
  readonly maxInflight: number;
  /** Encodes readings (in sequence order) into this uplink's messages. */
  encode(readings: StoredReading[]): OutMessage[];
  send(message: OutMessage): Promise<void>;
  /** Sends an alarm event ahead of everything else. */
  sendAlarm?(event: Record<string, unknown>): Promise<void>;
  /** Publishes the retained status (MQTT); optional for uplinks without one. */
  publishStatus?(status: StatusMessage): Promise<void>;
  readonly connected: boolean;
  state(): UplinkState;
  /** Calls `listener` whenever `connected` changes; returns the unsubscribe function. */
  onStateChange(listener: (connected: boolean) => void): () => void;
  /**
   * Subscribes to MQTT topic filters (QoS 1) on the uplink's own connection, again after every
   * reconnect; `handler` gets each matching message. Only uplinks that have a broker (MQTT).
   */
  subscribe?(
    filters: readonly string[],
    handler: (msg: InboundMessage) => void,
  ): UplinkSubscription;
  /** Publishes one message (QoS 1); resolves on PUBACK. Only uplinks that have a broker (MQTT). */
  publish?(topic: string, payload: string, opts?: { retain?: boolean }): Promise<void>;
  /** Connects, and keeps reconnecting until closed. */
  start(): void;
  /** Disconnects; with `status`, publishes it first (graceful offline). */
  close(status?: StatusMessage): Promise<void>;
}

/** The uplink refused a message for good (HTTP 4xx other than 408/429): set it aside. */
export class PermanentUplinkError extends Error {
  override name = "PermanentUplinkError";
}

/** A retryable uplink failure (not connected, timeout, connection lost, 5xx). */
export class UplinkError extends Error {
  override name = "UplinkError";
}
