/**
 * Artifacts for field devices (firmware images, model files) listed in the signed part of a
 * release manifest under `devices`, beside the gateway's own `targets`: the same signatures,
 * timestamp and replay floor cover them. A gateway that knows nothing of `devices` ignores the
 * key.
 *
 * @module
 */
import { UpdateRefused } from "./errors.ts";
import { isChannelPath, NAME_RE, parseVersion } from "./manifest.ts";

/** One device artifact: its version, where it is on the channel, and whom it is for. */
export interface DeviceTarget {
  /** Semantic version the device reports once it runs this artifact. */
  version: string;
  /** Relative to the channel directory. */
  path: string;
  sha256: string;
  length: number;
  /** Device classes (`devices.list[].class`) it is for. */
  classes: string[];
  /** Device ids it is for; every device of `classes` when absent. */
  devices?: string[];
}

/** A device artifact name such as `esp32-boiler-v3`. */
export const DEVICE_ARTIFACT_RE = NAME_RE;
/** A device id or class name: letters, digits, `.`, `_`, `-` (it becomes an MQTT topic level
 * and a URL path segment). */
export const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Checks the `devices` part of a verified manifest's signed part; throws `manifest-malformed`
 * naming the bad entry. An absent part is an empty one.
 */
export function parseDeviceTargets(value: unknown): Record<string, DeviceTarget> {
  if (value === undefined) return {};
  const bad = (what: string, got: unknown): never => {
    throw new UpdateRefused(
      "manifest-malformed",
      `manifest: devices${what}, got ${JSON.stringify(got)?.slice(0, 80)}`,
    );
  };
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    bad(": expected a mapping", value);
  }
  const out: Record<string, DeviceTarget> = {};
  for (const [name, e] of Object.entries(value as Record<string, DeviceTarget>)) {
    if (!DEVICE_ARTIFACT_RE.test(name)) bad(": expected artifact names as keys", name);
    if (typeof e?.version !== "string" || !parseVersion(e.version)) {
      bad(`.${name}.version: expected a semantic version`, e?.version);
    }
    if (
      !isChannelPath(e.path) || typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256) ||
      !Number.isSafeInteger(e.length) || e.length <= 0
    ) bad(`.${name}: expected { path (inside the channel), sha256, length > 0 }`, e);
    const ids = (v: unknown) =>
      Array.isArray(v) && v.length > 0 &&
      v.every((x) => typeof x === "string" && DEVICE_ID_RE.test(x));
    if (!ids(e.classes)) bad(`.${name}.classes: expected a list of device classes`, e.classes);
    if (e.devices !== undefined && !ids(e.devices)) {
      bad(`.${name}.devices: expected a list of device ids`, e.devices);
    }
    out[name] = {
      version: e.version,
      path: e.path,
      sha256: e.sha256,
      length: e.length,
      classes: [...e.classes],
      ...(e.devices ? { devices: [...e.devices] } : {}),
    };
  }
  return out;
}
