import { parseDeviceTargets } from "./device_targets.ts";
import { UpdateRefused } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import { sha256File } from "./updater.ts";

/** Checks every device artifact a manifest lists against the channel directory (length and
 * SHA-256); one line per artifact, throws on the first mismatch. */
export async function checkDeviceArtifacts(dir: string, m: Manifest): Promise<string[]> {
  const lines: string[] = [];
  for (const [name, t] of Object.entries(parseDeviceTargets(m.signed.devices))) {
    const path = `${dir}/${t.path}`;
    const size = (await Deno.stat(path)).size;
    if (size !== t.length) {
      throw new UpdateRefused(
        "length-mismatch",
        `${path}: ${size} bytes, manifest says ${t.length}`,
      );
    }
    const digest = await sha256File(path);
    if (digest !== t.sha256) {
      throw new UpdateRefused(
        "hash-mismatch",
        `${path}: sha256 ${digest}, manifest says ${t.sha256}`,
      );
    }
    lines.push(`device artifact ok: ${name} ${t.version} ${t.path} ${t.length} bytes`);
  }
  return lines;
}
