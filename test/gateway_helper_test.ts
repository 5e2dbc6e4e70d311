/**
 * The test helper that starts gateway processes: a free port can be taken by another process
 * before the gateway binds it, and then that process answers /healthz on it. The helper must not
 * hand out a gateway that is not there (a suite run failed that way: 60 s of 401 from a stranger).
 */
import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";

Deno.test("startGateway() starts again on another port when its port was taken, and returns its own process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-helper-" });
  // A stranger on the port: healthy, but with its own token.
  const stranger = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/healthz"
        ? Response.json({ ok: true })
        : Response.json({ error: "access token required" }, { status: 401 }),
  );
  const taken = stranger.addr.port;
  const gw = await startGateway(
    dir,
    `gateway: { id: helper-gw }\nbuffer: { path: ${dir}/buffer.db }\n`,
    { firstPort: taken },
  );
  try {
    assert.notEqual(gw.httpPort, taken);
    assert.equal((await gw.status() as unknown as { pid: number }).pid, gw.pid);
  } finally {
    await gw.kill();
    await stranger.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
