import assert from "node:assert/strict";
import type { CommandContext } from "./handler.ts";
import { type DeviceRollouts, devicesResume } from "./devices.ts";

type Rollout = ReturnType<DeviceRollouts["status"]>["rollouts"][string];

function service(rollouts: Record<string, Rollout>, classes: string[]) {
  const resumed: string[] = [];
  const svc: DeviceRollouts & { resumed: string[]; refuse?: boolean } = {
    resumed,
    resume(cls) {
      const r = rollouts[cls];
      if (svc.refuse || r?.status !== "stopped") return false;
      resumed.push(cls);
      r.status = "running";
      r.forgiven = r.failures;
      return true;
    },
    status: () => ({
      rollouts,
      counts: Object.fromEntries(classes.map((c) => [c, {}])),
    }),
  };
  return svc;
}

const ctx = (args: Record<string, unknown>) => ({ args }) as unknown as CommandContext;
const stopped = (): Rollout => ({
  name: "fw",
  version: "2.0.0",
  status: "stopped",
  failures: 2,
  forgiven: 0,
});

Deno.test("devicesResume() resumes a stopped rollout with the service's resume and says what it did", async () => {
  const svc = service({ esp32: stopped() }, ["esp32", "pump"]);
  assert.deepEqual(await devicesResume(ctx({ class: "esp32" }), svc), {
    class: "esp32",
    name: "fw",
    version: "2.0.0",
    was: "stopped",
    status: "running",
    failures: 2,
    forgiven: 2,
  });
  assert.deepEqual(svc.resumed, ["esp32"]);
});

Deno.test("devicesResume() refuses bad args, no devices:, unknown classes and rollouts not stopped", async () => {
  const svc = service({ esp32: { ...stopped(), status: "running" } }, ["esp32", "pump"]);
  const refused = async (args: Record<string, unknown>, code: string, msg: RegExp, s = svc) => {
    await assert.rejects(
      async () => await devicesResume(ctx(args), s),
      (e: Error & { code: string }) => {
        assert.equal(e.code, code, e.message);
        assert.match(e.message, msg);
        return true;
      },
    );
  };
  await refused({}, "bad-args", /args\.class: expected a device class .*, got undefined/);
  await refused({ class: "" }, "bad-args", /got ""/);
  await refused({ class: ["esp32"] }, "bad-args", /got \["esp32"\]/);
  await refused({ class: "x".repeat(129) }, "bad-args", /args\.class/);
  await refused({ class: "esp32", now: 1 }, "bad-args", /unknown args now; expected class/);
  await assert.rejects(
    async () => await devicesResume(ctx({ class: "esp32" }), undefined),
    /this gateway has no devices: section/,
  );
  await refused(
    { class: "nrf" },
    "unknown-class",
    /no device class "nrf" .*\(classes: esp32, pump\)/,
  );
  await refused(
    { class: "esp32" },
    "not-stopped",
    /the rollout of class "esp32" \(fw 2\.0\.0\) is running, not stopped: nothing to resume/,
  );
  await refused({ class: "pump" }, "not-stopped", /class "pump" has no rollout: nothing to resume/);
  // Stopped when looked at, but no longer when resumed (another resume came first).
  const raced = service({ esp32: stopped() }, ["esp32"]);
  raced.refuse = true;
  await refused({ class: "esp32" }, "not-stopped", /nothing to resume/, raced);
  assert.deepEqual(svc.resumed, []);
});
