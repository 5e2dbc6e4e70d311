import { type Infer, s } from "../../src/config/schema.ts";
import { brokerShape } from "../../src/adapter.ts";
import { compileTemplate, compileTopic } from "./_topic.ts";

const valueSpec = {
  metric: s.id().describe("Metric name"),
  unit: s.string({ max: 32 }).optional().describe("Unit of the value"),
  scale: s.number().optional().describe("Multiply numeric values by this"),
  offset: s.number().optional().describe("Then add this"),
};

const fieldObject = s.object(valueSpec);

/** One mapped JSON field: a metric name, or a metric with unit and scaling. */
const fieldSchema = s.union<string | Infer<typeof fieldObject>>(
  [s.id(), fieldObject],
  "a metric name or a mapping with metric, unit, scale, offset",
);

/** One CSV column: a metric name, "-" to skip it, or a metric with unit and scaling. */
const columnSchema = s.union<string | Infer<typeof fieldObject>>(
  [
    s.string({
      min: 1,
      max: 128,
      pattern: /^(-|[A-Za-z0-9][A-Za-z0-9._:\-\/]*)$/,
      patternName: 'a metric name or "-"',
    }),
    fieldObject,
  ],
  'a metric name, "-" to skip the column, or a mapping with metric, unit, scale, offset',
);

const ONLY: Record<string, readonly string[]> = {
  fields: ["json"],
  timestampField: ["json"],
  columns: ["csv"],
  delimiter: ["csv"],
  timestampColumn: ["csv"],
  metric: ["number"],
  unit: ["number"],
  scale: ["number"],
  offset: ["number"],
};

const subscription = s.object({
  topic: s.string({ min: 1, max: 1024 })
    .describe("Topic filter with + and #; a level written {name} matches like + and is captured"),
  device: s.string({ min: 1, max: 256 }).optional()
    .describe(
      'Device id template: {N} is topic level N (from 0), {name} a named level; default "{device}"',
    ),
  format: s.enum(["json", "number", "csv"] as const).default("json")
    .describe("Payload format"),
  qos: s.integer({ min: 0, max: 2 }).default(1).describe("Subscription QoS"),
  maxMessageBytes: s.bytes({ min: 16, max: 64 * 1024 ** 2 }).default(256 * 1024)
    .describe("Largest payload read; larger messages are acknowledged, counted and dropped"),
  fields: s.record(fieldSchema).optional()
    .describe(
      "json: dotted path (a.b.c, list items by index) → metric; absent: every number and boolean",
    ),
  timestampField: s.string({ min: 1 }).optional()
    .describe("json: dotted path of the source timestamp; absent: time of receipt"),
  columns: s.array(columnSchema, { min: 1 }).optional()
    .describe("csv: one entry per column, in order"),
  delimiter: s.string({ min: 1, max: 1 }).default(",").describe("csv: column separator"),
  timestampColumn: s.integer({ min: 0 }).optional()
    .describe("csv: column (from 0) holding the source timestamp"),
  timestampFormat: s.enum(["auto", "ms", "s", "iso"] as const).default("auto")
    .describe("auto: numbers below 1e11 are seconds, larger ones ms, strings ISO 8601"),
  metric: s.string({ min: 1, max: 256 }).optional()
    .describe('number: metric name template, like device; default "{metric}"'),
  unit: s.string({ max: 32 }).optional().describe("number: unit of the value"),
  scale: s.number().optional().describe("number: multiply the value by this"),
  offset: s.number().optional().describe("number: then add this"),
}, {
  refine: (sub, ctx, path) => {
    const topic = compileTopic(sub.topic);
    if (typeof topic === "string") {
      ctx.fail([...path, "topic"], topic);
      return;
    }
    for (const [key, formats] of Object.entries(ONLY)) {
      const set = (sub as Record<string, unknown>)[key] !== undefined &&
        !(key === "delimiter" && sub.delimiter === ",");
      if (set && !formats.includes(sub.format)) {
        ctx.fail(
          [...path, key],
          `applies to format ${formats.join(", ")} only, not ${sub.format}`,
          true,
        );
      }
    }
    const device = sub.device ?? (topic.names.includes("device") ? "{device}" : undefined);
    if (device === undefined) {
      ctx.fail(path, 'missing key "device": name a topic level {device} or give a template');
    } else {
      const t = compileTemplate(device, topic);
      if (typeof t === "string") ctx.fail([...path, "device"], t);
    }
    if (sub.format === "number") {
      const metric = sub.metric ?? (topic.names.includes("metric") ? "{metric}" : undefined);
      if (metric === undefined) {
        ctx.fail(path, 'missing key "metric": name a topic level {metric} or give a template');
      } else {
        const t = compileTemplate(metric, topic);
        if (typeof t === "string") ctx.fail([...path, "metric"], t);
      }
    }
    if (sub.format === "csv") {
      if (!sub.columns) ctx.fail(path, 'missing key "columns" (required by format csv)');
      else if (sub.timestampColumn !== undefined && sub.timestampColumn >= sub.columns.length) {
        ctx.fail(
          [...path, "timestampColumn"],
          `expected a column below ${sub.columns.length} (the number of columns), got ${sub.timestampColumn}`,
        );
      }
    }
  },
});

/** Config schema of the `mqtt` adapter. */
export const mqttSchema = s.object({
  ...brokerShape,
  subscriptions: s.array(subscription, { min: 1 })
    .describe("What to subscribe to and how to read it; a message goes to the first that matches"),
});

/** Validated config of the `mqtt` adapter. */
export type MqttConfig = Infer<typeof mqttSchema>;

/** One validated subscription of the `mqtt` adapter. */
export type SubscriptionConfig = MqttConfig["subscriptions"][number];
