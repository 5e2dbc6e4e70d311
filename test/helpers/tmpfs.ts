import { statfsSync } from "node:fs";

/** Whether this process may mount a tmpfs (tests that need one are skipped otherwise). */
export const canMount = Deno.build.os === "linux" && Deno.uid() === 0;

/** Mounts a tmpfs of `bytes` on `dir`. */
export async function mountTmpfs(dir: string, bytes: number): Promise<void> {
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "tmpfs", dir],
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`mount -t tmpfs on ${dir} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Unmounts `dir` (lazily when it is still busy). */
export async function unmount(dir: string): Promise<void> {
  const out = await new Deno.Command("umount", { args: [dir], stderr: "piped" }).output();
  if (!out.success) await new Deno.Command("umount", { args: ["-l", dir] }).output();
}

/** Free bytes of the filesystem holding `dir`, as an unprivileged writer sees them. */
export function freeBytes(dir: string): number {
  const st = statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}

const ZEROS = new Uint8Array(64 * 1024);

/**
 * Grows or shrinks the file `filler` so that about `leave` bytes stay free on its filesystem
 * (to the page). Writes real data: a sparse file would take no space on tmpfs.
 */
export function fillTo(filler: string, leave: number): void {
  const dir = filler.slice(0, filler.lastIndexOf("/")) || "/";
  const free = freeBytes(dir);
  const f = Deno.openSync(filler, { create: true, read: true, write: true });
  try {
    const size = f.statSync().size;
    if (free > leave) {
      f.seekSync(0, Deno.SeekMode.End);
      let todo = free - leave;
      while (todo > 0) {
        try {
          todo -= f.writeSync(ZEROS.subarray(0, Math.min(todo, ZEROS.length)));
        } catch {
          break; // the disk is full already
        }
      }
    } else if (free < leave) {
      f.truncateSync(Math.max(0, size - (leave - free)));
    }
  } finally {
    f.close();
  }
}
