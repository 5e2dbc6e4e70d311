import { defineAdapter, ReadingQueue, runSubscriber } from "../../src/adapter.ts";
import { type MqttConfig, mqttSchema } from "./config.ts";
import { compileSubscription } from "./_parse.ts";
import { RefusalLog, sample } from "../../src/limits.ts";

export { type MqttConfig, mqttSchema, type SubscriptionConfig } from "./config.ts";
export {
  type CompiledSubscription,
  compileSubscription,
  type Parsed,
  type ParseResult,
  parseTimestamp,
} from "./_parse.ts";

/**
 * Local MQTT devices (ESP32s and the like): subscribes to topic filters and turns JSON, bare
 * number or CSV payloads into readings, the device id (and metric) taken from topic levels.
 *
 * @example
 * ```yaml
 * - type: mqtt
 *   name: esp
 *   url: mqtt://127.0.0.1:1883
 *   subscriptions:
 *     - topic: sensors/{device}/{metric}
 *       format: number
 * ```
 */
export const mqtt = defineAdapter<MqttConfig>({
  type: "mqtt",
  schema: mqttSchema,
  async start({ name, config, emit, log, signal, count }) {
    const subs = config.subscriptions.map(compileSubscription);
    const topics: Record<string, 0 | 1 | 2> = {};
    for (const sub of subs) {
      const qos = sub.config.qos as 0 | 1 | 2;
      topics[sub.topic.filter] = Math.max(topics[sub.topic.filter] ?? 0, qos) as 0 | 1 | 2;
    }
    const queue = new ReadingQueue(emit, { highWater: config.maxPending, log, count, signal });
    const refusals = new RefusalLog(log);
    log.info("subscribing", { topics: Object.keys(topics).join(" ") });
    try {
      await runSubscriber(config, {
        name,
        topics,
        log,
        count,
        signal,
        onMessage(topic, payload) {
          count("messages");
          for (let i = 0; i < subs.length; i++) {
            const match = subs[i].match(topic);
            if (!match) continue;
            const r = subs[i].parse(match, payload, Date.now());
            if ("error" in r) {
              // Returning without a promise acknowledges it: a broker must not redeliver it.
              count("invalid_payloads");
              if (r.reason) count(`refused_${r.reason}`);
              refusals.refused(r.reason ?? "invalid", "payload refused", {
                topic: sample(topic),
                error: r.error,
                bytes: payload.byteLength,
                sample: sample(payload),
              });
              return;
            }
            if (r.skipped) count("skipped_fields", r.skipped);
            count("readings", r.readings.length);
            return queue.push(r.readings);
          }
          count("unmatched");
        },
        ready: () => queue.room(),
      });
    } finally {
      await queue.flush();
    }
  },
});
