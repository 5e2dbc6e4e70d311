import { type Infer, s } from "../../src/config/schema.ts";

/** Config schema of the `exec` adapter. */
export const execSchema = s.object({
  command: s.string({ min: 1 }).describe("Program to run: a path, or a name looked up in PATH"),
  args: s.array(s.string()).default([]).describe("Arguments of the program"),
  env: s.record(s.string()).default({}).describe("Environment variables added for the program"),
  clearEnv: s.boolean().default(false)
    .describe("Start the program with only `env`, not the gateway's environment"),
  cwd: s.string({ min: 1 }).optional().describe("Working directory of the program"),
  maxLineLength: s.bytes({ min: 256, max: 16 * 1024 * 1024 }).default(64 * 1024)
    .describe("Longest stdout or stderr line accepted; longer lines are skipped"),
  restartDelay: s.duration({ min: 10, max: 3_600_000 }).default(1000)
    .describe("Wait before restarting a program that exited; doubles on each quick exit"),
  maxRestartDelay: s.duration({ min: 10, max: 86_400_000 }).default(60_000)
    .describe("Longest wait between restarts"),
  stableAfter: s.duration({ min: 0, max: 86_400_000 }).default(30_000)
    .describe("A run at least this long resets the restart delay"),
  stopTimeout: s.duration({ min: 0, max: 600_000 }).default(5000)
    .describe("Grace period between SIGTERM and SIGKILL when stopping"),
  stderrLinesPerSecond: s.integer({ min: 1, max: 100_000 }).default(50)
    .describe("Most stderr lines logged per second; the rest are counted and dropped"),
}, {
  refine: (c, ctx, path) => {
    if (c.maxRestartDelay < c.restartDelay) {
      ctx.fail(
        [...path, "maxRestartDelay"],
        `expected maxRestartDelay ≥ restartDelay (${c.restartDelay}ms), got ${c.maxRestartDelay}ms`,
      );
    }
  },
});

/** Validated config of the `exec` adapter. */
export type ExecConfig = Infer<typeof execSchema>;
