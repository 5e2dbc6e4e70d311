/**
 * Schemas of the edge-logic keys of the gateway YAML: `filters:`, `aggregate:` and `rules:`.
 * Cross-checks that need the rest of the file (a write action naming an adapter) run in the
 * gateway schema's refine, through {@linkcode checkRuleRefs}.
 */
import { isGlob } from "./_match.ts";
import {
  type Ctx,
  type Infer,
  INVALID,
  type JsonSchema,
  type Path,
  s,
  Schema,
  show,
} from "../config/schema.ts";

/** A device or metric pattern: an id where `*` matches any run of characters and `?` one. */
export const glob = (): Schema<string> =>
  s.string({
    min: 1,
    max: 128,
    pattern: /^[A-Za-z0-9*?._:\-\/]+$/,
    patternName: "a name or pattern of letters, digits, ._:-/ and * ?",
  });

/** Config schema of one `filters:` entry. */
export const filterSchema = s.object({
  device: glob().default("*").describe("Devices the filter applies to (glob)"),
  metric: glob().default("*").describe("Metrics the filter applies to (glob)"),
  range: s.object({
    min: s.number().optional().describe("Values below are dropped as noise"),
    max: s.number().optional().describe("Values above are dropped as noise"),
  }, {
    refine: (r, ctx, path) => {
      if (r.min === undefined && r.max === undefined) {
        ctx.fail(path, "expected min, max or both");
      } else if (r.min !== undefined && r.max !== undefined && r.max < r.min) {
        ctx.fail([...path, "max"], `expected max ≥ min (${r.min}), got ${r.max}`);
      }
    },
  }).optional().describe("Plausible range; values outside are dropped and counted"),
  deadband: s.object({
    absolute: s.number({ min: 0 }).optional().describe("Smallest change forwarded"),
    percent: s.number({ min: 0, max: 100 }).optional()
      .describe("Smallest change forwarded, in percent of the last forwarded value"),
  }, {
    refine: (d, ctx, path) => {
      if ((d.absolute === undefined) === (d.percent === undefined)) {
        ctx.fail(path, "expected exactly one of absolute, percent");
      }
    },
  }).optional().describe("Drop values that changed less than this since the last one kept"),
  throttle: s.duration({ min: 1 }).optional()
    .describe("Keep at most one value per this interval"),
  spike: s.object({
    window: s.integer({ min: 3, max: 99 }).default(5).describe("Values the median is taken over"),
    maxDeviation: s.number({ min: 0 }).describe("Largest distance from the median accepted"),
  }).optional().describe("Drop a value that is far from the median of the last ones"),
});

/** A validated `filters:` entry. */
export type FilterConfig = Infer<typeof filterSchema>;

/** Functions an aggregation window can compute. */
export const AGGREGATES = ["min", "max", "mean", "last", "count"] as const;
/** One aggregation function. */
export type AggregateFn = typeof AGGREGATES[number];

/** Config schema of one `aggregate:` entry. */
export const aggregateSchema = s.object({
  device: glob().default("*").describe("Devices to aggregate (glob)"),
  metric: glob().describe("Metrics to aggregate (glob); numeric values only"),
  window: s.duration({ min: 1000 }).describe("Tumbling window, aligned to the clock"),
  functions: s.array(s.enum(AGGREGATES), { min: 1 }).default([...AGGREGATES])
    .describe("What to compute per window; each becomes a metric <metric><separator><fn>"),
  separator: s.string({ max: 8, pattern: /^[._:\-\/]*$/, patternName: "one of ._:-/" })
    .default(".").describe("Between the metric name and the function name"),
  raw: s.enum(["forward", "local", "drop"] as const).default("forward")
    .describe(
      "forward: raw samples are buffered and sent too; local: raw samples are buffered for export but never sent; drop: only window results are kept",
    ),
  grace: s.duration({ max: 60_000 }).default(2000)
    .describe("How long after its end a window waits for late samples before closing"),
});

/** A validated `aggregate:` entry. */
export type AggregateConfig = Infer<typeof aggregateSchema>;

const threshold = () => s.number();

