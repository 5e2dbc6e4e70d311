/**
 * `deno task build` checks what it makes: a DENORT_BIN that is the Deno CLI (which "compiles" into
 * a copy of the Deno CLI) is refused before anything is written.
 */
import assert from "node:assert/strict";
import { ROOT } from "./helpers/update.ts";

Deno.test("build refuses a DENORT_BIN that is the Deno CLI, writes no binary and no SHA256SUMS", async () => {
  const out = await Deno.makeTempDir({ prefix: "outpost-build-" });
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}build.ts`,
      "--version",
      "9.9.9",
      "--target",
      `${Deno.build.arch}-unknown-linux-gnu`,
      "--out",
      out,
    ],
    env: { DENORT_BIN: Deno.execPath() },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(o.stderr);
  assert.equal(o.code, 1, text);
  assert.match(text, /DENORT_BIN=.*: it is the Deno CLI \(deno \d+\.\d+\.\d+.*\), not a denort/);
  const names = [...Deno.readDirSync(out)].map((e) => e.name);
  assert.ok(!names.some((n) => n.startsWith("outpost-9.9.9")), names.join(", "));
  assert.ok(!names.includes("SHA256SUMS"), names.join(", "));
});
