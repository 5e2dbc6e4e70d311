import type { Buffer } from "./buffer/mod.ts";
import type { Logger } from "./log.ts";
import {
  type OutMessage,
  PermanentUplinkError,
  type Uplink,
  type UplinkError,
} from "./uplink/mod.ts";

/** Pacing of the backlog after an outage. */
export interface BackfillPacing {
  messagesPerSecond?: number;
  bytesPerSecond?: number;
}

/** Options of {@linkcode Forwarder}. */
export interface ForwarderOptions {
  buffer: Buffer;
  uplink: Uplink;
  log: Logger;
  /** Readings read from the buffer per step (default 2000: one message of ~40 KB). */
  readRows?: number;
  /**
   * Payload bytes in flight at most (default 160 KB); one message is always allowed. Together
   * with the uplink's `maxInflight` this bounds what a drain holds: a few ~40 KB messages keep a
   * mutual-TLS drain as fast as 16 messages of 100 KB did, with ~15 MB less RSS.
   */
  inflightBytes?: number;
  backfill?: BackfillPacing;
  /**
   * With readings pending and the uplink connected, no acknowledgement for this long makes the
   * forwarder "stuck" (unhealthy). Default 5 minutes.
   */
  stuckAfterMs?: number;
}

/** Forwarder counters, as shown in status. */
export interface ForwarderStats {
  forwardedReadings: number;
  forwardedMessages: number;
  forwardedBytes: number;
  lastForwardedAt: number | null;
  retries: number;
  setAside: number;
  /** Backlog still to send on the paced lane, when one is active. */
  backlogLane: { from: number; to: number } | null;
}

interface Flight {
  lo: number;
  hi: number;
  bytes: number;
}

/** A token bucket: `rate` per second, holding at most one second's worth (or one item). */
class Bucket {
  #tokens: number;
  #at = Date.now();
  constructor(readonly rate: number) {
    this.#tokens = Math.max(1, rate);
  }
  /** ms to wait before `n` tokens are there (0 when they are). */
  waitFor(n: number): number {
    this.#refill();
    return this.#tokens >= Math.min(n, Math.max(1, this.rate)) ? 0 : Math.ceil(
      (Math.min(n, Math.max(1, this.rate)) - this.#tokens) / this.rate * 1000,
    );
  }
  take(n: number): void {
    this.#refill();
    this.#tokens -= n;
  }
  #refill(): void {
    const now = Date.now();
    this.#tokens = Math.min(
      Math.max(1, this.rate),
      this.#tokens + (now - this.#at) / 1000 * this.rate,
    );
    this.#at = now;
  }
}

/**
 * Moves pending readings from the buffer to the uplink in sequence order, several messages in
 * flight, acknowledging each range in the buffer only once the uplink confirmed it. After an
 * outage with pacing configured, the backlog goes on a paced lane and new readings on a live lane,
 * so fresh data is never starved behind days of backlog.
 */
