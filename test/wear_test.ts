import assert from "node:assert/strict";
import { measureWear } from "../bench/wear.ts";

Deno.test("a gateway taking one reading per HTTP post at 30/s from 50 devices writes at most 512 bytes of storage per reading, and no device waits past the commit window", async () => {
  const r = await measureWear({ devices: 50, rate: 30, perRequest: 1, seconds: 8 });
  assert.ok(r.readings >= 200, `only ${r.readings} readings were posted`);
  assert.ok(
    r.bytesPerReading <= 512,
    `wrote ${r.writeBytes} bytes for ${r.readings} readings: ${r.bytesPerReading} per reading`,
  );
  // buffer.commitWindow (1 s) plus an HTTP round trip on a loaded machine.
  assert.ok(r.maxLatencyMs <= 1500, `a post waited ${r.maxLatencyMs} ms for its 200`);
});
