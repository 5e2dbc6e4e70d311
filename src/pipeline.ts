import type { EmitResult } from "./adapter.ts";
import { type Buffer, DiskFullError, seriesKey } from "./buffer/mod.ts";
import type { Logger } from "./log.ts";
import { checkReading, type InvalidReason, type Reading, type ReadingValue } from "./reading.ts";

/** A stage between validation and the buffer (filters, aggregation, rules). */
export interface Stage {
  /**
   * Returns the readings to keep; may add readings (aggregates) or drop some (filters). A stage
   * may instead move a reading to `local`: it is then stored in the buffer but never forwarded,
   * and the stages after this one do not see it.
   */
  process(readings: Reading[], source: string, local: Reading[]): Reading[];
}

/** Last value of one metric, for status pages. */
export interface LastValue {
  value: ReadingValue;
  unit?: string;
  ts: number;
}

/** Pipeline counters, as shown in status and metrics. */
export interface PipelineStats {
  received: number;
  accepted: number;
  invalid: Record<InvalidReason, number>;
  /** Readings of new series refused at `buffer.maxSeries`. */
  seriesLimit: number;
  rejectedFull: number;
  /** Readings refused because the disk was full (the sender was told to resend). */
  diskFull: number;
  /** Readings refused because a commit failed for another reason (sender told to resend). */
  writeFailed: number;
  bySource: Record<string, { received: number; accepted: number; invalid: number }>;
}

/** Options of {@linkcode Pipeline}. */
export interface PipelineOptions {
  buffer: Buffer;
  log: Logger;
  stages?: Stage[];
  now?: () => number;
}

/**
 * The path from adapters to the buffer: validation (finite numbers, sane timestamps, well-formed
 * ids), then stages (filters, rules), then a grouped append. Invalid readings are counted by
 * reason and logged at most once a minute per source.
 */
