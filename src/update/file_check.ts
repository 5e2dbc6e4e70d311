import { UpdateRefused } from "./errors.ts";
import { sha256File } from "./updater.ts";

/** Throws `UpdateRefused` when the file at `path` is not `want.length` bytes with SHA-256
 * `want.sha256`, naming the path and both values. */
export async function checkFileAgainst(
  path: string,
  want: { length: number; sha256: string },
): Promise<void> {
  const size = (await Deno.stat(path)).size;
  if (size !== want.length) {
    throw new UpdateRefused(
      "length-mismatch",
      `${path}: ${size} bytes, manifest says ${want.length}`,
    );
  }
  const digest = await sha256File(path);
  if (digest !== want.sha256) {
    throw new UpdateRefused(
      "hash-mismatch",
      `${path}: sha256 ${digest}, manifest says ${want.sha256}`,
    );
  }
}
