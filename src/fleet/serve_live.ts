/**
 * What the fleet page shows: one snapshot of the fleet, its commands and exports
 * (`GET /api/fleet`), then over server-sent events (`GET /api/events`) the snapshot once and
 * after that only what changed (`patch` events: the gateways, commands and exports whose JSON
 * differs, and the ids gone), at most every 200 ms. Nothing on the wire moves with the clock
 * alone (ages are computed by the page from times), so a quiet fleet sends nothing; a sweep every
 * 2 s catches what turns with time on the server (stale, lagging).
 */
import type { Fleet, GatewayView } from "./client.ts";
import { type FleetPages, gatewayPageUrl } from "./config.ts";
import { fitsOneLine } from "./results.ts";
import type { TargetResult } from "./run.ts";
import { BASE_HEADERS } from "../common/http/mod.ts";
import type { ExportJob, Op } from "./serve_jobs.ts";

function gatewayJson(g: GatewayView, pages: FleetPages | undefined) {
  return {
    id: g.id,
    state: g.state,
    stale: g.stale,
    health: g.health,
    healthNote: g.healthNote,
    site: g.site,
    pageUrl: gatewayPageUrl(g, pages),
    alarms: g.alarms,
    doctor: g.doctor,
    deviceUpdates: g.deviceUpdates && {
      label: g.deviceUpdates.label,
      stopped: g.deviceUpdates.classes.some((c) => c.rollout?.status === "stopped"),
      /** Classes whose rollout stopped at its failure threshold: the page offers Resume. */
      stoppedClasses: g.deviceUpdates.classes.filter((c) => c.rollout?.status === "stopped")
        .map((c) => c.class),
    },
    version: g.version,
    backlog: g.backlog,
    oldestPendingSince: g.oldestPendingSince,
    lastSeen: g.lastSeen,
    offlineSince: g.offlineSince,
    startedAt: g.startedAt,
    reason: g.reason,
    operator: g.operator,
  };
}

/** One target of a command as the page lists it: the whole result only when it fits a line. */
function targetJson(t: TargetResult) {
  const text = t.result === undefined ? "" : JSON.stringify(t.result);
  const paged = (t.pages?.length ?? 0) > 0;
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
    /** The result when it fits one line; else null and `resultChars` says how long it is. */
    result: t.result === undefined || !fitsOneLine(text) || paged ? null : t.result,
    resultChars: t.result === undefined && !paged ? 0 : text.length,
    pages: t.pages?.length ?? 0,
  };
}

function opJson(o: Op) {
  return {
    id: o.id,
    cmd: o.cmd,
    targets: o.targets,
    args: o.args,
    createdAt: o.createdAt,
    settled: o.settled,
    summary: o.summary,
    results: o.run.results().map(targetJson),
  };
}

function exportJson(x: ExportJob) {
  return {
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
  };
}

/** The page's whole state, as `GET /api/fleet` and the first event carry it. */
export function fleetSnapshot(
  fleet: Fleet,
  ops: readonly Op[],
  exports: readonly ExportJob[],
  pages?: FleetPages,
) {
  return {
    now: Date.now(),
    broker: fleet.url,
    prefix: fleet.prefix,
    keyid: fleet.keyid,
    connected: fleet.connected,
    lastError: fleet.lastError,
    gateways: fleet.gateways().map((g) => gatewayJson(g, pages)),
    ops: ops.map(opJson),
    exports: exports.map(exportJson),
  };
}

/** The shape of `GET /api/fleet` and of the first event; the page script reads it. */
export type FleetSnapshot = ReturnType<typeof fleetSnapshot>;

/** A `patch` event: only what changed since the previous event. */
export interface FleetPatch {
  now: number;
  /** broker, prefix, keyid, connected, lastError when one of them changed. */
  head?: Omit<FleetSnapshot, "now" | "gateways" | "ops" | "exports">;
  /** Gateways new or changed, whole. */
  gateways?: FleetSnapshot["gateways"];
  /** Ids of gateways whose status was cleared. */
  removed?: string[];
  ops?: FleetSnapshot["ops"];
  opsRemoved?: string[];
  exports?: FleetSnapshot["exports"];
  exportsRemoved?: string[];
}

/** Keeps the JSON last sent per id and tells what differs in the next list. */
class Differ<T extends { id: string }> {
  #sent = new Map<string, string>();

  /** Resets to `items` as sent whole. */
  reset(items: readonly T[]): void {
    this.#sent = new Map(items.map((i) => [i.id, JSON.stringify(i)]));
  }

