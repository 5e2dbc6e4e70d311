// What a stand-in gateway answers in the result tests: each far longer than 100 characters.
import type { QueryRow } from "../../src/protocol/mod.ts";

/**
 * A status, log lines (with `logText`, each line as the fleet console prints it), a config and
 * rows, each far longer than 100 characters.
 */
export function bigResults(t0: number) {
  const devices: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) devices[`meter-${i}`] = { power: i * 1.5, at: t0 + i };
  const statusResult = { gatewayId: "big", version: "1.0.0", devices, tail: "END-OF-STATUS" };
  // Lines as gateways reply: this build's shape (ISO ts, fields flat beside msg) and, from
  // gateways of earlier builds in the same fleet, epoch-ms ts with the fields nested.
  const logLines: Record<string, unknown>[] = [];
  const logText: string[] = [];
  for (let i = 0; i < 30; i++) {
    const ts = t0 + i * 1000;
    const level = i % 5 ? "info" : "warn";
    const line = { level, component: "adapter/sim", msg: `line ${i} ${"x".repeat(150)} end-${i}` };
    logLines.push(
      i % 3 === 0
        ? { ts: new Date(ts).toISOString(), ...line, reading: i }
        : i % 3 === 1
        ? { ts, ...line, fields: { reading: i } }
        : { ts, ...line },
    );
    const when = new Date(ts).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    const fields = i % 3 === 2 ? "" : ` {"reading":${i}}`;
    logText.push(`${when}  ${level.padEnd(5)}  [adapter/sim] ${line.msg}${fields}`);
  }
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
  return { statusResult, logLines, logText, configYaml, rows };
}
