import mqtt from "mqtt";
import { decodeBatch } from "../../src/uplink/encode.ts";
import type { StoredReading } from "../../src/reading.ts";

/** A cloud-side consumer for tests: subscribes, decodes batches and per-reading messages. */
export interface Subscriber {
  /** Every reading received, duplicates included, in arrival order. */
  all: StoredReading[];
  /** Unique readings by sequence number (tests use one buffer, so one epoch). */
  unique(): Map<number, StoredReading>;
  /** Buffer epochs seen. */
  epochs: Set<string>;
  /** Retained/live status messages by arrival. */
  statuses: Record<string, unknown>[];
  /** Readings received per device, in arrival order, duplicates dropped. */
  byDevice(): Map<string, StoredReading[]>;
  close(): Promise<void>;
}

/** Options of {@linkcode subscribe}. */
export interface SubscribeOptions {
  /** Called for every message as it arrives, before it is decoded (timing, sizes, other topics). */
  onMessage?: (topic: string, payload: Uint8Array, receivedAt: number) => void;
}

/** Connects to `url` and subscribes to `gateways/#`. */
export async function subscribe(
  url: string,
  topic = "gateways/#",
  opts: SubscribeOptions = {},
): Promise<Subscriber> {
  const client = await mqtt.connectAsync(url, {
    clientId: `test-sub-${crypto.randomUUID().slice(0, 8)}`,
    reconnectPeriod: 200,
    clean: false,
  });
  const all: StoredReading[] = [];
  const statuses: Record<string, unknown>[] = [];
  const seen = new Map<number, StoredReading>();
  const epochs = new Set<string>();
  const order: StoredReading[] = [];
  client.on("message", (t, payload) => {
    opts.onMessage?.(t, payload, Date.now());
    const text = payload.toString();
    if (t.endsWith("/status")) {
      statuses.push(JSON.parse(text));
      return;
    }
    if (!t.endsWith("/telemetry")) return;
    const msg = JSON.parse(text);
    const batch = msg.v === 1
      ? decodeBatch(text)
      : { epoch: msg.epoch, readings: [{ ...msg, device: msg.device }] as StoredReading[] };
    epochs.add(batch.epoch);
    for (const r of batch.readings) {
      all.push(r);
      const key = r.seq;
      const prev = seen.get(key);
      if (prev) {
        if (prev.value !== r.value || prev.device !== r.device || prev.ts !== r.ts) {
          throw new Error(`seq ${r.seq} delivered twice with different content`);
        }
        continue;
      }
      seen.set(key, r);
      order.push(r);
    }
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    all,
    statuses,
    epochs,
    unique: () => seen,
    byDevice: () => {
      const m = new Map<string, StoredReading[]>();
      for (const r of order) {
        const list = m.get(r.device) ?? [];
        list.push(r);
        m.set(r.device, list);
      }
      return m;
    },
    close: async () => {
      await client.endAsync(true);
    },
  };
}
