import { defineAdapter, ReadingQueue, runSubscriber } from "../../src/adapter.ts";
import { type Zigbee2mqttConfig, zigbee2mqttSchema } from "./config.ts";
import { type MapOptions, mapPayload, parseAvailability, sanitizeId } from "./_map.ts";
import { checkSize, type LimitReason, RefusalLog, sample } from "../../src/limits.ts";

export { type Zigbee2mqttConfig, zigbee2mqttSchema } from "./config.ts";
export {
  type KeyOverride,
  type MapOptions,
  mapPayload,
  type MapResult,
  parseAvailability,
  sanitizeId,
  UNITS,
} from "./_map.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Zigbee devices through zigbee2mqtt: subscribes to `<base>/+` and `<base>/+/availability` on
 * the broker zigbee2mqtt publishes to, maps payload keys to metrics with units, and follows
 * availability into device states. `bridge/` topics are ignored.
 *
 * @example
 * ```yaml
 * - type: zigbee2mqtt
 *   name: zigbee
 *   url: mqtt://127.0.0.1:1883
 *   devices: { "Kitchen sensor": kitchen-th }
 * ```
 */
export const zigbee2mqtt = defineAdapter<Zigbee2mqttConfig>({
  type: "zigbee2mqtt",
  schema: zigbee2mqttSchema,
  async start({ name, config, emit, log, signal, count, setDeviceState }) {
    const base = config.baseTopic;
    const qos = config.qos as 0 | 1 | 2;
    const topics: Record<string, 0 | 1 | 2> = { [`${base}/+`]: qos };
    if (config.availability) topics[`${base}/+/availability`] = qos;
    const options: MapOptions = {
      metrics: config.metrics,
      include: config.include && new Set(config.include),
      exclude: config.exclude && new Set(config.exclude),
      strings: config.strings,
      timestamp: config.timestamp,
    };
    const devices = new Map(Object.entries(config.devices ?? {}));
    const ids = new Map<string, string | undefined>();
    const deviceId = (friendly: string): string | undefined => {
      if (!ids.has(friendly)) {
        const mapped = devices.get(friendly);
        const id = mapped ?? (config.onlyMapped ? undefined : sanitizeId(friendly));
        if (id === undefined && !config.onlyMapped) {
          log.warn("friendly name gives no device id; map it under devices", { friendly });
        }
        // Bounded: a broker full of stray topics must not grow this without limit.
        if (ids.size >= 100_000) ids.clear();
        ids.set(friendly, id);
      }
      return ids.get(friendly);
    };
    const refusals = new RefusalLog(log);
    const queue = new ReadingQueue(emit, { highWater: config.maxPending, log, count, signal });
    log.info("following zigbee2mqtt", { baseTopic: base });

    const onMessage = (topic: string, payload: Uint8Array): Promise<void> | undefined => {
      if (!topic.startsWith(base + "/")) return;
      const parts = topic.slice(base.length + 1).split("/");
      if (parts[0] === "bridge" || parts[0] === "") return;
      const isAvailability = parts.length === 2 && parts[1] === "availability";
      if (parts.length !== 1 && !isAvailability) return;
      // An empty payload clears a retained message; nothing to read.
      if (payload.length === 0) return;
      const id = deviceId(parts[0]);
      if (id === undefined) return;
      count("messages");
      const big = checkSize(payload.byteLength, config.maxMessageBytes, "message");
      if (big) return invalid(topic, `${big.message} (maxMessageBytes)`, payload, big.reason);
      let text: string;
      try {
        text = decoder.decode(payload);
      } catch {
        return invalid(topic, "payload is not UTF-8 text", payload);
      }
      if (isAvailability) {
        const state = parseAvailability(text);
        if (!state) {
          return invalid(
            topic,
            `unknown availability ${JSON.stringify(text.slice(0, 40))}`,
            payload,
          );
        }
        setDeviceState(
          id,
          state,
          state === "offline" ? "zigbee2mqtt reports it offline" : undefined,
        );
        return;
      }
      const r = mapPayload(id, text, options, Date.now());
      if ("error" in r) return invalid(topic, r.error, payload, r.reason);
      if (r.skipped) count("skipped_fields", r.skipped);
      count("readings", r.readings.length);
      return queue.push(r.readings);
    };

    /** Counts and logs a refused message; returning no promise acknowledges it to the broker. */
    function invalid(
      topic: string,
      error: string,
      payload: Uint8Array,
      reason?: LimitReason,
    ): undefined {
      count("invalid_payloads");
      if (reason) count(`refused_${reason}`);
      refusals.refused(reason ?? "invalid", "payload refused", {
        topic: sample(topic),
        error,
        bytes: payload.byteLength,
        sample: sample(payload),
      });
      return undefined;
    }

    try {
      await runSubscriber(config, {
        name,
        topics,
        log,
        count,
        signal,
        onMessage,
        ready: () => queue.room(),
      });
    } finally {
      await queue.flush();
    }
  },
});
