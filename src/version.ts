/** The version `deno task build` / `deno task bundle` stamped in, or the development version. */
export const VERSION: string =
  (globalThis as { __OUTPOST_VERSION__?: string }).__OUTPOST_VERSION__ ?? "0.1.0-dev";

/**
 * TEST-ONLY: a misbehaviour baked in by `build.ts --behaviour` so the update tests have real bad
 * releases: `exit` (dies before the gateway starts), `unhealthy` (/healthz never 200), `hang`
 * (never answers). Undefined in every real build.
 */
export const TEST_BEHAVIOUR: "exit" | "unhealthy" | "hang" | undefined =
  (globalThis as { __OUTPOST_TEST_BEHAVIOUR__?: "exit" | "unhealthy" | "hang" })
    .__OUTPOST_TEST_BEHAVIOUR__;

/** TEST-ONLY: acts out `exit` and `hang` before any gateway code runs; a no-op otherwise. */
export async function testBehaviourAtStart(): Promise<void> {
  if (TEST_BEHAVIOUR === "exit") {
    console.error("TEST-ONLY build: exiting at start (--behaviour exit)");
    Deno.exit(70);
  }
  if (TEST_BEHAVIOUR === "hang") {
    console.error("TEST-ONLY build: hanging at start (--behaviour hang)");
    setInterval(() => {}, 3_600_000);
    await new Promise(() => {});
  }
}
