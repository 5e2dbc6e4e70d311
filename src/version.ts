/** The version `deno task build` / `deno task bundle` stamped in, or the development version. */
export const VERSION: string =
  (globalThis as { __OUTPOST_VERSION__?: string }).__OUTPOST_VERSION__ ?? "0.1.0-dev";