const leafShape = {
  device: glob().describe("Device id, or a glob (* ?): one alarm instance per matching device"),
  metric: glob().describe("Metric name, or a glob (single conditions only)"),
  above: threshold().optional().describe("Active when the value is above"),
  clearBelow: threshold().optional().describe("With above: clears only below this (hysteresis)"),
  below: threshold().optional().describe("Active when the value is below"),
  clearAbove: threshold().optional().describe("With below: clears only above this (hysteresis)"),
  equals: s.union<number | boolean | string>(
    [s.boolean(), s.number(), s.string()],
    "a number, true/false or a string",
  ).optional().describe("Active while the value equals this"),
  rate: s.object({
    above: s.number().optional(),
    below: s.number().optional(),
    per: s.duration({ min: 1 }).default(1000),
  }, {
    refine: (r, ctx, path) => {
      if (r.above === undefined && r.below === undefined) ctx.fail(path, "expected above or below");
    },
  }).optional().describe("Active while the change per `per` is above/below"),
  stale: s.duration({ min: 1 }).optional().describe("Active when no value came for this long"),
  for: s.duration().default(0).describe("How long the condition must hold before it counts"),
};

const KINDS = ["above", "below", "equals", "rate", "stale"] as const;

/** Config schema of one condition on one metric of one device. */
export const leafSchema = s.object(leafShape, {
  refine: (c, ctx, path) => {
    const kinds = KINDS.filter((k) => c[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.fail(
        path,
        kinds.length === 0
          ? `expected one of ${KINDS.join(", ")}`
          : `expected one of ${KINDS.join(", ")}, got ${kinds.join(" and ")}`,
      );
      return;
    }
    if (c.clearBelow !== undefined) {
      if (c.above === undefined) ctx.fail([...path, "clearBelow"], "clearBelow needs above", true);
      else if (c.clearBelow >= c.above) {
        ctx.fail(
          [...path, "clearBelow"],
          `expected clearBelow < above (${c.above}), got ${c.clearBelow}`,
        );
      }
    }
    if (c.clearAbove !== undefined) {
      if (c.below === undefined) ctx.fail([...path, "clearAbove"], "clearAbove needs below", true);
      else if (c.clearAbove <= c.below) {
        ctx.fail(
          [...path, "clearAbove"],
          `expected clearAbove > below (${c.below}), got ${c.clearAbove}`,
        );
      }
    }
  },
});

/** A validated single-metric condition. */
export type LeafCondition = Infer<typeof leafSchema>;

/** A rule's `when:`: one condition, or `all:` / `any:` of several. */
export type Condition = LeafCondition | { all: LeafCondition[] } | { any: LeafCondition[] };

/**
 * `when:` is a leaf condition, or a mapping with only `all:` or only `any:` (one level deep).
 * In `all:`/`any:` globs are allowed in `device` only, and every leaf with one uses the same
 * pattern: an alarm instance is one device, and each such leaf is read on that device.
 */
class ConditionSchema extends Schema<Condition> {
  readonly #list = s.array(leafSchema, { min: 1 });
  check(v: unknown, ctx: Ctx, path: Path): Condition | typeof INVALID {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(path, `expected a mapping, got ${show(v)}`);
    }
    const o = v as Record<string, unknown>;
    const combo = "all" in o ? "all" : "any" in o ? "any" : undefined;
    if (!combo) return leafSchema.check(v, ctx, path);
    const extra = Object.keys(o).filter((k) => k !== combo);
    if (extra.length) {
      return ctx.fail([...path, extra[0]], `unknown key beside "${combo}"`, true);
    }
    const list = this.#list.check(o[combo], ctx, [...path, combo]);
    if (list === INVALID) return INVALID;
    let pattern: { device: string; at: number } | undefined;
    let ok = true;
    list.forEach((leaf, i) => {
      if (isGlob(leaf.metric)) {
        ctx.fail(
          [...path, combo, i, "metric"],
          `expected a metric name inside ${combo}: (metric globs are for single conditions), got ${
            show(leaf.metric)
          }`,
        );
        ok = false;
      }
      if (!isGlob(leaf.device)) return;
      if (!pattern) pattern = { device: leaf.device, at: i };
      else if (leaf.device !== pattern.device) {
        ctx.fail(
          [...path, combo, i, "device"],
          `expected the device pattern of ${combo}[${pattern.at}] (${show(pattern.device)}), got ${
            show(leaf.device)
          }`,
        );
        ok = false;
      }
    });
    if (!ok) return INVALID;
    return combo === "all" ? { all: list } : { any: list };
  }
  protected json(): JsonSchema {
    const list = this.#list.toJsonSchema();
    const combo = (k: string) => ({
      type: "object",
      properties: { [k]: list },
      required: [k],
      additionalProperties: false,
    });
    return { anyOf: [leafSchema.toJsonSchema(), combo("all"), combo("any")] };
  }
}

