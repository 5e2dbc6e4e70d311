import { DEVICE_STATES } from "./rollout.ts";
import type { DevicesStatus } from "./service.ts";

const label = (v: string) => v.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);

/** Prometheus text of the device artifact service: devices per class and state, stopped
 * rollouts and refused artifacts. */
export function renderDeviceMetrics(s: DevicesStatus): string {
  const out = [
    "# HELP outpost_device_artifact_devices Field devices per device class and update state.",
    "# TYPE outpost_device_artifact_devices gauge",
  ];
  for (const [cls, counts] of Object.entries(s.counts)) {
    for (const state of DEVICE_STATES) {
      out.push(
        `outpost_device_artifact_devices{class="${label(cls)}",state="${state}"} ${counts[state]}`,
      );
    }
  }
  out.push(
    "# HELP outpost_device_artifact_rollout_stopped 1 when the rollout of a class stopped at its failure threshold.",
    "# TYPE outpost_device_artifact_rollout_stopped gauge",
  );
  for (const [cls, r] of Object.entries(s.rollouts)) {
    out.push(
      `outpost_device_artifact_rollout_stopped{class="${label(cls)}"} ${
        r.status === "stopped" ? 1 : 0
      }`,
    );
  }
  out.push(
    "# HELP outpost_device_artifact_refused 1 when the newest listed version of an artifact was refused (hash, size, limits).",
    "# TYPE outpost_device_artifact_refused gauge",
  );
  for (const [name, a] of Object.entries(s.artifacts)) {
    out.push(`outpost_device_artifact_refused{name="${label(name)}"} ${a.refused ? 1 : 0}`);
  }
  return out.join("\n") + "\n";
}
