/**
 * Who writes a buffer file. Two gateways writing one buffer (a second `outpost run` started by
 * hand beside the service) would hand out the same sequence numbers; the second must stop before
 * it writes anything. The owner is a row in the file itself, taken in a write transaction, naming
 * the process by pid, its start time and the boot it runs in, so that a holder killed by SIGKILL
 * or a power cut, or a pid reused after a reboot, never locks the buffer.
 */

/** The process that holds a buffer file. */
export interface BufferOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot (`/proc/<pid>/stat`, field 22). */
  start: string;
  /** `/proc/sys/kernel/random/boot_id` of the boot the process runs in. */
  boot: string;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

/** Start time of `pid`, or undefined when there is no such process (or no /proc). */
function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19];
}

/** Process `pid` as an owner (start time and boot empty where /proc cannot tell). */
export function processOwner(pid: number): BufferOwner {
  return {
    pid,
    start: startTime(pid) ?? "",
    boot: readText("/proc/sys/kernel/random/boot_id") ?? "",
  };
}

/** This process, as an owner. */
export function currentOwner(): BufferOwner {
  return processOwner(Deno.pid);
}

/**
 * Whether `owner` is another process that is still running. Without /proc (not Linux) a
 * holder cannot be told from a dead one and is never considered alive.
 */
export function heldByOther(owner: BufferOwner, self = currentOwner()): boolean {
  if (owner.pid === self.pid && owner.start === self.start && owner.boot === self.boot) {
    return false;
  }
  if (!self.boot || owner.boot !== self.boot) return false;
  const start = startTime(owner.pid);
  return start !== undefined && start === owner.start;
}

/** Parses a stored owner row; undefined for a missing or unreadable one. */
export function parseOwner(value: unknown): BufferOwner | undefined {
  if (typeof value !== "string") return undefined;
  try {
    const o = JSON.parse(value);
    if (typeof o?.pid === "number" && typeof o.start === "string" && typeof o.boot === "string") {
      return { pid: o.pid, start: o.start, boot: o.boot };
    }
  } catch { /* unreadable: treated as none */ }
  return undefined;
}
