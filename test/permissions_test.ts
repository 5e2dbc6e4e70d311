import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import type { DoctorReport } from "../src/doctor/types.ts";

// startGateway() runs main.ts with GATEWAY_PERMISSIONS, the set deno.json `start`, the compiled
// binary and the bundle use. Deno reads /proc and /sys only with --allow-all: under a narrower set
// the wear meter, the buffer's owner check and the doctor's host checks all go blind.
Deno.test("under its production permissions the gateway reads /proc and /sys: storage written and every host check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-perms-" });
  const gw = await startGateway(
    dir,
    `
gateway: { id: perms-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 200ms }
`,
    { waitHealthy: true },
  );
  try {
    const st = await gw.status() as unknown as {
      storage: { writtenBytes: unknown };
      doctor: DoctorReport;
    };
    assert.equal(typeof st.storage.writtenBytes, "number", "write_bytes of /proc/self/io");
    const blind = st.doctor.checks.filter((c) => /allow-all|NotCapable/.test(c.reason));
    assert.deepEqual(blind.map((c) => `${c.id}: ${c.reason}`), []);
  } finally {
    await gw.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
