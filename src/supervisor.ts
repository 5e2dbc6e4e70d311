import type { AdapterContext, AdapterModule, DeviceState, Emit, WriteRequest } from "./adapter.ts";
import { backoffDelay, sleep, within } from "./common/timing.ts";
import type { Logger } from "./log.ts";

/** State of one adapter instance, as shown in status. */
export interface AdapterStatus {
  name: string;
  type: string;
  state: "starting" | "running" | "backoff" | "stopped";
  since: number;
  restarts: number;
  errors: number;
  lastError: string | null;
  counters: Record<string, number>;
  devices: Record<string, { state: DeviceState; reason?: string; since: number }>;
}

/** Options of {@linkcode AdapterSupervisor}. */
export interface SupervisorOptions<C> {
  name: string;
  module: AdapterModule<C>;
  config: C;
  emit: Emit;
  log: Logger;
  /** First restart delay; doubles up to `maxBackoffMs`. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Running this long without failing resets the backoff. */
  stableAfterMs?: number;
}

/**
 * Runs one adapter instance and keeps it running: a failure (a rejection, or `start` returning
 * while not stopped) is logged, counted, and followed by a restart after an exponential backoff
 * with jitter. One adapter's failure never touches the others.
 */
export class AdapterSupervisor<C = unknown> {
  readonly #opts: SupervisorOptions<C>;
  readonly #controller = new AbortController();
  readonly #status: AdapterStatus;
  #writer: ((r: WriteRequest) => Promise<void>) | undefined;
  #done: Promise<void> | undefined;

  constructor(opts: SupervisorOptions<C>) {
    this.#opts = opts;
    this.#status = {
      name: opts.name,
      type: opts.module.type,
      state: "starting",
      since: Date.now(),
      restarts: 0,
      errors: 0,
      lastError: null,
      counters: {},
      devices: {},
    };
  }

  /** Starts the run loop. */
  start(): void {
    this.#done ??= this.#loop();
  }

  /** Stops the adapter (aborts its signal) and waits up to `graceMs` for it to return. */
  async stop(graceMs = 5000): Promise<void> {
    this.#controller.abort();
    if (!this.#done) return;
    await within(this.#done, graceMs);
    this.#status.state = "stopped";
  }

  /** Current status. */
  status(): AdapterStatus {
    return structuredClone(this.#status);
  }

  /** Performs a write through the adapter instance (used by local rules). */
  write(request: WriteRequest): Promise<void> {
    if (!this.#writer) {
      return Promise.reject(
        new Error(
          `adapter "${this.#opts.name}" (${this.#opts.module.type}) cannot write or is not running`,
        ),
      );
    }
    return this.#writer(request);
  }

  async #loop(): Promise<void> {
    const o = this.#opts;
    const signal = this.#controller.signal;
    const min = o.minBackoffMs ?? 1000;
    const max = o.maxBackoffMs ?? 60_000;
    const stable = o.stableAfterMs ?? 60_000;
    let attempt = 0;
    const st = this.#status;
    while (!signal.aborted) {
      const started = Date.now();
      st.state = "running";
      st.since = started;
      const ctx: AdapterContext<C> = {
        name: o.name,
        config: o.config,
        emit: o.emit,
        log: o.log,
        signal,
        setDeviceState: (device, state, reason) => {
          const prev = st.devices[device];
          if (prev && prev.state === state) return;
          st.devices[device] = { state, reason, since: Date.now() };
          if (prev || state !== "online") {
            o.log[state === "online" ? "info" : "warn"](`device ${device} is ${state}`, { reason });
          }
        },
        count: (counter, by = 1) => {
          st.counters[counter] = (st.counters[counter] ?? 0) + by;
        },
        setWriter: (writer) => {
          this.#writer = writer;
        },
      };
      let error: unknown;
      try {
        await o.module.start(ctx);
        if (signal.aborted) break;
        error = new Error("adapter returned without being stopped");
      } catch (e) {
        if (signal.aborted) break;
        error = e;
      }
      this.#writer = undefined;
      if (Date.now() - started >= stable) attempt = 0;
      st.errors++;
      st.restarts++;
      st.lastError = (error as Error)?.message ?? String(error);
      st.state = "backoff";
      st.since = Date.now();
      const delay = backoffDelay(attempt++, { min, max }, { jitter: "equal" });
      o.log.error(`adapter failed; restarting in ${delay}ms`, {
        error: st.lastError,
        restarts: st.restarts,
      });
      await sleep(delay, signal);
    }
    st.state = "stopped";
    st.since = Date.now();
  }
}
