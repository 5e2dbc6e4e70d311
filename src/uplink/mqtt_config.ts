import { type Infer, s } from "../config/schema.ts";
import { BROKER_URL } from "../common/mqtt.ts";
import { tlsSchema } from "../common/tls.ts";

/** Config schema of the MQTT uplink. */
export const mqttUplinkSchema = s.object({
  url: s.string({
    pattern: BROKER_URL,
    patternName: "a broker URL such as mqtts://broker.example.com:8883",
  }).describe("Broker URL: mqtt:// (plain) or mqtts:// (TLS)"),
  clientId: s.string({ min: 1, max: 128 }).optional()
    .describe("MQTT client id; defaults to the gateway id (AWS IoT: the thing name)"),
  username: s.string().optional().describe("Username; use ${ENV} or ${file:...}"),
  password: s.string().optional().describe("Password; use ${ENV} or ${file:...}"),
  tls: tlsSchema.optional().describe("TLS and mutual TLS settings"),
  topicMode: s.enum(["batch", "per-reading"] as const).default("batch")
    .describe("batch: many readings per message; per-reading: one message per reading"),
  topic: s.string({ min: 1 }).default("gateways/{gatewayId}/telemetry")
    .describe("Topic of batch messages"),
  readingTopic: s.string({ min: 1 }).default("gateways/{gatewayId}/devices/{deviceId}/telemetry")
    .describe("Topic of per-reading messages; {gatewayId}, {deviceId} and {metric} are replaced"),
  statusTopic: s.string({ min: 1 }).default("gateways/{gatewayId}/status")
    .describe("Retained status topic, also the last-will topic"),
  alarmTopic: s.string({ min: 1 }).default("gateways/{gatewayId}/alarms")
    .describe("Topic of alarm events (priority lane)"),
  statusInterval: s.duration({ min: 1000 }).default(30_000)
    .describe("How often the retained status is refreshed"),
  maxMessageBytes: s.bytes({ min: 1024, max: 256 * 1024 * 1024 }).default(128 * 1024)
    .describe(
      "Upper bound of a batch message and of the retained status (AWS IoT Core: 128KB; a broker's message_size_limit)",
    ),
  targetMessageBytes: s.bytes({ min: 512 }).optional()
    .describe("Close a batch once it reaches this size (e.g. 5KB, AWS's billing unit)"),
  maxInflight: s.integer({ min: 1, max: 1000 }).default(16)
    .describe("Messages published and not yet acknowledged"),
  keepalive: s.duration({ min: 1000, max: 3_600_000 }).default(30_000),
  connectTimeout: s.duration({ min: 1000 }).default(15_000),
  ackTimeout: s.duration({ min: 1000 }).default(30_000)
    .describe("A publish without PUBACK after this long is retried on a new connection"),
  reconnect: s.object({
    min: s.duration({ min: 10 }).default(1000).describe("First retry delay"),
    max: s.duration({ min: 10 }).default(5000)
      .describe("Largest retry delay: the uplink is back within this long of the broker's return"),
  }).default({ min: 1000, max: 5000 }).describe("Exponential backoff with full jitter"),
  backfill: s.object({
    messagesPerSecond: s.number({ min: 0.01 }).optional()
      .describe("Cap on backlog messages per second"),
    bytesPerSecond: s.bytes({ min: 1 }).optional().describe("Cap on backlog bytes per second"),
  }).optional().describe("Pacing of the backlog after an outage; live readings are not paced"),
});

/** Validated config of the MQTT uplink. */
export type MqttUplinkConfig = Infer<typeof mqttUplinkSchema>;