const on = () =>
  s.enum(["raise", "clear", "both"] as const).default("raise")
    .describe("When the action runs: on raise, on clear, or both");

/** Config schema of one rule action; exactly one of write, mqtt, webhook, log. */
export const actionSchema = s.object({
  on: on(),
  write: s.object({
    adapter: s.id().describe("Adapter instance (its name:) that performs the write"),
    device: s.string({
      min: 1,
      max: 128,
      pattern: /^(?:\{device\}|[A-Za-z0-9])(?:\{device\}|[A-Za-z0-9._:\-\/])*$/,
      patternName: "a device id, or a template with {device} such as {device} or {device}-valve",
    }).describe(
      "Device to write to; {device} is the device that raised the alarm (with a device glob)",
    ),
    point: s.string({ min: 1 }).describe("Adapter-specific point (Modbus: register map name)"),
    value: s.union<number | boolean | string>(
      [s.boolean(), s.number(), s.string()],
      "a number, true/false or a string",
    ),
  }).optional().describe("Write a value through an adapter (e.g. a Modbus coil)"),
  mqtt: s.object({
    url: s.string({ pattern: /^mqtts?:\/\/.+/, patternName: "an mqtt:// or mqtts:// URL" }),
    topic: s.string({ min: 1 }),
    payload: s.string().optional()
      .describe(
        "Template; {rule} {instance} {state} {severity} {device} {metric} {value} {message} {ts}",
      ),
    retain: s.boolean().default(false),
  }).optional().describe("Publish to a local MQTT broker (QoS 1)"),
  webhook: s.object({
    url: s.string({ pattern: /^https?:\/\/.+/, patternName: "an http:// or https:// URL" }),
    timeout: s.duration({ min: 100, max: 60_000 }).default(5000),
  }).optional().describe("POST the alarm event as JSON"),
  log: s.object({
    level: s.enum(["info", "warn", "error"] as const).default("warn"),
    message: s.string().optional().describe("Template, as for mqtt payload"),
  }).optional().describe("Write a log line"),
}, {
  refine: (a, ctx, path) => {
    const kinds = (["write", "mqtt", "webhook", "log"] as const).filter((k) => a[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.fail(path, `expected exactly one of write, mqtt, webhook, log, got ${kinds.length}`);
    }
  },
});

/** A validated rule action. */
export type ActionConfig = Infer<typeof actionSchema>;

/** Config schema of one `rules:` entry. */
export const ruleSchema = s.object({
  name: s.id().describe("Rule name, unique; the alarm's id"),
  severity: s.enum(["info", "warning", "critical"] as const).default("warning"),
  message: s.string().optional().describe("Text of the alarm; a template as for mqtt payload"),
  when: new ConditionSchema().describe("Condition; a leaf, or all:/any: lists of leaves"),
  alarm: s.boolean().default(true).describe("Send raise/clear events upstream (priority lane)"),
  actions: s.array(actionSchema).default([]),
});

/** A validated rule. */
export type RuleConfig = Infer<typeof ruleSchema>;

/** The leaves of a condition. */
export function leavesOf(c: Condition): LeafCondition[] {
  return "all" in c ? c.all : "any" in c ? c.any : [c];
}

/** Reports rule names used twice and write actions naming an adapter not in `adapters`. */
export function checkRuleRefs(
  rules: RuleConfig[],
  adapters: readonly string[],
  ctx: Ctx,
): void {
  const seen = new Map<string, number>();
  rules.forEach((r, i) => {
    const prev = seen.get(r.name);
    if (prev !== undefined) {
      ctx.fail(["rules", i, "name"], `duplicate rule name "${r.name}" (also rules[${prev}])`);
    }
    seen.set(r.name, i);
    r.actions.forEach((a, j) => {
      if (a.write && !adapters.includes(a.write.adapter)) {
        ctx.fail(
          ["rules", i, "actions", j, "write", "adapter"],
          `unknown adapter ${show(a.write.adapter)}; expected one of the adapters' names: ${
            adapters.join(", ") || "(none)"
          }`,
        );
      }
    });
  });
}
