import type { Logger } from "../log.ts";
import type { Uplink } from "../uplink/uplink.ts";
import { alarmKey, type AlarmStore } from "./alarm_store.ts";

/** Options of {@linkcode AlarmLane}. */
export interface AlarmLaneOptions {
  store: AlarmStore;
  uplink: Uplink | undefined;
  log: Logger;
  signal: AbortSignal;
  /** Wait after a failed send before trying again. */
  retryMs?: number;
}

/**
 * The priority lane: sends queued alarm events with `uplink.sendAlarm`, oldest first, and removes
 * each once confirmed. On (re)connect it sends synchronously inside the state-change callback,
 * before the forwarder's first backlog batch (which starts from a microtask), so an alarm raised
 * offline reaches the cloud ahead of the readings buffered meanwhile.
 */
export class AlarmLane {
  readonly #o: AlarmLaneOptions;
  readonly #inflight = new Set<number>();
  #retry: ReturnType<typeof setTimeout> | undefined;
  #sent = 0;
  #failed = 0;

  constructor(opts: AlarmLaneOptions) {
    this.#o = opts;
    const up = opts.uplink;
    if (!up) return;
    const off = up.onStateChange((connected) => {
      if (connected) this.wake();
    });
    opts.signal.addEventListener("abort", () => {
      off();
      clearTimeout(this.#retry);
    }, { once: true });
  }

  /** Sends whatever is queued, if the uplink is connected. */
  wake(): void {
    const { uplink: up, store, log, signal } = this.#o;
    if (signal.aborted || !up?.connected || !up.sendAlarm) return;
    for (const { id, event } of store.pending(100)) {
      if (this.#inflight.has(id)) continue;
      this.#inflight.add(id);
      up.sendAlarm({
        type: "alarm",
        id: `${alarmKey(event)}:${event.raisedAt}:${event.state}`,
        ...event,
      })
        .then(() => {
          this.#inflight.delete(id);
          this.#sent++;
          if (!signal.aborted) {
            store.ack(id);
            if (this.#inflight.size === 0) this.wake();
          }
        }, (e) => {
          this.#inflight.delete(id);
          this.#failed++;
          log.warn("alarm not confirmed upstream; will resend", {
            rule: event.rule,
            error: (e as Error).message,
          });
          this.#scheduleRetry();
        });
    }
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined || this.#o.signal.aborted) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.wake();
    }, this.#o.retryMs ?? 1000);
  }

  /** Counters since start. */
  stats(): { sent: number; failed: number; inflight: number } {
    return { sent: this.#sent, failed: this.#failed, inflight: this.#inflight.size };
  }
}