  diff(items: readonly T[]): { changed: T[]; removed: string[] } {
    const next = new Map<string, string>();
    const changed: T[] = [];
    for (const i of items) {
      const text = JSON.stringify(i);
      next.set(i.id, text);
      if (this.#sent.get(i.id) !== text) changed.push(i);
    }
    const removed = [...this.#sent.keys()].filter((id) => !next.has(id));
    this.#sent = next;
    return { changed, removed };
  }
}

/** Computes the patch between two snapshots taken in turn. */
export class SnapshotDiff {
  readonly #gateways = new Differ<FleetSnapshot["gateways"][number]>();
  readonly #ops = new Differ<FleetSnapshot["ops"][number]>();
  readonly #exports = new Differ<FleetSnapshot["exports"][number]>();
  #head = "";

  /** Takes `s` as what every stream has now. */
  reset(s: FleetSnapshot): void {
    this.#gateways.reset(s.gateways);
    this.#ops.reset(s.ops);
    this.#exports.reset(s.exports);
    this.#head = JSON.stringify(head(s));
  }

  /** What changed since the last call (or reset); undefined when nothing did. */
  next(s: FleetSnapshot): FleetPatch | undefined {
    const p: FleetPatch = { now: s.now };
    const h = head(s);
    const hText = JSON.stringify(h);
    if (hText !== this.#head) p.head = h;
    this.#head = hText;
    const g = this.#gateways.diff(s.gateways);
    if (g.changed.length) p.gateways = g.changed;
    if (g.removed.length) p.removed = g.removed;
    const o = this.#ops.diff(s.ops);
    if (o.changed.length) p.ops = o.changed;
    if (o.removed.length) p.opsRemoved = o.removed;
    const x = this.#exports.diff(s.exports);
    if (x.changed.length) p.exports = x.changed;
    if (x.removed.length) p.exportsRemoved = x.removed;
    return Object.keys(p).length > 1 ? p : undefined;
  }
}

function head(s: FleetSnapshot) {
  const { broker, prefix, keyid, connected, lastError } = s;
  return { broker, prefix, keyid, connected, lastError };
}

/** The live event streams of the open pages; stops its timers when `signal` aborts. */
export class LiveStreams {
  // Each live stream with the check of the credentials it was opened with: a logout elsewhere,
  // an expired session or a rotated token ends it at the next push.
  readonly #streams = new Map<ReadableStreamDefaultController<Uint8Array>, () => boolean>();
  readonly #snapshot: () => FleetSnapshot;
  readonly #diff = new SnapshotDiff();
  readonly #enc = new TextEncoder();
  #pushTimer: ReturnType<typeof setTimeout> | undefined;
  #lastWrite = Date.now();

  constructor(snapshot: () => FleetSnapshot, signal: AbortSignal) {
    this.#snapshot = snapshot;
    const tick = setInterval(() => {
      this.changed();
      // A comment line now and then keeps proxies from closing a quiet stream.
      if (Date.now() - this.#lastWrite > 15_000) this.#write(": keep-alive\n\n");
    }, 2000);
    signal.addEventListener("abort", () => {
      clearInterval(tick);
      clearTimeout(this.#pushTimer);
    });
  }

  /** Something may have changed: push what did within 200 ms. */
  changed(): void {
    this.#pushTimer ??= setTimeout(() => this.#push(), 200);
  }

  #push(): void {
    this.#pushTimer = undefined;
    if (!this.#streams.size) return;
    const patch = this.#diff.next(this.#snapshot());
    if (patch) this.#write(`event: patch\ndata: ${JSON.stringify(patch)}\n\n`);
  }

  #write(text: string): void {
    this.#lastWrite = Date.now();
    const bytes = this.#enc.encode(text);
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

  /**
   * `GET /api/events`: a stream that starts with the whole snapshot (`fleet` event) and then
   * carries `patch` events, while `authorized`.
   */
  open(authorized: () => boolean): Response {
    const streams = this.#streams;
    const snap = this.#snapshot();
    // Every stream gets the same patches, so the open ones get what changed up to this
    // snapshot first: from here on they and the new one agree.
    if (streams.size) {
      const patch = this.#diff.next(snap);
      if (patch) this.#write(`event: patch\ndata: ${JSON.stringify(patch)}\n\n`);
    } else this.#diff.reset(snap);
    const first = `retry: 1000\nevent: fleet\ndata: ${JSON.stringify(snap)}\n\n`;
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