export class Forwarder {
  readonly #buffer: Buffer;
  readonly #uplink: Uplink;
  readonly #log: Logger;
  readonly #readRows: number;
  readonly #pacing: BackfillPacing | undefined;
  readonly #inflight = new Set<Flight>();
  readonly #maxInflightBytes: number;
  #inflightBytes = 0;
  #cursor = 0;
  /** Paced backlog lane: (#backlogCursor, #backlogEnd]; live lane continues from #cursor. */
  #backlogCursor = 0;
  #backlogEnd = 0;
  #msgBucket: Bucket | undefined;
  #byteBucket: Bucket | undefined;
  #rewind = false;
  #holdUntil = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pumping = false;
  #stopped = true;
  #unsubscribe: (() => void)[] = [];
  #stats: ForwarderStats = {
    forwardedReadings: 0,
    forwardedMessages: 0,
    forwardedBytes: 0,
    lastForwardedAt: null,
    retries: 0,
    setAside: 0,
    backlogLane: null,
  };
  #idleWaiters: (() => void)[] = [];
  readonly #stuckAfterMs: number;
  /** Last acknowledgement, connect, or moment with nothing to do. */
  #progressAt = Date.now();
  #wasIdle = true;

  constructor(opts: ForwarderOptions) {
    this.#buffer = opts.buffer;
    this.#uplink = opts.uplink;
    this.#log = opts.log;
    this.#readRows = opts.readRows ?? 2000;
    this.#maxInflightBytes = opts.inflightBytes ?? 160 * 1024;
    this.#stuckAfterMs = opts.stuckAfterMs ?? 300_000;
    const p = opts.backfill;
    this.#pacing = p && (p.messagesPerSecond || p.bytesPerSecond) ? p : undefined;
  }

  /** Starts forwarding whenever the uplink is connected. */
  start(): void {
    this.#stopped = false;
    this.#unsubscribe.push(
      this.#buffer.onAppend(() => {
        // Work arriving after a quiet spell starts the clock; arriving behind a backlog does not.
        if (this.#wasIdle) this.#progressAt = Date.now();
        this.#wasIdle = false;
        this.#kick();
      }),
      this.#uplink.onStateChange((up) => {
        if (up) this.#onConnect();
      }),
    );
    if (this.#uplink.connected) this.#onConnect();
  }

  /** Stops reading new work; in-flight messages settle on their own. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
  }

  /** Current counters. */
  stats(): ForwarderStats {
    return {
      ...this.#stats,
      backlogLane: this.#backlogCursor < this.#backlogEnd
        ? { from: this.#backlogCursor, to: this.#backlogEnd }
        : null,
    };
  }

  /** Resolves when nothing is pending and nothing is in flight (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  #isIdle(): boolean {
    return this.#inflight.size === 0 && this.#buffer.pending === 0;
  }

  /**
   * Why the forwarder is stuck (readings pending, uplink connected, nothing acknowledged for
   * `stuckAfterMs`), or `undefined` when it is not.
   */
  stuck(now = Date.now()): string | undefined {
    const pending = this.#buffer.pending;
    if (!this.#uplink.connected || pending <= 0) return undefined;
    const quiet = now - this.#progressAt;
    if (quiet < this.#stuckAfterMs) return undefined;
    return `${pending} readings pending and the uplink connected, but nothing acknowledged for ${
      Math.round(quiet / 1000)
    }s`;
  }

  #onConnect(): void {
    this.#progressAt = Date.now();
    this.#resetCursors();
    this.#kick();
  }

  #resetCursors(): void {
    const floor = this.#buffer.ackFloor;
    const last = this.#buffer.lastSeq;
    if (this.#pacing && last > floor) {
      // Everything pending now is backlog; what arrives from here on is live.
      this.#backlogCursor = floor;
      this.#backlogEnd = Math.max(this.#backlogEnd, last);
      this.#cursor = this.#backlogEnd;
      this.#msgBucket = this.#pacing.messagesPerSecond
        ? new Bucket(this.#pacing.messagesPerSecond)
        : undefined;
      this.#byteBucket = this.#pacing.bytesPerSecond
        ? new Bucket(this.#pacing.bytesPerSecond)
        : undefined;
    } else {
      this.#cursor = Math.min(
        floor,
        this.#backlogCursor < this.#backlogEnd ? this.#backlogCursor : floor,
      );
      this.#backlogCursor = this.#backlogEnd = 0;
    }
  }

  #kick(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    queueMicrotask(() => this.#pump());
  }

  #schedule(ms: number): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, ms);
  }

  #pump(): void {
    if (this.#pumping || this.#stopped) return;
    this.#pumping = true;
    try {
      this.#fill();
    } catch (e) {
      this.#log.error("forwarder step failed; retrying", { error: (e as Error).message });
      this.#schedule(1000);
    } finally {
      this.#pumping = false;
    }
    this.#wasIdle = this.#isIdle();
    if (this.#wasIdle) {
      this.#progressAt = Date.now();
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const r of w) r();
    }
  }

  #fill(): void {
    const up = this.#uplink;
    if (!up.connected) return;
    if (this.#rewind) {
      if (this.#inflight.size > 0) return;
      this.#rewind = false;
      this.#resetCursors();
    }
    const hold = this.#holdUntil - Date.now();
    if (hold > 0) return this.#schedule(hold);
    while (
      this.#inflight.size < up.maxInflight &&
      (this.#inflight.size === 0 || this.#inflightBytes < this.#maxInflightBytes) &&
      up.connected && !this.#rewind
    ) {
      // The live lane first: new readings are never starved behind the backlog.
      if (this.#cursor < this.#buffer.lastSeq) {
        if (!this.#sendFrom("live")) continue;
        continue;
      }
      if (this.#backlogCursor < this.#backlogEnd) {
        const wait = this.#paceWait(1);
        if (wait > 0) return this.#schedule(wait);
        this.#sendFrom("backlog");
        continue;
      }
      if (this.#backlogEnd) {
        this.#log.info("backlog drained", { upTo: this.#backlogEnd });
        this.#backlogCursor = this.#backlogEnd = 0;
      }
      return;
    }
  }

  /** Reads and sends one step of a lane; returns false when the lane had nothing. */
  #sendFrom(lane: "live" | "backlog"): boolean {
    const paced = lane === "backlog";
    const from = paced ? this.#backlogCursor : this.#cursor;
    const upto = paced ? this.#backlogEnd : Number.MAX_SAFE_INTEGER;
    // Paced reads stay small: what the buckets do not allow now is read again later.
    const rows = paced ? Math.min(this.#readRows, 1000) : this.#readRows;
    const { readings, scannedTo } = this.#buffer.readPending(from, rows, upto);
    if (readings.length === 0) {
      if (paced) this.#backlogCursor = Math.max(this.#backlogCursor, scannedTo);
      else this.#cursor = Math.max(this.#cursor, scannedTo);
      return false;
    }
    const messages = this.#uplink.encode(readings);
    let lo = from + 1;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (paced && i > 0 && this.#paceWait(m.payload.length) > 0) break;
      const hi = i === messages.length - 1 ? scannedTo : m.last;
      this.#send(m, lo, hi, lane);
      lo = hi + 1;
    }
    if (paced) this.#backlogCursor = Math.max(this.#backlogCursor, lo - 1);
    else this.#cursor = Math.max(this.#cursor, lo - 1);
    return true;
  }

  /** ms until the backlog buckets allow a message of `bytes`. */
  #paceWait(bytes: number): number {
    return Math.max(this.#msgBucket?.waitFor(1) ?? 0, this.#byteBucket?.waitFor(bytes) ?? 0);
  }

  #send(message: OutMessage, lo: number, hi: number, lane: "live" | "backlog"): void {
    const bytes = message.payload.length;
    if (lane === "backlog") {
      this.#msgBucket?.take(1);
      this.#byteBucket?.take(bytes);
    }
    const flight: Flight = { lo, hi, bytes };
    this.#inflight.add(flight);
    this.#inflightBytes += bytes;
    const settle = () => {
      this.#inflight.delete(flight);
      this.#inflightBytes -= bytes;
    };
    this.#uplink.send(message).then(() => {
      settle();
      this.#progressAt = Date.now();
      try {
        this.#buffer.ack(lo, hi);
      } catch (e) {
        // Not acknowledged in the buffer: sent again later, which the receiver's ids absorb.
        this.#log.error("cannot record an acknowledgement; the batch will be sent again", {
          seq: `${lo}-${hi}`,
          error: (e as Error).message,
        });
        this.#rewind = true;
        this.#schedule(1000);
        return;
      }
      const s = this.#stats;
      s.forwardedReadings += message.count;
      s.forwardedMessages++;
      s.forwardedBytes += bytes;
      s.lastForwardedAt = Date.now();
      this.#kick();
    }, (err: Error) => {
      settle();
      if (err instanceof PermanentUplinkError) {
        try {
          this.#buffer.setAside(lo, hi, err.message);
        } catch (e) {
          this.#log.error("cannot set a refused batch aside; it will be sent again", {
            seq: `${lo}-${hi}`,
            error: (e as Error).message,
          });
          this.#rewind = true;
          this.#schedule(1000);
          return;
        }
        this.#stats.setAside += message.count;
        this.#log.error("uplink refused a batch for good; set aside in the buffer", {
          seq: `${lo}-${hi}`,
          readings: message.count,
          reason: err.message,
        });
        this.#kick();
        return;
      }
      this.#stats.retries++;
      const retryAfter = (err as UplinkError & { retryAfterMs?: number }).retryAfterMs;
      if (retryAfter) this.#holdUntil = Math.max(this.#holdUntil, Date.now() + retryAfter);
      // Resend everything not yet acknowledged, in order, once the in-flight messages settle.
      this.#rewind = true;
      if (this.#uplink.connected) this.#schedule(Math.max(200, retryAfter ?? 0));
    });
  }
}
