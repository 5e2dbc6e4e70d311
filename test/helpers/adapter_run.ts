import type { AdapterContext, AdapterModule, DeviceState, EmitResult } from "../../src/adapter.ts";
import { silentLogger } from "../../src/log.ts";
import type { Reading } from "../../src/reading.ts";

/** An adapter started by a test with a collecting context (the adapter's own boundary). */
export interface AdapterRun {
  collected: Reading[];
  counts: Map<string, number>;
  states: Map<string, DeviceState>;
  /** Aborts the adapter and waits for `start` to return. */
  stop(): Promise<void>;
  /** The promise `start` returned. */
  running: Promise<void>;
}

/**
 * Starts `adapter` with `config` under `opts.name` (default "test"); emitted readings are
 * collected, counters and states kept. `opts.emit` answers each emit (to refuse or hold
 * readings); without it every reading is accepted.
 */
export function runAdapter<C>(
  adapter: AdapterModule<C>,
  config: C,
  opts: { name?: string; emit?: (rs: Reading[]) => Promise<EmitResult> } = {},
): AdapterRun {
  const name = opts.name ?? "test";
  const abort = new AbortController();
  const collected: Reading[] = [];
  const counts = new Map<string, number>();
  const states = new Map<string, DeviceState>();
  const ctx: AdapterContext<C> = {
    name,
    config,
    emit: (rs): Promise<EmitResult> => {
      collected.push(...rs);
      if (opts.emit) return opts.emit(rs);
      return Promise.resolve({ accepted: rs.length, rejected: 0, seqs: [] });
    },
    log: silentLogger(),
    signal: abort.signal,
    setDeviceState(device, state) {
      states.set(device, state);
    },
    count(c, by = 1) {
      counts.set(c, (counts.get(c) ?? 0) + by);
    },
    setWriter() {},
  };
  const running = adapter.start(ctx);
  return {
    collected,
    counts,
    states,
    running,
    async stop() {
      abort.abort();
      await running;
    },
  };
}
