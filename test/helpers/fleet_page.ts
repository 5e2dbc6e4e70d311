// `outpost fleet serve` as a child process, for the browser tests of the fleet page.
import { waitFor } from "./ports.ts";
import { collectOutput } from "./proc.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** `outpost fleet serve` as a process; resolves once it printed its address. */
export async function startFleetPage(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "fleet", "serve", "--listen", "127.0.0.1:0", ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const { output, drained } = collectOutput(child);
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await drained;
    return s;
  });
  const url = await waitFor(
    "the fleet page to print its address",
    () => {
      const out = output();
      if (exited) throw new Error(`fleet serve exited:\n${out}`);
      return /^access token/m.test(out) ? /fleet page on (\S+)/.exec(out)?.[1] : undefined;
    },
    30_000,
    50,
  );
  return {
    url,
    output,
    stop: async () => {
      try {
        Deno.kill(child.pid, "SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          Deno.kill(child.pid, "SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      const s = await status;
      clearTimeout(timer);
      return s.code;
    },
  };
}
