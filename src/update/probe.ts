/**
 * Asks an Outpost executable for its version (`outpost version --json`), within 30 s. Throws
 * naming the exit status and stderr when it does not answer with one. `binary` may be a command
 * with its first arguments (a runtime running a bundle).
 */
export async function reportedVersion(
  binary: string | string[],
  signal?: AbortSignal,
): Promise<string> {
  const [cmd, ...pre] = typeof binary === "string" ? [binary] : binary;
  const out = await new Deno.Command(cmd, {
    args: [...pre, "version", "--json"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: signal
      ? AbortSignal.any([signal, AbortSignal.timeout(30_000)])
      : AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  const text = dec.decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `exited with ${out.signal ? `signal ${out.signal}` : `status ${out.code}`}: ${
        dec.decode(out.stderr).trim().slice(0, 300)
      }`,
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text).version;
  } catch {
    v = undefined;
  }
  if (typeof v !== "string") throw new Error(`no version in ${JSON.stringify(text.slice(0, 200))}`);
  return v;
}
