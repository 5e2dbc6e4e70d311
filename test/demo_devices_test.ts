import assert from "node:assert/strict";

const DEMO = new URL("../demo/mod.ts", import.meta.url).pathname;

Deno.test("deno task demo --devices updates simulated boards and stops the rollout at the board that rolls back", async () => {
  // A data directory of its own: demo_test may run a demo at the same time.
  const data = await Deno.makeTempDir({ prefix: "outpost-demo-data-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", DEMO, "--duration", "10s", "--devices", "--data", data],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /board board-1 → running, runs 1\.1\.0/);
  assert.match(text, /board board-2 → rolled-back, runs 1\.0\.0 \(self-test of 1\.1\.0 failed\)/);
  assert.match(text, /rollout stopped class=esp32-demo/);
  assert.doesNotMatch(text, /offering device artifact device=board-3/);
  await Deno.remove(data, { recursive: true });
});
