/** Pieces of the gateway's health checks (/healthz) that need none of its state. */
import type { BufferStats } from "./buffer/mod.ts";

function mb(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
}

/** The disk check of /healthz: not full, and free space above `buffer.minFreeDisk`. */
export function diskCheck(b: BufferStats, floor: number): { ok: boolean; detail: string } {
  const free = b.freeDisk === null ? "free space unknown" : `${mb(b.freeDisk)} free`;
  if (b.diskFull) {
    return {
      ok: false,
      detail: `full since ${
        new Date(b.diskFull.since).toISOString()
      }: new readings refused, forwarding goes on (${free}; ${b.diskFull.error})`,
    };
  }
  if (b.freeDisk !== null && b.freeDisk < floor) {
    return {
      ok: false,
      detail: `${free}, below buffer.minFreeDisk ${mb(floor)}: the buffer stops growing`,
    };
  }
  return {
    ok: true,
    detail: `${free}${b.reserve === "released" ? "; reserve file released" : ""}`,
  };
}
