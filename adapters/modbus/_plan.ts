/**
 * Coalescing of a poll group's register map into as few read requests as the protocol allows.
 */
import type { FUNCTIONS } from "./config.ts";
import type { Codec } from "./_decode.ts";

/** A Modbus data table. */
export type Table = (typeof FUNCTIONS)[number];

/** One register map entry, resolved for polling. */
export interface Point {
  /** Metric name. */
  name: string;
  table: Table;
  address: number;
  /** Registers (or bits) the entry occupies. */
  size: number;
  codec: Codec;
  unit?: string;
}

/** One read request covering one or more points of the same table. */
export interface Read {
  table: Table;
  start: number;
  count: number;
  points: Point[];
}

/** Limits of one device's reads. */
export interface PlanOptions {
  /** Unmapped registers or bits one read may span to merge two ranges. */
  maxGap: number;
  /** Largest register read (protocol limit 125). */
  maxRegisters: number;
  /** Largest coil or discrete input read (protocol limit 2000). */
  maxBits: number;
}

/** True for the tables read bit by bit. */
export function isBitTable(table: Table): boolean {
  return table === "coil" || table === "discrete";
}

/**
 * Groups points into reads: same table, sorted by address, merged while the hole between them is
 * at most `maxGap` and the read stays within the size limit.
 *
 * @example
 * ```ts
 * // holding 0..1 and 2..3 become one read of 4 registers
 * planReads(points, { maxGap: 0, maxRegisters: 125, maxBits: 2000 });
 * ```
 */
export function planReads(points: readonly Point[], options: PlanOptions): Read[] {
  const reads: Read[] = [];
  const tables: Table[] = ["coil", "discrete", "holding", "input"];
  for (const table of tables) {
    const limit = isBitTable(table) ? options.maxBits : options.maxRegisters;
    const sorted = points.filter((p) => p.table === table)
      .sort((a, b) => a.address - b.address || b.size - a.size);
    let current: Read | undefined;
    for (const p of sorted) {
      const end = p.address + p.size;
      if (current) {
        const currentEnd = current.start + current.count;
        const newEnd = Math.max(currentEnd, end);
        if (p.address - currentEnd <= options.maxGap && newEnd - current.start <= limit) {
          current.count = newEnd - current.start;
          current.points.push(p);
          continue;
        }
      }
      current = { table, start: p.address, count: p.size, points: [p] };
      reads.push(current);
    }
  }
  return reads;
}
