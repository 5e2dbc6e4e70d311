import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import type { WriteRequest } from "../adapter.ts";
import { createLogger, type LogRecord } from "../log.ts";
import { ActionRunner } from "./actions.ts";
import type { AlarmEvent } from "./alarm_store.ts";
import type { RuleConfig } from "./config.ts";

function rule(device: string): RuleConfig {
  return {
    name: "pump-pressure",
    actions: [{ on: "raise", write: { adapter: "plc", device, point: "run", value: false } }],
  } as unknown as RuleConfig;
}

const raised = (device?: string): AlarmEvent => ({
  rule: "pump-pressure",
  state: "raised",
  severity: "critical",
  message: "pressure high",
  ts: 1,
  raisedAt: 1,
  ...(device ? { instance: device, device } : {}),
});

Deno.test("write action: {device} is the device that raised the alarm; fixed ids stay", async () => {
  const writes: { adapter: string; request: WriteRequest }[] = [];
  const ac = new AbortController();
  const runner = new ActionRunner({
    write: (adapter, request) => {
      writes.push({ adapter, request });
      return Promise.resolve();
    },
    log: createLogger({ sink: () => {} }),
    signal: ac.signal,
  });
  runner.run(rule("{device}"), raised("pump-7"));
  runner.run(rule("{device}-valve"), raised("pump-2"));
  runner.run(rule("pump-3"), raised("pump-9"));
  await runner.idle();
  assertEquals(writes.map((w) => w.request.device), ["pump-7", "pump-2-valve", "pump-3"]);
  assertEquals(runner.stats().failed, 0);
  ac.abort();
});

Deno.test("write action: {device} with an alarm about no single device fails, logged", async () => {
  const lines: LogRecord[] = [];
  const log = createLogger({ sink: () => {} });
  const ac = new AbortController();
  let wrote = 0;
  const runner = new ActionRunner({
    write: () => {
      wrote++;
      return Promise.resolve();
    },
    log,
    signal: ac.signal,
    writeAttempts: 1,
  });
  runner.run(rule("{device}"), raised());
  await runner.idle();
  lines.push(...log.recent());
  assertEquals(wrote, 0);
  assertEquals(runner.stats().failed, 1);
  assertMatch(JSON.stringify(lines.at(-1)), /names \{device\}, but alarm pump-pressure/);
  ac.abort();
});
