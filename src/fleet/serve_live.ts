/**
 * What the fleet page shows: one snapshot of the fleet, its commands and exports
 * (`GET /api/fleet`), pushed whole over server-sent events (`GET /api/events`) on a change, at
 * most every 200 ms, and every 2 s for the ages.
 */
import type { Fleet, GatewayView } from "./client.ts";
import type { TargetResult } from "./run.ts";
import { BASE_HEADERS } from "../common/http/mod.ts";
import type { ExportJob, Op } from "./serve_jobs.ts";

function gatewayJson(g: GatewayView) {
  return {
    id: g.id,
    state: g.state,
    stale: g.stale,
    version: g.version,
    backlog: g.backlog,
    oldestPendingAgeMs: g.oldestPendingAgeMs,
    lastSeen: g.lastSeen,
    startedAt: g.startedAt,
    reason: g.reason,
    operator: g.operator,
  };
}

function targetJson(t: TargetResult) {
  return {
    gatewayId: t.gatewayId,
    state: t.state,
    finished: t.finished,
    ok: t.ok,
    sentAt: t.sentAt,
    finishedAt: t.finishedAt ?? null,
    error: t.error ?? null,
    note: t.note ?? null,
    progress: t.progress ?? null,
    before: t.before,
    after: t.after ?? null,
    result: t.result === undefined ? null : t.result,
  };
}

/** The page's whole state, as `GET /api/fleet` and each event carry it. */
export function fleetSnapshot(fleet: Fleet, ops: readonly Op[], exports: readonly ExportJob[]) {
  return {
    now: Date.now(),
    broker: fleet.url,
    prefix: fleet.prefix,
    keyid: fleet.keyid,
    connected: fleet.connected,
    lastError: fleet.lastError,
    gateways: fleet.gateways().map(gatewayJson),
    ops: ops.map((o) => ({
      id: o.id,
      cmd: o.cmd,
      targets: o.targets,
      args: o.args,
      createdAt: o.createdAt,
      settled: o.settled,
      summary: o.summary,
      results: o.run.results().map(targetJson),
    })),
    exports: exports.map((x) => ({
      id: x.id,
      gateway: x.gateway,
      device: x.device,
      metric: x.metric ?? null,
      from: x.from,
      to: x.to ?? null,
      createdAt: x.createdAt,
      state: x.state,
      progress: x.progress,
      error: x.error ?? null,
      name: x.name,
    })),
  };
}

/** The shape of `GET /api/fleet` and of each event; the page script (page_script.js) reads it. */
export type FleetSnapshot = ReturnType<typeof fleetSnapshot>;

/** The live event streams of the open pages; stops its timers when `signal` aborts. */
export class LiveStreams {
  // Each live stream with the check of the credentials it was opened with: a logout elsewhere,
  // an expired session or a rotated token ends it at the next push.
  readonly #streams = new Map<ReadableStreamDefaultController<Uint8Array>, () => boolean>();
  readonly #snapshot: () => unknown;
  readonly #enc = new TextEncoder();
  #pushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(snapshot: () => unknown, signal: AbortSignal) {
    this.#snapshot = snapshot;
    const tick = setInterval(() => this.changed(), 2000);
    signal.addEventListener("abort", () => {
      clearInterval(tick);
      clearTimeout(this.#pushTimer);
    });
  }

  /** Something changed: push within 200 ms. */
  changed(): void {
    this.#pushTimer ??= setTimeout(() => this.#push(), 200);
  }

  #push(): void {
    this.#pushTimer = undefined;
    if (!this.#streams.size) return;
    const bytes = this.#enc.encode(`event: fleet\ndata: ${JSON.stringify(this.#snapshot())}\n\n`);
    for (const [c, stillAuthorized] of this.#streams) {
      try {
        if (stillAuthorized()) c.enqueue(bytes);
        else {
          this.#streams.delete(c);
          c.close();
        }
      } catch {
        this.#streams.delete(c);
      }
    }
  }

  /** `GET /api/events`: a stream that starts with the snapshot and lasts while `authorized`. */
  open(authorized: () => boolean): Response {
    const streams = this.#streams;
    const first = `retry: 1000\nevent: fleet\ndata: ${JSON.stringify(this.#snapshot())}\n\n`;
    const enc = this.#enc;
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
        streams.set(c, authorized);
        c.enqueue(enc.encode(first));
      },
      cancel() {
        streams.delete(ctl);
      },
    });
    return new Response(body, {
      headers: { ...BASE_HEADERS, "content-type": "text/event-stream; charset=utf-8" },
    });
  }

  /** Ends every stream. */
  closeAll(): void {
    for (const c of this.#streams.keys()) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    this.#streams.clear();
  }
}