export class Pipeline {
  readonly #buffer: Buffer;
  readonly #log: Logger;
  readonly #now: () => number;
  #stages: Stage[];
  readonly #last = new Map<string, Map<string, LastValue>>();
  readonly #warnedAt = new Map<string, number>();
  readonly #stats: PipelineStats = {
    received: 0,
    accepted: 0,
    invalid: { device: 0, metric: 0, value: 0, unit: 0, timestamp: 0 },
    seriesLimit: 0,
    rejectedFull: 0,
    diskFull: 0,
    writeFailed: 0,
    bySource: {},
  };

  constructor(opts: PipelineOptions) {
    this.#buffer = opts.buffer;
    this.#log = opts.log;
    this.#stages = opts.stages ?? [];
    this.#now = opts.now ?? Date.now;
  }

  /** Replaces the stages (config reload). */
  setStages(stages: Stage[]): void {
    this.#stages = stages;
  }

  /**
   * Validates, processes and appends readings from `source`; resolves once they are durable. With
   * `coalesce`, the commit may wait for `buffer.commitWindow` while few readings are queued (for
   * sources whose devices each wait for their own answer, see `AppendOptions.coalesce`).
   */
  async emit(
    source: string,
    readings: Reading[],
    opts: { coalesce?: boolean } = {},
  ): Promise<EmitResult> {
    const now = this.#now();
    const src = this.#stats.bySource[source] ??= { received: 0, accepted: 0, invalid: 0 };
    this.#stats.received += readings.length;
    src.received += readings.length;
    // The common case allocates nothing: the input array is kept unless a reading is invalid.
    let valid: Reading[] = readings;
    let invalid = 0;
    let refused = 0;
    // Series are checked only when this batch could reach the limit, so ingest pays nothing else.
    const room = this.#buffer.maxSeries - this.#buffer.seriesCount;
    const fresh = readings.length >= room ? new Set<string>() : undefined;
    for (let i = 0; i < readings.length; i++) {
      const reason = checkReading(readings[i], now);
      const overLimit = reason === undefined && fresh !== undefined &&
        this.#seriesFull(readings[i], fresh, room);
      if (reason === undefined && !overLimit) {
        if (refused > 0) valid.push(readings[i]);
        continue;
      }
      if (refused === 0) valid = readings.slice(0, i);
      refused++;
      if (reason === undefined) {
        this.#stats.seriesLimit++;
        this.#warnSeriesLimit(source, readings[i]);
      } else {
        invalid++;
        this.#stats.invalid[reason]++;
        this.#warnInvalid(source, reason, readings[i]);
      }
    }
    if (invalid > 0) src.invalid += invalid;
    const local: Reading[] = [];
    for (const stage of this.#stages) valid = stage.process(valid, source, local);
    const coalesce = opts.coalesce === true;
    if (local.length > 0) return this.#appendBoth(src, valid, local, refused, coalesce);
    if (valid.length === 0) return { accepted: 0, rejected: refused, seqs: [] };
    const res = await this.#append(this.#buffer.append(valid, { coalesce }), valid.length);
    const accepted = res.seqs.length;
    this.#stats.accepted += accepted;
    this.#stats.rejectedFull += res.rejected;
    src.accepted += accepted;
    for (let i = 0; i < accepted; i++) this.#remember(valid[i]);
    // The buffer refuses the tail of `valid`, whose k-th reading is at index k or later of the
    // input: the first `accepted` of the input were all stored or refused for good.
    const result: EmitResult = {
      accepted,
      rejected: refused + (valid.length - accepted),
      seqs: res.seqs,
    };
    if (res.rejected > 0) result.retryFrom = accepted;
    return result;
  }

  /** Appends readings to forward and local-only ones; both queue for the same grouped commit. */
  async #appendBoth(
    src: { accepted: number },
    valid: Reading[],
    local: Reading[],
    refused: number,
    coalesce: boolean,
  ): Promise<EmitResult> {
    const [fwd, loc] = await this.#append(
      Promise.all([
        this.#buffer.append(valid, { coalesce }),
        this.#buffer.append(local, { forward: false, coalesce }),
      ]),
      valid.length + local.length,
    );
    let accepted = 0;
    for (const [list, res] of [[valid, fwd], [local, loc]] as const) {
      const n = res.seqs.length;
      accepted += n;
      this.#stats.rejectedFull += res.rejected;
      for (let i = 0; i < n; i++) this.#remember(list[i]);
    }
    this.#stats.accepted += accepted;
    src.accepted += accepted;
    const result: EmitResult = {
      accepted,
      rejected: refused + valid.length + local.length - accepted,
      seqs: [...fwd.seqs, ...loc.seqs].sort((a, b) => a - b),
    };
    // Local-only readings may come from anywhere in the input: all of it may be sent again.
    if (fwd.rejected > 0 || loc.rejected > 0) {
      result.retryFrom = loc.rejected > 0 ? 0 : fwd.seqs.length;
    }
    return result;
  }

  /** Counts `n` readings a failed commit refused (by reason) and passes the error on. */
  async #append<T>(appending: Promise<T>, n: number): Promise<T> {
    try {
      return await appending;
    } catch (e) {
      if (e instanceof DiskFullError) this.#stats.diskFull += n;
      else this.#stats.writeFailed += n;
      throw e;
    }
  }

  /** Whether `r` would open a series beyond the limit; notes the new ones in `fresh`. */
  #seriesFull(r: Reading, fresh: Set<string>, room: number): boolean {
    if (this.#buffer.hasSeries(r)) return false;
    const key = seriesKey(r);
    if (fresh.has(key)) return false;
    if (fresh.size >= room) return true;
    fresh.add(key);
    return false;
  }

  #remember(r: Reading): void {
    let m = this.#last.get(r.device);
    if (!m) this.#last.set(r.device, m = new Map());
    const prev = m.get(r.metric);
    if (prev && prev.ts > r.ts) return;
    m.set(r.metric, { value: r.value, unit: r.unit, ts: r.ts });
  }

  /** True at most once a minute per key: repeated warnings are only counted. */
  #firstThisMinute(key: string): boolean {
    const now = Date.now();
    if ((this.#warnedAt.get(key) ?? 0) > now - 60_000) return false;
    this.#warnedAt.set(key, now);
    return true;
  }

  #warnSeriesLimit(source: string, r: Reading): void {
    if (!this.#firstThisMinute(`${source}:series`)) return;
    this.#log.error(
      `series limit of ${this.#buffer.maxSeries} reached (buffer.maxSeries): readings of new device/metric pairs are dropped, known ones are stored; further ones counted silently for 1 min. Look for an adapter that makes up device or metric ids, or raise buffer.maxSeries together with the heap (DENO_V8_FLAGS)`,
      { source, device: r.device, metric: r.metric },
    );
  }

  #warnInvalid(source: string, reason: InvalidReason, r: Reading): void {
    if (!this.#firstThisMinute(`${source}:${reason}`)) return;
    this.#log.warn(
      `invalid reading dropped (bad ${reason}); further ones counted silently for 1 min`,
      {
        source,
        device: String(r?.device).slice(0, 64),
        metric: String(r?.metric).slice(0, 64),
        value: String(r?.value).slice(0, 64),
        ts: r?.ts,
      },
    );
  }

  /** Last value of every metric of every device. */
  lastValues(): Record<string, Record<string, LastValue>> {
    const out: Record<string, Record<string, LastValue>> = {};
    for (const [d, m] of this.#last) out[d] = Object.fromEntries(m);
    return out;
  }

  /** Counters since start. */
  stats(): PipelineStats {
    return structuredClone(this.#stats);
  }
}
