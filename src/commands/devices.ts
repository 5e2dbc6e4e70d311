/**
 * `devices-resume`: resumes a device rollout that stopped at its class's failure threshold, as
 * `outpost devices resume` and the gateway page's `/devices/resume` do (the device service's own
 * `resume`). Takes `{class}`, needs the `operate` scope, and is audited like every command.
 *
 * @module
 */
import { type DevicesResumeResult, ERROR_CODES } from "../protocol/mod.ts";
import { type CommandContext, CommandError, onlyArgs } from "./handler.ts";

/** Longest class name accepted (device classes are far shorter). */
const MAX_CLASS = 128;

/** What the command needs of the gateway's device service (`DeviceService` is one). */
export interface DeviceRollouts {
  /** Lets a stopped rollout of `cls` go on; false when the class has none stopped. */
  resume(cls: string): boolean;
  status(): {
    rollouts: Record<
      string,
      { name: string; version: string; status: string; failures: number; forgiven: number }
    >;
    /** Devices per class (every configured class is a key). */
    counts: Record<string, unknown>;
  };
}

/** Runs `devices-resume` against `devices`, the gateway's device service (none: no `devices:`). */
export function devicesResume(
  ctx: CommandContext,
  devices: DeviceRollouts | undefined,
): Promise<DevicesResumeResult> {
  onlyArgs(ctx, ["class"]);
  const cls = ctx.args.class;
  if (typeof cls !== "string" || cls === "" || cls.length > MAX_CLASS) {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `args.class: expected a device class (as in devices.list), got ${
        JSON.stringify(cls)?.slice(0, 80)
      }`,
    );
  }
  if (!devices) {
    throw new CommandError(
      ERROR_CODES.unavailable,
      "this gateway has no devices: section, so no device rollouts to resume",
    );
  }
  const before = devices.status();
  const classes = [...new Set([...Object.keys(before.counts), ...Object.keys(before.rollouts)])]
    .sort();
  if (!classes.includes(cls)) {
    throw new CommandError(
      ERROR_CODES.unknownClass,
      `no device class ${JSON.stringify(cls)} on this gateway (classes: ${
        classes.join(", ") || "none"
      })`,
    );
  }
  const r = before.rollouts[cls];
  const notStopped = () =>
    new CommandError(
      ERROR_CODES.notStopped,
      r
        ? `the rollout of class "${cls}" (${r.name} ${r.version}) is ${r.status}, not stopped: nothing to resume`
        : `class "${cls}" has no rollout: nothing to resume`,
    );
  if (r?.status !== "stopped") throw notStopped();
  if (!devices.resume(cls)) throw notStopped();
  const after = devices.status().rollouts[cls];
  return Promise.resolve({
    class: cls,
    name: after.name,
    version: after.version,
    was: "stopped",
    status: after.status,
    failures: after.failures,
    forgiven: after.forgiven,
  });
}
