import assert from "node:assert/strict";
import { GATEWAY_PERMISSIONS, GATEWAY_V8_FLAGS } from "./runtime_flags.ts";

Deno.test("deno.json's start task runs the gateway with exactly its permissions and V8 flags", async () => {
  const json = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(
    json.tasks.start,
    `deno run ${GATEWAY_PERMISSIONS.join(" ")} --v8-flags=${GATEWAY_V8_FLAGS} main.ts`,
  );
});
