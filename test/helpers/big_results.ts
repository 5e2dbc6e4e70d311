// What a stand-in gateway answers in the result tests: each far longer than 100 characters.
import type { QueryRow } from "../../src/protocol/mod.ts";

/** A status, log lines, a config and rows, each far longer than 100 characters. */
export function bigResults(t0: number) {
  const devices: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) devices[`meter-${i}`] = { power: i * 1.5, at: t0 + i };
  const statusResult = { gatewayId: "big", version: "1.0.0", devices, tail: "END-OF-STATUS" };
  const logLines = Array.from({ length: 30 }, (_, i) => ({
    ts: t0 + i * 1000,
    level: i % 5 ? "info" : "warn",
    component: "adapter/sim",
    msg: `line ${i} ${"x".repeat(150)} end-${i}`,
  }));
  const configYaml = Array.from({ length: 25 }, (_, i) => `# comment line ${i} ${"y".repeat(60)}`)
    .join("\n") + "\ngateway: { id: big }\n";
  const rows: QueryRow[] = Array.from({ length: 250 }, (_, i) => [
    i + 1,
    t0 + i * 60_000,
    "pump-1",
    "pressure",
    Math.round(i * 1.7 * 100) / 100,
    "bar",
    true,
  ]);
  return { statusResult, logLines, configYaml, rows };
}
