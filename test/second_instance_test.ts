import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { exportReadings } from "../src/buffer/export.ts";
import { GATEWAY_PERMISSIONS } from "../src/runtime_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function config(buffer: string): string {
  return `
gateway: { id: twice-gw }
buffer: { path: ${buffer}, commitInterval: 20ms }
adapters:
  - { type: simulated, name: sim, devices: 3, interval: 20ms }
`;
}

Deno.test("a second gateway on the same buffer stops before writing; after a SIGKILL of the first it takes over", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-twice-" });
  const buffer = `${dir}/buffer.db`;
  const first = await startGateway(dir, config(buffer));
  try {
    await waitFor("readings in the buffer", async () => (await first.status()).buffer.rows >= 50);
    // Started by hand beside the service, with its own config and port but the same buffer.
    await Deno.mkdir(`${dir}/second`);
    await Deno.writeTextFile(
      `${dir}/second/site.yaml`,
      `${config(buffer)}\nhttp:\n  listen: 127.0.0.1:${freePort()}\n`,
    );
    const second = new Deno.Command(Deno.execPath(), {
      args: ["run", ...GATEWAY_PERMISSIONS, MAIN, "run", "--config", `${dir}/second/site.yaml`],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const output = second.output();
    let exited = false;
    output.then(() => exited = true, () => exited = true);
    try {
      await waitFor("the second gateway to give up", () => exited, 30_000);
    } finally {
      if (!exited) second.kill("SIGKILL");
    }
    const out = await output;
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 1, text);
    assert.match(
      text,
      new RegExp(
        `Cannot open buffer "${buffer}": in use by process ${first.pid} \\(.*main\\.ts run`,
      ),
    );
    // The first one never noticed: still storing, no errors.
    const rows = (await first.status()).buffer.rows;
    await waitFor(
      "the first gateway to go on storing",
      async () => (await first.status()).buffer.rows > rows + 20,
    );
    assert.doesNotMatch(first.output(), /UNIQUE|SQLITE_CONSTRAINT|ERROR/i);
  } finally {
    await first.kill();
  }
  // SIGKILL left its owner row behind; the process is gone, so the next gateway takes over.
  const next = await startGateway(dir, config(buffer));
  try {
    const rows = (await next.status()).buffer.rows;
    await waitFor(
      "the next gateway to store",
      async () => (await next.status()).buffer.rows > rows + 20,
    );
  } finally {
    assert.equal(await next.stop(), 0);
  }
  const seqs = [...exportReadings(buffer)].map((r) => r.seq);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), "one sequence across both");
});
