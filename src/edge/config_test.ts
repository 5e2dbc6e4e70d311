import assert from "node:assert/strict";
import { adapters } from "../../adapters/mod.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { ConfigError, parseConfig } from "../config/load.ts";

const HEAD = `gateway: { id: gw }
adapters:
  - type: simulated
    name: plc
`;

function problems(yaml: string): string[] {
  try {
    parseConfig(HEAD + yaml, gatewaySchema(adapters), { displayName: "site.yaml" });
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  return [];
}

Deno.test("rules are validated with the config, with file:line:col", () => {
  assert.deepEqual(
    problems(`rules:
  - name: hot
    when: { device: p, metric: pressure, above: 8, clearBelow: 9 }
    actions:
      - write: { adapter: plx, device: p, point: run, value: false }
`),
    [
      "site.yaml:7:64 rules[0].when.clearBelow: expected clearBelow < above (8), got 9",
    ],
  );
  assert.deepEqual(
    problems(`rules:
  - name: hot
    when: { device: p, metric: pressure, above: 8, clearBelow: 7 }
    actions:
      - write: { adapter: plx, device: p, point: run, value: false }
`),
    [
      'site.yaml:9:27 rules[0].actions[0].write.adapter: unknown adapter "plx"; expected one of the adapters\' names: plc',
    ],
  );
  assert.match(
    problems(`rules:
  - name: r
    when: { any: [{ device: p, metric: x, above: 1, stale: 5s }] }
`)[0],
    /^site\.yaml:7:19 rules\[0\]\.when\.any\[0\]: expected one of above, below, equals, rate, stale, got above and stale$/,
  );
  assert.match(
    problems(`filters:
  - { device: "pump-*", deadband: { absolute: 1, percent: 2 } }
aggregate:
  - { metric: t, window: 10s, functions: [mean, median] }
`).join("\n"),
    /site\.yaml:6:35 filters\[0\]\.deadband: expected exactly one of absolute, percent\n.*site\.yaml:8:49 aggregate\[0\]\.functions\[1\]: expected one of min, max, mean, last, count, got "median"/,
  );
});

Deno.test("a config with filters, aggregation and rules validates with defaults", () => {
  assert.deepEqual(
    problems(`filters:
  - { device: "pump-*", metric: pressure, range: { min: 0, max: 16 }, throttle: 1s }
aggregate:
  - { metric: temperature, window: 1m }
rules:
  - name: pump-3-pressure-high
    severity: critical
    when: { device: pump-3, metric: pressure, above: 8, clearBelow: 7.5, for: 10s }
    actions:
      - write: { adapter: plc, device: pump-3, point: run, value: false }
      - { on: both, log: { message: "{rule} {state}" } }
`),
    [],
  );
});

Deno.test("rule conditions take globs; in all:/any: only one device pattern and no metric globs", () => {
  assert.deepEqual(
    problems(`rules:
  - name: hot
    when: { device: "pump-*", metric: "temp-?", above: 80 }
  - name: dry
    when:
      all:
        - { device: "pump-*", metric: flow, below: 1 }
        - { device: plant, metric: mode, equals: auto }
        - { device: "pump-*", metric: running, equals: true }
`),
    [],
  );
  assert.deepEqual(
    problems(`rules:
  - name: dry
    when:
      any:
        - { device: "pump-*", metric: flow, below: 1 }
        - { device: "valve-*", metric: open, equals: false }
        - { device: plant, metric: "temp-*", above: 80 }
  - name: bad
    when: { device: "pump #1", metric: x, above: 1 }
`),
    [
      'site.yaml:10:21 rules[0].when.any[1].device: expected the device pattern of any[0] ("pump-*"), got "valve-*"',
      'site.yaml:11:36 rules[0].when.any[2].metric: expected a metric name inside any: (metric globs are for single conditions), got "temp-*"',
      'site.yaml:13:21 rules[1].when.device: expected a name or pattern of letters, digits, ._:-/ and * ?, got "pump #1"',
    ],
  );
});
