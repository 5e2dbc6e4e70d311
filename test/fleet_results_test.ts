// `outpost fleet send status|logs|query|config-get` against a stand-in gateway on a real Mosquitto:
// every result is printed whole, however long (no cut at 100 characters).
import assert from "node:assert/strict";
import { CSV_HEADER, csvLine } from "../src/buffer/export.ts";
import { queryRowReading } from "../src/protocol/mod.ts";
import { bigResults } from "./helpers/big_results.ts";
import { type FakeGateway, startFakeGateway } from "./helpers/fake_gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { runOutpost as outpost } from "./helpers/cli.ts";

Deno.test("fleet send status|logs|query|config-get prints complete results, not cut at 100 characters", async () => {
  const broker = await startMosquitto();
  let fake: FakeGateway | undefined;
  try {
    const t0 = Date.UTC(2026, 11, 3, 14, 5, 9);
    const big = bigResults(t0);
    fake = await startFakeGateway({ url: broker.url, id: "big", ...big });
    const send = (cmd: string, ...more: string[]) =>
      outpost(["fleet", "send", cmd, "--gateway", "big", "--broker", broker.url, ...more]);

    const status = await send("status");
    assert.equal(status.code, 0, status.stderr);
    assert.ok(status.stdout.includes("END-OF-STATUS"), status.stdout);
    assert.ok(status.stdout.includes('"meter-39"'), "every device of the status");

    const logs = await send("logs", "--args", '{"lines":30}');
    assert.equal(logs.code, 0, logs.stderr);
    // Whole, and both shapes of line (this build's flat fields, an older gateway's nested ones).
    for (const line of big.logText) assert.ok(logs.stdout.includes(line), line.slice(0, 40));
    assert.match(
      logs.stdout,
      /^2026-12-03 14:05:09 UTC\s+warn\s+\[adapter\/sim\] line 0 x+ end-0 \{"reading":0\}$/m,
    );

    const config = await send("config-get");
    assert.equal(config.code, 0, config.stderr);
    assert.ok(config.stdout.includes(big.configYaml), "the whole config");

    const query = await send("query", "--args", '{"device":"pump-1"}');
    assert.equal(query.code, 0, query.stderr);
    const csv = [CSV_HEADER, ...big.rows.map((r) => csvLine(queryRowReading(r)))].join("\n");
    assert.ok(query.stdout.includes(csv), "every row of every page, as CSV");

    // --json carries the same, page rows included.
    const json = await send("query", "--args", '{"device":"pump-1"}', "--json");
    assert.equal(json.code, 0, json.stderr);
    const run = JSON.parse(json.stdout);
    assert.deepEqual(run.results[0].rows, big.rows);
  } finally {
    await fake?.close();
    await broker.stop();
  }
});
