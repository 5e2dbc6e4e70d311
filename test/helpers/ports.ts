/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes, then throws `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${last}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves when something accepts TCP connections on 127.0.0.1:`port`. */
export function waitForPort(port: number, timeoutMs = 10_000): Promise<true> {
  return waitFor(`127.0.0.1:${port} to accept connections`, async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true as const;
  }, timeoutMs);
}
