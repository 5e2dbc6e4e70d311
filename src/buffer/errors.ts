/**
 * Errors of the buffer.
 *
 * @module
 */
/** The buffer file could not be opened or used. */
export class BufferError extends Error {
  override name = "BufferError";
}

/** The readings were not accepted because the buffer is full and `overflow: reject-new`. */
export class BufferFullError extends BufferError {
  override name = "BufferFullError";
}

/**
 * The readings were not accepted because the disk holding the buffer is full (a commit failed
 * with SQLITE_FULL, or did so less than a second ago). Nothing was stored; the sender should try
 * again later.
 */
export class DiskFullError extends BufferError {
  override name = "DiskFullError";
}

/** Whether `e` is SQLite's "database or disk is full" (or the system's ENOSPC). */
export function isDiskFull(e: unknown): boolean {
  const err = e as { errcode?: number; code?: string; message?: string };
  return (err?.errcode !== undefined && (err.errcode & 0xff) === 13) || err?.code === "ENOSPC" ||
    /database or disk is full|no space left on device/i.test(String(err?.message ?? e));
}
