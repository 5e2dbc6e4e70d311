import { type Infer, s } from "../../src/config/schema.ts";

const metric = s.object({
  name: s.id().describe("Metric name"),
  pattern: s.enum(["sine", "random-walk", "step", "constant", "counter", "toggle"] as const)
    .default("sine").describe("How the value evolves over time"),
  unit: s.string({ max: 32 }).optional().describe("Unit of the value"),
  min: s.number().default(0).describe("Lowest value of the pattern"),
  max: s.number().default(100).describe("Highest value of the pattern"),
  period: s.duration({ min: 1 }).default(60_000).describe("Period of sine and step patterns"),
  decimals: s.integer({ min: 0, max: 10 }).default(2).describe("Digits after the decimal point"),
}, {
  refine: (m, ctx, path) => {
    if (m.min > m.max) ctx.fail([...path, "max"], `expected max ≥ min (${m.min}), got ${m.max}`);
  },
});

/** Config schema of the `simulated` adapter. */
export const simulatedSchema = s.object({
  devices: s.integer({ min: 1, max: 100_000 }).default(3).describe("Number of simulated devices"),
  prefix: s.id().default("sim").describe("Device ids are {prefix}-{n}, n from 1"),
  interval: s.duration({ min: 1, max: 86_400_000 }).default(1000)
    .describe("Time between two samples of one device"),
  metrics: s.array(metric, { min: 1 }).default([
    {
      name: "temperature",
      pattern: "sine",
      unit: "C",
      min: 15,
      max: 25,
      period: 60_000,
      decimals: 2,
    },
  ]).describe("Metrics every device reports"),
  spikes: s.object({
    probability: s.number({ min: 0, max: 1 }).describe("Chance per sample of a spike"),
    magnitude: s.number().default(100).describe("Added to the value when a spike happens"),
  }).optional().describe("Inject outliers, to exercise filters"),
  gaps: s.object({
    probability: s.number({ min: 0, max: 1 }).describe(
      "Chance per sample that a device goes silent",
    ),
    duration: s.duration({ min: 1 }).default(10_000).describe("How long a gap lasts"),
  }).optional().describe("Inject silences, to exercise staleness rules"),
  failAfter: s.duration({ min: 1 }).optional()
    .describe("Throw after running this long (tests the restart of failing adapters)"),
  seed: s.integer({ min: 0 }).optional().describe("Random seed, for repeatable runs"),
});

/** Validated config of the `simulated` adapter. */
export type SimulatedConfig = Infer<typeof simulatedSchema>;
