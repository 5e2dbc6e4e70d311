import { type Infer, s } from "../../src/config/schema.ts";
import { brokerShape } from "../../src/adapter.ts";

/** Config schema of the `zigbee2mqtt` adapter. */
export const zigbee2mqttSchema = s.object({
  ...brokerShape,
  baseTopic: s.string({
    min: 1,
    max: 256,
    pattern: /^[^+#/](?:[^+#]*[^+#/])?$/,
    patternName: "a topic without wildcards or leading/trailing slash, such as zigbee2mqtt",
  }).default("zigbee2mqtt").describe("zigbee2mqtt's base_topic"),
  qos: s.integer({ min: 0, max: 2 }).default(1).describe("Subscription QoS"),
  maxMessageBytes: s.bytes({ min: 16, max: 64 * 1024 ** 2 }).default(256 * 1024)
    .describe("Largest payload read; larger messages are acknowledged, counted and dropped"),
  devices: s.record(s.id()).optional()
    .describe("Friendly name → device id; other names are used as ids (unsafe characters → _)"),
  onlyMapped: s.boolean().default(false)
    .describe("Ignore devices whose friendly name is not in devices"),
  metrics: s.record(s.object({
    metric: s.id().optional().describe("Metric name instead of the payload key"),
    unit: s.string({ max: 32 }).optional().describe("Unit instead of the built-in one"),
    scale: s.number().optional().describe("Multiply numeric values by this"),
    offset: s.number().optional().describe("Then add this"),
  })).optional().describe("Per payload key (nested keys dotted: color.x) overrides"),
  include: s.array(s.string({ min: 1 })).optional()
    .describe("Only these payload keys (a top-level key covers its nested keys)"),
  exclude: s.array(s.string({ min: 1 })).optional().describe("Never these payload keys"),
  strings: s.boolean().default(false)
    .describe('Also emit string values (e.g. action: "single"); "ON"/"OFF" are always booleans'),
  timestamp: s.enum(["received", "last_seen"] as const).default("received")
    .describe("Source timestamp: time of receipt, or the payload's last_seen when present"),
  availability: s.boolean().default(true)
    .describe("Follow <base>/<device>/availability into device states"),
});

/** Validated config of the `zigbee2mqtt` adapter. */
export type Zigbee2mqttConfig = Infer<typeof zigbee2mqttSchema>;
