/**
 * TEST-ONLY hold points for the power-loss tests. In a build stamped by `build.ts --test-hooks`,
 * `OUTPOST_TEST_HOLD=<step>:<dir>` makes the updater stop at `step`, write `<dir>/held-<step>`
 * (holding its pid) and wait until `<dir>/release-<step>` exists, so that a test can SIGKILL it
 * exactly there. Every other build never reads the variable.
 *
 * @module
 */

/** Where the updater can be held: after the download (before the hash check), either side of
 * the `current` switch, and once the new version runs on trial (before its first health poll). */
export type HoldStep = "verify" | "switch" | "switched" | "trial";

function enabled(): boolean {
  return (globalThis as { __OUTPOST_TEST_HOOKS__?: boolean }).__OUTPOST_TEST_HOOKS__ === true;
}

let hold: { step: string; dir: string } | null | undefined;

function wanted(): { step: string; dir: string } | null {
  if (hold !== undefined) return hold;
  hold = null;
  const value = Deno.env.get("OUTPOST_TEST_HOLD");
  // Not for the trial child or any later process.
  Deno.env.delete("OUTPOST_TEST_HOLD");
  const m = value ? /^([a-z]+):(\/.+)$/.exec(value) : null;
  if (m) hold = { step: m[1], dir: m[2] };
  return hold;
}

/** Waits at `step` when a test-hooks build was told to; returns at once otherwise. */
export async function testHold(step: HoldStep): Promise<void> {
  if (!enabled()) return;
  const h = wanted();
  if (!h || h.step !== step) return;
  console.error(`TEST-ONLY: holding at "${step}" (pid ${Deno.pid})`);
  await Deno.writeTextFile(`${h.dir}/held-${step}`, `${Deno.pid}\n`);
  for (;;) {
    try {
      await Deno.stat(`${h.dir}/release-${step}`);
      return;
    } catch { /* not released yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads OUTPOST_TEST_HOLD (and removes it from the environment) before any child is spawned. */
export function initTestHooks(): void {
  if (enabled()) wanted();
}
