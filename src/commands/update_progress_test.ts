import assert from "node:assert/strict";
import type { UpdateAgent } from "../update/agent.ts";
import type { UpdateConfig } from "../update/config.ts";
import type { CommandContext } from "./service.ts";
import { updateCommands } from "./update.ts";
import type { CommandReply } from "../protocol/mod.ts";

Deno.test("update-apply reports the download's bytes so far while it runs, not only 0 % and 100 %", async () => {
  const total = 64 * 1024;
  let progress: { step: "downloading"; version: string; done: number; total: number } | undefined;
  let staged: { version: string; slot: string } | undefined;
  const agent = {
    updater: {
      check: () =>
        Promise.resolve({
          kind: "available",
          available: {
            version: "2.0.0",
            length: total,
            target: "x",
            url: "http://x/a",
            sha256: "",
          },
        }),
    },
    slots: { root: "/nowhere" },
    status: () => ({ progress, staged }),
    async checkAndStage() {
      // A download that takes a few seconds: a quarter, half, three quarters, then staged.
      for (const done of [0, total / 4, total / 2, (3 * total) / 4]) {
        progress = { step: "downloading", version: "2.0.0", done, total };
        await new Promise((r) => setTimeout(r, 1100));
      }
      progress = undefined;
      staged = { version: "2.0.0", slot: "b" };
      return true;
    },
  } as unknown as UpdateAgent;
  const replies: Pick<CommandReply, "status" | "progress" | "result">[] = [];
  const ctx = {
    id: "u1",
    cmd: "update-apply",
    args: {},
    signal: new AbortController().signal,
    reply: (status: CommandReply["status"], f: Partial<CommandReply> = {}) => {
      replies.push({ status, ...f });
      return Promise.resolve();
    },
    defer: () => Promise.resolve(),
  } as unknown as CommandContext;
  let trial = false;
  const handlers = updateCommands({
    agent,
    config: { healthDeadline: 20_000 } as UpdateConfig,
    version: "1.0.0",
    startTrial: () => trial = true,
  });
  await handlers["update-apply"]!.handler(ctx);
  assert.ok(trial);
  const done = replies.filter((r) => r.status === "progress").map((r) => r.progress!.done);
  assert.equal(done[0], 0);
  assert.equal(done.at(-1), total);
  const between = done.filter((d) => d > 0 && d < total);
  assert.ok(between.length >= 2, `intermediate progress replies: ${JSON.stringify(done)}`);
  assert.deepEqual(between, [...between].sort((a, b) => a - b), "never going back");
  const mid = replies.find((r) => r.progress?.done === total / 2);
  assert.equal(mid?.progress?.note, "downloading 2.0.0: 50%");
  assert.equal(mid?.progress?.total, total);
});
