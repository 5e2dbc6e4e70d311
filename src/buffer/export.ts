import { DatabaseSync } from "node:sqlite";
import type { StoredReading } from "../reading.ts";
import { countRows, selectRows } from "./series_index.ts";

/** Filter of {@linkcode exportReadings}. */
export interface ExportFilter {
  device?: string;
  metric?: string;
  /** Inclusive, ms. */
  from?: number;
  /** Exclusive, ms. */
  to?: number;
}

/** One exported row: a stored reading and whether it was forwarded. */
export interface ExportRow extends StoredReading {
  forwarded: boolean;
  /** Set on readings stored locally only (never forwarded, e.g. raw samples of `raw: local`). */
  local?: true;
}

/**
 * Reads stored readings from a buffer file without disturbing a running gateway (read-only,
 * WAL readers do not block the writer), in sequence order, in pages of `pageSize`.
 */
export function* exportReadings(
  path: string,
  filter: ExportFilter = {},
  pageSize = 5000,
): Generator<ExportRow> {
  try {
    Deno.statSync(path);
  } catch {
    throw new Error(`Cannot open buffer "${path}": no such file`);
  }
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const series = new Map<
      number,
      { device: string; metric: string; unit: string; kind: number }
    >();
    for (const r of db.prepare("SELECT id, device, metric, unit, kind FROM series").all()) {
      if (filter.device !== undefined && r.device !== filter.device) continue;
      if (filter.metric !== undefined && r.metric !== filter.metric) continue;
      series.set(Number(r.id), {
        device: String(r.device),
        metric: String(r.metric),
        unit: String(r.unit),
        kind: Number(r.kind),
      });
    }
    if (series.size === 0) return;
    const meta = new Map<string, unknown>();
    for (const r of db.prepare("SELECT key, value FROM meta").all()) {
      meta.set(String(r.key), r.value);
    }
    const floor = Number(meta.get("ack_floor") ?? 0);
    const acked = db.prepare("SELECT lo, hi FROM acked").all().map((
      r,
    ) => [Number(r.lo), Number(r.hi)]);
    // Files written before local-only readings existed have no such table.
    const hasLocal = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'local_readings'",
    ).get() !== undefined;
    const rows = selectRows(db, {
      sids: filter.device !== undefined || filter.metric !== undefined
        ? [...series.keys()]
        : undefined,
      from: filter.from,
      to: filter.to,
      hasLocal,
      pageSize,
    });
    for (const row of rows) {
      const s = series.get(row.sid);
      if (!s) continue;
      const seq = row.seq;
      const local = row.local;
      let value = row.value as number | string | boolean;
      if (s.kind === 1) value = row.value === 1;
      else if (s.kind === 0) value = Number(row.value);
      const out: ExportRow = {
        seq,
        device: s.device,
        metric: s.metric,
        value,
        ts: row.ts,
        forwarded: !local && (seq <= floor || acked.some(([lo, hi]) => seq >= lo && seq <= hi)),
      };
      if (s.unit) out.unit = s.unit;
      if (local) out.local = true;
      yield out;
    }
  } finally {
    db.close();
  }
}

/**
 * How many rows {@linkcode exportReadings} yields for `filter`, counted from the series index
 * where it can: a total for progress (rows deleted since the index was built may be counted).
 */
export function countReadings(path: string, filter: ExportFilter = {}): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const sids: number[] = [];
    for (const r of db.prepare("SELECT id, device, metric FROM series").all()) {
      if (filter.device !== undefined && r.device !== filter.device) continue;
      if (filter.metric !== undefined && r.metric !== filter.metric) continue;
      sids.push(Number(r.id));
    }
    if (!sids.length) return 0;
    const hasLocal = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'local_readings'",
    ).get() !== undefined;
    return countRows(db, {
      sids: filter.device !== undefined || filter.metric !== undefined ? sids : undefined,
      from: filter.from,
      to: filter.to,
      hasLocal,
    });
  } finally {
    db.close();
  }
}

/** Quotes a CSV field when needed (RFC 4180). */
export function csvField(v: unknown): string {
  const s = v === undefined || v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV header of {@linkcode csvLine}. */
export const CSV_HEADER = "seq,time,device,metric,value,unit,forwarded";

/** One CSV line for an exported row (time as ISO 8601 UTC). */
export function csvLine(r: ExportRow): string {
  return [
    r.seq,
    new Date(r.ts).toISOString(),
    r.device,
    r.metric,
    r.value,
    r.unit ?? "",
    r.forwarded,
  ]
    .map(csvField).join(",");
}
