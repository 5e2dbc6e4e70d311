import assert from "node:assert/strict";
import { configReference, generatedFiles, MARKER, typeName } from "./config_docs.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("docs/configuration.md and docs/adapters/*.md are generated from the schema (run `deno task docs`)", async () => {
  const current = await Deno.readTextFile(new URL("docs/configuration.md", ROOT));
  const stale: string[] = [];
  for (const [path, text] of generatedFiles(current)) {
    let onDisk = "";
    try {
      onDisk = await Deno.readTextFile(new URL(path, ROOT));
    } catch {
      // missing: stale as well
    }
    if (onDisk !== text) stale.push(path);
  }
  assert.deepEqual(stale, [], `stale generated docs (run \`deno task docs\`): ${stale.join(", ")}`);
});

Deno.test("the config reference carries every top-level key and the .describe() texts", () => {
  const ref = configReference();
  for (const key of ["gateway", "buffer", "uplink", "http", "log", "adapters", "rules", "update"]) {
    assert.ok(ref.includes(`### \`${key}\``), `section for ${key}`);
  }
  assert.match(ref, /\| `buffer\.maxSeries` \| integer ≥ 100 \| `50000` \| Most distinct/);
  assert.match(ref, /\| `buffer\.retention` \| duration \| `30d` \|/);
  assert.match(ref, /\| `gateway\.id` \| string \| required \|/);
});

Deno.test("a generated docs page refuses a configuration.md without the marker line", () => {
  assert.throws(() => generatedFiles("# Configuration\n"), new RegExp(MARKER.slice(0, 20)));
});

Deno.test("type names: durations, sizes, enums, ranges, lists", () => {
  assert.equal(
    typeName({ anyOf: [{ type: "string", pattern: "^(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|h|d)$" }] }),
    "duration",
  );
  assert.equal(typeName({ enum: ["a", "b"] }), "`a`, `b`");
  assert.equal(typeName({ type: "integer", minimum: 1, maximum: 9 }), "integer 1–9");
  assert.equal(typeName({ type: "array", items: { type: "string" } }), "list of string");
});
