// The `outpost` command line as a child process, run to its exit.

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Runs `outpost <args>` (main.ts under `deno run -A`, `NO_COLOR=1` plus `env`) until it exits;
 * returns its exit code and its decoded stdout and stderr. */
export async function runOutpost(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
