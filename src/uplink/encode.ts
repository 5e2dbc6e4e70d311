import type { StoredReading } from "../reading.ts";

/** Identity stamped on every message, so a receiver can drop duplicates. */
export interface MessageIdentity {
  gatewayId: string;
  /** Buffer epoch: changes only when the buffer file is recreated. */
  epoch: string;
}

/** One encoded batch. */
export interface EncodedBatch {
  payload: string;
  first: number;
  last: number;
  count: number;
}

/** Size limits of {@linkcode encodeBatches}. */
export interface BatchLimits {
  /** Hard upper bound of one message in bytes. */
  maxBytes: number;
  /** Close a batch once it reaches this size (e.g. 5 KB billing units). */
  targetBytes?: number;
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) n += c > 0x7ff ? (c >= 0xd800 && c <= 0xdbff ? 1 : 2) : 1;
  }
  return n;
}

/**
 * Packs readings into batch messages (format v1, see docs/payload.md):
 *
 * `{"v":1,"gw":ID,"epoch":E,"seq":[[start,count],…],"t0":MS,"series":[[device,metric,unit],…],"r":[[s,dt,value],…]}`
 *
 * Rows are `[series index, ms after t0, value]` in sequence order; `seq` lists runs of consecutive
 * sequence numbers covering the rows in the same order. Each message stays under `maxBytes`.
 */
export function encodeBatches(
  readings: StoredReading[],
  id: MessageIdentity,
  limits: BatchLimits,
): EncodedBatch[] {
  const out: EncodedBatch[] = [];
  const head = `{"v":1,"gw":${JSON.stringify(id.gatewayId)},"epoch":${JSON.stringify(id.epoch)}`;
  const budget = Math.min(limits.targetBytes ?? limits.maxBytes, limits.maxBytes);
  let i = 0;
  while (i < readings.length) {
    const t0 = readings[i].ts;
    const seriesIdx = new Map<string, number>();
    const series: string[] = [];
    const rows: string[] = [];
    const runs: [number, number][] = [];
    // Fixed parts: head, seq, t0, series and rows keys, brackets; seq and series counted as we go.
    let size = head.length + 64 + String(t0).length;
    const first = readings[i].seq;
    let last = first;
    let count = 0;
    for (; i < readings.length; i++) {
      const r = readings[i];
      const key = `${r.device}\u0000${r.metric}\u0000${r.unit ?? ""}`;
      let sIdx = seriesIdx.get(key);
      let seriesText = "";
      if (sIdx === undefined) {
        seriesText = JSON.stringify([r.device, r.metric, r.unit ?? ""]);
      }
      const v = typeof r.value === "string" ? JSON.stringify(r.value) : String(r.value);
      const row = `[${sIdx ?? series.length},${r.ts - t0},${v}]`;
      const lastRun = runs[runs.length - 1];
      const newRun = !lastRun || lastRun[0] + lastRun[1] !== r.seq;
      const add = utf8Length(row) + 1 + (seriesText ? utf8Length(seriesText) + 1 : 0) +
        (newRun ? String(r.seq).length + 8 : 0);
      if (count > 0 && size + add > budget) break;
      if (count === 0 && size + add > limits.maxBytes) {
        throw new RangeError(
          `reading seq ${r.seq} does not fit in a ${limits.maxBytes}-byte message`,
        );
      }
      if (sIdx === undefined) {
        sIdx = series.length;
        seriesIdx.set(key, sIdx);
        series.push(seriesText);
      }
      rows.push(row);
      if (newRun) runs.push([r.seq, 1]);
      else lastRun[1]++;
      size += add;
      last = r.seq;
      count++;
    }
    const payload = `${head},"seq":${JSON.stringify(runs)},"t0":${t0},"series":[${
      series.join(",")
    }],"r":[${rows.join(",")}]}`;
    out.push({ payload, first, last, count });
  }
  return out;
}

/** Decodes a v1 batch payload back into readings (for consumers, tests and tools). */
export function decodeBatch(payload: string): {
  gatewayId: string;
  epoch: string;
  readings: StoredReading[];
} {
  const m = JSON.parse(payload) as {
    v: number;
    gw: string;
    epoch: string;
    seq: [number, number][];
    t0: number;
    series: [string, string, string][];
    r: [number, number, number | boolean | string][];
  };
  if (m.v !== 1) throw new Error(`unknown batch format version ${m.v}`);
  const seqs: number[] = [];
  for (const [start, n] of m.seq) for (let k = 0; k < n; k++) seqs.push(start + k);
  if (seqs.length !== m.r.length) {
    throw new Error(`batch has ${m.r.length} rows but ${seqs.length} sequence numbers`);
  }
  const readings = m.r.map(([s, dt, value], i) => {
    const [device, metric, unit] = m.series[s];
    const r: StoredReading = { seq: seqs[i], device, metric, value, ts: m.t0 + dt };
    if (unit) r.unit = unit;
    return r;
  });
  return { gatewayId: m.gw, epoch: m.epoch, readings };
}

/** Encodes one reading for per-reading topics. */
export function encodeReading(r: StoredReading, id: MessageIdentity): string {
  return JSON.stringify({
    gw: id.gatewayId,
    epoch: id.epoch,
    seq: r.seq,
    device: r.device,
    metric: r.metric,
    value: r.value,
    ...(r.unit ? { unit: r.unit } : {}),
    ts: r.ts,
  });
}

/** Fills `{gatewayId}`, `{deviceId}` and `{metric}` in a topic template. */
export function fillTopic(
  template: string,
  vars: { gatewayId: string; deviceId?: string; metric?: string },
): string {
  return template.replace(/\{(gatewayId|deviceId|metric)\}/g, (_m, k: string) => {
    const v = vars[k as keyof typeof vars];
    return v === undefined ? `{${k}}` : v.replace(/[+#\/]/g, "_");
  });
}
