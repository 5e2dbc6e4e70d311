/**
 * The device states and the staged rollout, as pure functions over a plain state object (saved
 * as JSON): a device report moves one device, and {@linkcode plan} decides, per device class,
 * whom to offer the class's newest artifact next — a batch at a time, each batch only once every
 * device of the previous one reported success or failure, and none once the failures reach the
 * class's threshold.
 *
 * @module
 */

/** What the gateway knows of one device. */
export const DEVICE_STATES = [
  "unknown",
  "current",
  "waiting",
  "offered",
  "downloading",
  "installed",
  "failed",
  "rolled-back",
] as const;
/** One of {@linkcode DEVICE_STATES}. */
export type DeviceState = typeof DEVICE_STATES[number];

/** One device's record. */
export interface DeviceRecord {
  id: string;
  class: string;
  state: DeviceState;
  /** The version the device last said it runs. */
  running?: string;
  /** The artifact offered to it. */
  target?: { name: string; version: string };
  offeredAt?: number;
  reportedAt?: number;
  /** Bytes of the offered artifact served to it, over every request. */
  servedBytes?: number;
  error?: string;
}

/** The rollout of one artifact version in one device class. */
export interface ClassRollout {
  name: string;
  version: string;
  status: "running" | "stopped" | "done";
  failures: number;
  /** Failures that an operator's resume forgave. */
  forgiven: number;
  reason?: string;
  startedAt: number;
}

/** Everything persisted across restarts. */
export interface DevicesState {
  devices: Record<string, DeviceRecord>;
  rollouts: Record<string, ClassRollout>;
  /** The highest manifest counter taken from the channel (replay floor of this module). */
  counter?: number;
}

/** A device's report of itself (MQTT `…/update/state` or HTTP POST). */
export interface DeviceReport {
  /** The version it runs now. */
  version: string;
  /** downloading, installed (rebooting into it), failed, rolled-back; anything else: running. */
  state?: string;
  error?: string;
}

/** The newest artifact for a class. */
export interface ClassArtifact {
  name: string;
  version: string;
  /** Only these devices; every device of the class when absent. */
  devices?: string[];
}

/** A class's rollout settings. */
export interface RolloutSettings {
  batch: number;
  failureThreshold: number;
  reportTimeout: number;
}

const IN_FLIGHT: readonly DeviceState[] = ["offered", "downloading", "installed"];

/** Applies a device's report to its record. */
export function applyReport(rec: DeviceRecord, r: DeviceReport, now: number): void {
  rec.reportedAt = now;
  rec.running = r.version;
  const offered = rec.target?.version;
  const state = (r.state ?? "").toLowerCase().replace("_", "-");
  if (offered && state === "failed") {
    rec.state = "failed";
    rec.error = r.error?.slice(0, 200) ?? "the device reported a failed update";
  } else if (offered && (state === "rolled-back" || state === "rollback")) {
    rec.state = "rolled-back";
    rec.error = r.error?.slice(0, 200) ?? `rolled back to ${r.version}`;
  } else if (offered && IN_FLIGHT.includes(rec.state) && state === "installed") {
    // Written and rebooting into it; it counts once the new version runs and says so.
    rec.state = "installed";
  } else if (offered && r.version === offered) {
    rec.state = "current";
    delete rec.error;
  } else if (offered && IN_FLIGHT.includes(rec.state) && state === "downloading") {
    rec.state = "downloading";
  } else if (!offered || !IN_FLIGHT.includes(rec.state)) {
    if (rec.state === "unknown") rec.state = "current";
  }
}

/**
 * Decides the next offers of `artifact` in one class and updates the records and the class's
 * rollout: devices running the version are current, devices that reported nothing within
 * `reportTimeout` failed, the rollout stops at `failureThreshold` failures, and a new batch is
 * offered only when none is in flight. Returns the ids to offer now, in `members` order.
 */
export function plan(
  state: DevicesState,
  cls: string,
  members: readonly string[],
  artifact: ClassArtifact,
  settings: RolloutSettings,
  now: number,
): string[] {
  let r = state.rollouts[cls];
  if (!r || r.name !== artifact.name || r.version !== artifact.version) {
    r = state.rollouts[cls] = {
      name: artifact.name,
      version: artifact.version,
      status: "running",
      failures: 0,
      forgiven: 0,
      startedAt: now,
    };
  }
  const targeted = artifact.devices
    ? members.filter((m) => artifact.devices!.includes(m))
    : members;
  const candidates: string[] = [];
  let inFlight = 0;
  let failures = 0;
  for (const id of targeted) {
    const rec = state.devices[id];
    if (rec.running === artifact.version && rec.state !== "installed") {
      rec.state = "current";
      continue;
    }
    if (rec.target?.version === artifact.version && rec.target.name === artifact.name) {
      if (IN_FLIGHT.includes(rec.state) && now - (rec.offeredAt ?? now) > settings.reportTimeout) {
        rec.state = "failed";
        rec.error = `no report within ${settings.reportTimeout} ms of the offer`;
      }
      if (rec.state === "failed" || rec.state === "rolled-back") failures++;
      else if (IN_FLIGHT.includes(rec.state)) inFlight++;
      else candidates.push(id);
      continue;
    }
    if (rec.state !== "unknown" || rec.reportedAt !== undefined) rec.state = "waiting";
    candidates.push(id);
  }
  r.failures = failures;
  if (r.status === "running" && failures - r.forgiven >= settings.failureThreshold) {
    r.status = "stopped";
    r.reason = `${failures - r.forgiven} device(s) failed ${artifact.name} ${artifact.version} ` +
      `(failureThreshold ${settings.failureThreshold}); \`outpost devices resume --class ${cls}\` ` +
      `on the gateway, or the signed devices-resume command, continues`;
  }
  if (r.status !== "running") return [];
  if (inFlight > 0) return [];
  if (candidates.length === 0) {
    r.status = "done";
    return [];
  }
  const offer = candidates.slice(0, settings.batch > 0 ? settings.batch : candidates.length);
  for (const id of offer) {
    const rec = state.devices[id];
    rec.state = "offered";
    rec.target = { name: artifact.name, version: artifact.version };
    rec.offeredAt = now;
    rec.servedBytes = 0;
    delete rec.error;
  }
  return offer;
}

/** Lets a stopped rollout continue: the failures so far no longer count towards the
 * threshold. Returns false when the class has no stopped rollout. */
export function resume(state: DevicesState, cls: string): boolean {
  const r = state.rollouts[cls];
  if (!r || r.status !== "stopped") return false;
  r.status = "running";
  r.forgiven = r.failures;
  delete r.reason;
  return true;
}

/** Devices per class and state, for metrics and the page. */
export function countStates(state: DevicesState): Record<string, Record<DeviceState, number>> {
  const out: Record<string, Record<DeviceState, number>> = {};
  for (const rec of Object.values(state.devices)) {
    out[rec.class] ??= Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as Record<
      DeviceState,
      number
    >;
    out[rec.class][rec.state]++;
  }
  return out;
}
