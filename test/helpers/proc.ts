/** Resident set size of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`; Linux only). */
export function rssBytes(pid: number): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(m[1]) * 1024;
}

/** Size of a file in bytes, 0 when it does not exist. */
export function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

/** Collects a child's stdout and stderr (both piped) as text, interleaved as they arrive;
 * `drained` resolves once both have ended. */
export function collectOutput(
  child: Deno.ChildProcess,
): { output(): string; drained: Promise<void> } {
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk, { stream: true });
  };
  const drained = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
  return { output: () => out, drained };
}
