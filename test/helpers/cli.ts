// The `outpost` command line as a child process, run to its exit.

import { GATEWAY_PERMISSIONS } from "../../src/runtime_flags.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Runs `outpost <args>` (main.ts with the gateway's permissions, `NO_COLOR=1` plus `env`) until it exits;
 * returns its exit code and its decoded stdout and stderr. */
export async function runOutpost(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...GATEWAY_PERMISSIONS, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
