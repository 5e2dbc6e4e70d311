/**
 * The device updates in a few numbers per class, for the retained status message the fleet
 * console reads: small (no device lists, no times) and stable (the same keys in the same order
 * every time), so a quiet rollout sends the fleet page nothing new.
 *
 * @module
 */
import { DEVICE_STATES, type DeviceState } from "./rollout.ts";
import type { DevicesStatus } from "./service.ts";

/** At most this many classes go into the status message; `more` counts the rest. */
export const SUMMARY_CLASSES = 20;

/** One class in {@linkcode DeviceUpdatesSummary}. */
export interface ClassSummary {
  class: string;
  /** Devices of the class. */
  devices: number;
  /** Devices per state, every state named. */
  states: Record<DeviceState, number>;
  /** The rollout of its newest artifact; null before there is one. */
  rollout: { name: string; version: string; status: string; failures: number } | null;
}

/** The status message's `deviceUpdates`. */
export interface DeviceUpdatesSummary {
  /** Sorted by class name, at most {@linkcode SUMMARY_CLASSES}. */
  classes: ClassSummary[];
  /** Classes left off. */
  more: number;
}

/** Summarises the device service's status per class (classes with devices or a rollout). */
export function summarizeDevices(
  s: Pick<DevicesStatus, "counts" | "rollouts">,
): DeviceUpdatesSummary {
  const names = [...new Set([...Object.keys(s.counts), ...Object.keys(s.rollouts)])].sort();
  const zero = () => Object.fromEntries(DEVICE_STATES.map((x) => [x, 0])) as ClassSummary["states"];
  const classes = names.slice(0, SUMMARY_CLASSES).map((cls): ClassSummary => {
    const states = { ...zero(), ...s.counts[cls] };
    const r = s.rollouts[cls];
    return {
      class: cls,
      devices: DEVICE_STATES.reduce((n, x) => n + states[x], 0),
      states,
      rollout: r
        ? { name: r.name, version: r.version, status: r.status, failures: r.failures }
        : null,
    };
  });
  return { classes, more: names.length - classes.length };
}
