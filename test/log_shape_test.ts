/**
 * One JSON shape for log lines: what a gateway with `log.format: json` writes to stdout (for
 * journald and log shippers), what `/logs` answers and what the remote `logs` command replies carry
 * the same keys and values.
 */
import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";
import { commandRig, expectDone } from "./helpers/commands.ts";

Deno.test("log.format json: a stdout line and the same line from /logs are the same JSON object (ISO ts, flat fields)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-log-shape-" });
  const gw = await startGateway(
    dir,
    `
gateway: { id: log-gw }
buffer: { path: ${dir}/data/buffer.db }
log: { format: json }
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 1s }
`,
  );
  try {
    const stdout = await waitFor(
      "the 'starting' line on stdout",
      () => {
        const line = gw.output().split("\n").find((l) => l.includes('"msg":"starting"'));
        return Promise.resolve(line ? JSON.parse(line) : false);
      },
      10_000,
      50,
    );
    const { lines } = await (await gw.get("/logs?n=1000")).json() as {
      lines: Record<string, unknown>[];
    };
    const fromHttp = lines.find((l) => l.msg === "starting" && l.component === "gateway");
    assert.ok(fromHttp, JSON.stringify(lines.slice(0, 3)));
    assert.deepEqual(fromHttp, stdout);
    assert.match(String(fromHttp.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(fromHttp.gateway, "log-gw", "fields are flat, beside msg");
    assert.equal("fields" in fromHttp, false);
  } finally {
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the remote logs command answers lines in the same shape as /logs", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const rig = await commandRig("log-remote", {
    extra: "log: { format: json }",
    commands: ["allow: [logs]"],
  });
  try {
    const remote = expectDone((await rig.con.call("log-remote", "logs", { lines: 500 })).final);
    const { lines } = await (await rig.gw.get("/logs?n=500")).json() as {
      lines: Record<string, unknown>[];
    };
    const starting = (ls: unknown) =>
      (ls as Record<string, unknown>[]).find((l) =>
        l.msg === "starting" && l.component === "gateway"
      );
    const fromCommand = starting(remote.lines);
    assert.ok(fromCommand, JSON.stringify((remote.lines as unknown[]).slice(0, 3)));
    assert.deepEqual(fromCommand, starting(lines));
    assert.match(String(fromCommand.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(fromCommand.gateway, "log-remote", "fields are flat, beside msg");
  } finally {
    await rig.close();
  }
});
