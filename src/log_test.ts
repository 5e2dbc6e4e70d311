import assert from "node:assert/strict";
import { createLogger } from "./log.ts";

Deno.test("the logger never writes or keeps a secret: secret-named fields, URL credentials, Bearer", () => {
  for (const format of ["text", "json"] as const) {
    const lines: string[] = [];
    const log = createLogger({ format, sink: (l) => lines.push(l) });
    const c = log.child("uplink.mqtt");
    c.error('Cannot connect to broker "mqtts://plant:pw-in-url-1@broker:8883": refused', {
      password: "pw-field-22",
      headers: { "X-Api-Key": "api-key-333", accept: "json" },
      error: new Error("auth with Bearer bearer-4444 failed"),
      privateKey: { pem: "pem-55555" },
    });
    const ring = JSON.stringify(log.recent());
    for (
      const secret of ["pw-in-url-1", "pw-field-22", "api-key-333", "bearer-4444", "pem-55555"]
    ) {
      assert.ok(!lines[0].includes(secret), `${format}: ${secret} in ${lines[0]}`);
      assert.ok(!ring.includes(secret), `${format}: ${secret} in the ring`);
    }
    assert.match(lines[0], /mqtts:\/\/plant:\[redacted\]@broker:8883/);
    assert.match(lines[0], /accept/, "other fields stay");
  }
});
