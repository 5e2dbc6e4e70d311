import assert from "node:assert/strict";
import { checkJsonShape, checkSize, MAX_SAMPLE_CHARS, RefusalLog, sample } from "./limits.ts";
import type { Logger } from "./log.ts";
import { deepJsonList, wideJsonObject } from "../test/helpers/hostile.ts";

const LIMITS = { maxDepth: 4, maxValues: 10 };

Deno.test("checkJsonShape() counts depth and values outside strings only", () => {
  assert.equal(checkJsonShape('{"a":[1,2,{"b":[3]}]}', LIMITS), undefined);
  assert.equal(checkJsonShape('"[[[[[[,,,,,,,,,,,,\\"[[[["', LIMITS), undefined);
  assert.equal(checkJsonShape("[[[[]]]]", LIMITS), undefined);
  assert.equal(checkJsonShape("[[[[[]]]]]", LIMITS)?.reason, "depth");
  assert.equal(checkJsonShape("[1,2,3,4,5,6,7,8,9,10]", LIMITS), undefined);
  assert.deepEqual(checkJsonShape("[1,2,3,4,5,6,7,8,9,10,11]", LIMITS), {
    reason: "values",
    message: "JSON has more than 10 values",
  });
  // Depth is counted across siblings, not summed.
  assert.equal(checkJsonShape("[[[1]],[[2]],[[3]]]", LIMITS), undefined);
});

Deno.test("checkJsonShape() refuses a 5M-deep list and 600k fields quickly", () => {
  const t0 = performance.now();
  assert.equal(
    checkJsonShape(deepJsonList(5_000_000), { maxDepth: 32, maxValues: 1e4 })?.reason,
    "depth",
  );
  assert.equal(
    checkJsonShape(wideJsonObject(600_000), { maxDepth: 32, maxValues: 1e4 })?.reason,
    "values",
  );
  assert.ok(performance.now() - t0 < 1000);
});

Deno.test("checkSize() names the size and the limit", () => {
  assert.equal(checkSize(10, 10, "message"), undefined);
  assert.deepEqual(checkSize(11, 10, "message"), {
    reason: "size",
    message: "message of 11 bytes exceeds the limit of 10 bytes",
  });
});

Deno.test("sample() keeps at most 200 characters and escapes control characters", () => {
  assert.equal(sample("a\nb\u0000c"), "a\\nb\ufffdc");
  const long = sample(new TextEncoder().encode("x".repeat(10_000_000)));
  assert.equal(long.length, MAX_SAMPLE_CHARS);
  assert.ok(long.endsWith("…"));
  assert.equal(sample(new Uint8Array([0xff, 0x41])), "\ufffdA");
});

Deno.test("RefusalLog warns once per period per reason and reports what it suppressed", () => {
  const lines: [string, Record<string, unknown> | undefined][] = [];
  const log: Logger = {
    debug() {},
    info() {},
    warn: (m, f) => void lines.push([m, f]),
    error() {},
    child: () => log,
  };
  let now = 0;
  const r = new RefusalLog(log, { now: () => now });
  for (let i = 0; i < 1000; i++) r.refused("size", "payload refused", { sample: "x" });
  r.refused("depth", "payload refused", {});
  now = 59_999;
  r.refused("size", "payload refused", {});
  now = 60_000;
  r.refused("size", "payload refused", { topic: "t" });
  assert.deepEqual(lines, [
    ["payload refused", { reason: "size", sample: "x" }],
    ["payload refused", { reason: "depth" }],
    ["payload refused", { reason: "size", topic: "t", suppressed: 1000 }],
  ]);
});
