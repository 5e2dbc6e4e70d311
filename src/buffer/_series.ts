/**
 * The series dictionary: each (device, metric, unit, value kind) is stored once in `series` and
 * readings carry its id. The whole dictionary is kept in memory (a series costs ≤ ~200 B of heap,
 * bounded by `buffer.maxSeries`); ids added by a transaction that fails are forgotten again.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Reading, ReadingValue, StoredReading } from "../reading.ts";
import type { FaultStep } from "./types.ts";

const KIND_NUMBER = 0;
const KIND_BOOL = 1;
const KIND_STRING = 2;

interface Series {
  device: string;
  metric: string;
  unit: string;
  kind: number;
}

/** A stored row as SQLite returns it. */
export interface RawRow {
  seq: number;
  ts: number;
  sid: number;
  value: number | string;
}

function kindOf(v: ReadingValue): number {
  return typeof v === "number" ? KIND_NUMBER : typeof v === "boolean" ? KIND_BOOL : KIND_STRING;
}

/** The key of a reading's series: device, metric, unit and value kind. */
export function seriesKey(r: Reading): string {
  return `${r.device}\u0000${r.metric}\u0000${r.unit ?? ""}\u0000${kindOf(r.value)}`;
}

/** Series ids of one buffer file, loaded at open and grown inside write transactions. */
export class SeriesDict {
  readonly #insert: StatementSync;
  readonly #fault: ((step: FaultStep) => void) | undefined;
  #series: Series[] = [];
  #ids = new Map<string, number>();
  /** Series keys added by the open transaction (forgotten again if it fails). */
  #txn: string[] = [];
  #txnLength = 0;

  /** Loads the dictionary from `db`. */
  constructor(db: DatabaseSync, fault?: (step: FaultStep) => void) {
    this.#fault = fault;
    for (const r of db.prepare("SELECT id, device, metric, unit, kind FROM series").all()) {
      const s = {
        device: String(r.device),
        metric: String(r.metric),
        unit: String(r.unit),
        kind: Number(r.kind),
      };
      this.#series[Number(r.id)] = s;
      this.#ids.set(`${s.device}\u0000${s.metric}\u0000${s.unit}\u0000${s.kind}`, Number(r.id));
    }
    this.#insert = db.prepare(
      "INSERT INTO series(id, device, metric, unit, kind) VALUES (?, ?, ?, ?, ?)",
    );
  }

  /** Distinct series the file holds. */
  get size(): number {
    return this.#ids.size;
  }

  /** Whether readings like `r` are stored in a series the file already holds. */
  has(r: Reading): boolean {
    return this.#ids.has(seriesKey(r));
  }

  /** Called when a write transaction begins. */
  begin(): void {
    this.#txn = [];
    this.#txnLength = this.#series.length;
  }

  /** Called when it committed: its series stand. */
  commit(): void {
    this.#txn = [];
  }

  /** Called when it failed: forgets the series it added. */
  rollback(): void {
    for (const key of this.#txn) this.#ids.delete(key);
    this.#txn = [];
    this.#series.length = this.#txnLength;
  }

  /** The id of `r`'s series, inserting the series (inside a write transaction) when new. */
  idOf(r: Reading): number {
    const key = seriesKey(r);
    let id = this.#ids.get(key);
    if (id === undefined) {
      const kind = kindOf(r.value);
      const unit = r.unit ?? "";
      id = this.#series.length || 1;
      this.#fault?.("series");
      this.#insert.run(id, r.device, r.metric, unit, kind);
      this.#series[id] = { device: r.device, metric: r.metric, unit, kind };
      this.#ids.set(key, id);
      this.#txn.push(key);
    }
    return id;
  }

  /** Ids of the series of `device` and `metric` (either may be left out). */
  matching(device: string | undefined, metric: string | undefined): number[] {
    const sids: number[] = [];
    this.#series.forEach((s, id) => {
      if (
        s && (device === undefined || s.device === device) &&
        (metric === undefined || s.metric === metric)
      ) sids.push(id);
    });
    return sids;
  }

  /** Every series: device, metric and unit (empty when none). */
  list(): { device: string; metric: string; unit: string }[] {
    const out: { device: string; metric: string; unit: string }[] = [];
    for (const s of this.#series) {
      if (s) out.push({ device: s.device, metric: s.metric, unit: s.unit });
    }
    return out;
  }

  /** A stored row as a reading. */
  toReading(row: RawRow): StoredReading {
    const s = this.#series[Number(row.sid)];
    let value: ReadingValue = row.value as ReadingValue;
    if (s.kind === KIND_BOOL) value = row.value === 1;
    else if (s.kind === KIND_NUMBER) value = Number(row.value);
    const r: StoredReading = {
      seq: Number(row.seq),
      device: s.device,
      metric: s.metric,
      value,
      ts: Number(row.ts),
    };
    if (s.unit) r.unit = s.unit;
    return r;
  }
}
