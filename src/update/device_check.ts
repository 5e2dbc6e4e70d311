import { parseDeviceTargets } from "./device_targets.ts";
import type { Manifest } from "./manifest.ts";
import { checkFileAgainst } from "./file_check.ts";

/** Checks every device artifact a manifest lists against the channel directory (length and
 * SHA-256); one line per artifact, throws on the first mismatch. */
export async function checkDeviceArtifacts(dir: string, m: Manifest): Promise<string[]> {
  const lines: string[] = [];
  for (const [name, t] of Object.entries(parseDeviceTargets(m.signed.devices))) {
    const path = `${dir}/${t.path}`;
    await checkFileAgainst(path, t);
    lines.push(`device artifact ok: ${name} ${t.version} ${t.path} ${t.length} bytes`);
  }
  return lines;
}
