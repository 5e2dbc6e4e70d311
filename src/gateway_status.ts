/**
 * What a running gateway reports about itself: the health checks behind /healthz, everything
 * /status shows, and the retained status message, each read from the gateway's parts.
 */
import type { Buffer, BufferStats, WearMeter, WearStats } from "./buffer/mod.ts";
import type { GatewayConfig } from "./config/gateway.ts";
import type { Forwarder, ForwarderStats } from "./forwarder.ts";
import { type AlarmSummary, type Edge, type EdgeStatus, NO_ALARMS } from "./edge/mod.ts";
import type { LastValue, Pipeline, PipelineStats } from "./pipeline.ts";
import type { AdapterStatus, AdapterSupervisor } from "./supervisor.ts";
import type { DevicePresence, Presence } from "./presence.ts";
import {
  fitStatus,
  STATUS_SCHEMA,
  statusBudget,
  type StatusMessage,
  type Uplink,
  type UplinkState,
} from "./uplink/mod.ts";
import { diskCheck } from "./gateway_health.ts";
import { TEST_BEHAVIOUR } from "./version.ts";

/** Result of the health checks behind /healthz. */
export interface Health {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

/** Everything /status shows. */
export interface GatewayStatus {
  gatewayId: string;
  site?: string;
  version: string;
  pid: number;
  startedAt: number;
  uptimeMs: number;
  health: Health;
  /** Each adapter, its devices' presence derived from their readings (`src/presence.ts`). */
  adapters: (AdapterStatus & { devices: Record<string, DevicePresence> })[];
  buffer: BufferStats & { oldestPendingAgeMs: number | null };
  /** Storage written by this process and the projected life of the card (`buffer.storageEndurance`). */
  storage: WearStats;
  uplink: (UplinkState & { forSeconds: number }) | null;
  forwarder: ForwarderStats | null;
  pipeline: PipelineStats;
  drops: {
    invalid: number;
    /** Readings of new series refused at `buffer.maxSeries`. */
    seriesLimit: number;
    droppedUnforwarded: number;
    rejectedFull: number;
    /** Readings refused while the disk was full (senders told to resend). */
    diskFull: number;
    /** Readings refused because a commit failed otherwise (senders told to resend). */
    writeFailed: number;
    setAside: number;
  };
  devices: Record<string, Record<string, LastValue>>;
  /** Filters, aggregation and alarms. */
  edge: EdgeStatus | null;
  /** Alarm counts and the newest active alarms (as on the status topic). */
  alarms: AlarmSummary;
  /** Self-update state, when the updater runs in this process. */
  update?: unknown;
  /** The host checklist's last report (`outpost doctor`), when the composition root runs it. */
  doctor?: unknown;
  /** Field devices' firmware and model updates (`devices:`), when configured. */
  deviceUpdates?: unknown;
}

/** The parts of a running gateway its health and status are read from, as they are now. */
export interface StatusParts {
  config: GatewayConfig;
  version: string;
  startedAt: number;
  /** How long after start an unconnected uplink still counts as healthy. */
  graceMs: number;
  buffer: Buffer;
  wear: WearMeter;
  pipeline: Pipeline;
  supervisors: readonly AdapterSupervisor[];
  presence: ReadonlyMap<string, Presence>;
  uplink: Uplink | undefined;
  forwarder: Forwarder | undefined;
  edge: Edge | undefined;
  statusSections: (() => Record<string, unknown>) | undefined;
  announce: (() => Record<string, unknown>) | undefined;
}

/**
 * The health checks behind /healthz, before redaction: buffer commits succeed, disk above its
 * floor, adapters running, uplink connected (after a grace), forwarder making progress.
 */
export function gatewayHealth(g: StatusParts): Health {
  const checks: Health["checks"] = {};
  const b = g.buffer.stats();
  const failed = b.lastCommitError;
  // A full disk is the disk check's to report; this one is for every other write failure.
  checks.buffer = failed && !b.diskFull
    ? {
      ok: false,
      detail: `commits fail (${b.commitFailures} this run), last at ${
        new Date(failed.at).toISOString()
      }: ${failed.error}`,
    }
    : { ok: true, detail: `${b.pending} pending of ${b.rows} stored` };
  checks.disk = diskCheck(b, g.config.buffer.minFreeDisk);
  const sups = g.supervisors.map((s) => s.status());
  const failing = sups.filter((s) => s.state !== "running");
  checks.adapters = {
    ok: failing.length === 0 || failing.length < sups.length,
    detail: failing.length
      ? `not running: ${failing.map((s) => `${s.name} (${s.lastError ?? s.state})`).join(", ")}`
      : `${sups.length} running`,
  };
  if (g.uplink) {
    const u = g.uplink.state();
    const inGrace = Date.now() - g.startedAt < g.graceMs;
    checks.uplink = {
      ok: u.connected || inGrace,
      detail: u.connected
        ? `connected to ${u.target}`
        : `disconnected from ${u.target}${u.lastError ? `: ${u.lastError}` : ""}${
          inGrace ? " (start-up grace)" : ""
        }`,
    };
  }
  const stuck = g.forwarder?.stuck();
  if (g.forwarder) {
    checks.forwarder = stuck === undefined
      ? { ok: true, detail: `${b.pending} pending` }
      : { ok: false, detail: `stuck: ${stuck}` };
  }
  if (TEST_BEHAVIOUR === "unhealthy") {
    checks.test = { ok: false, detail: "TEST-ONLY build: never healthy (--behaviour unhealthy)" };
  }
  return { ok: Object.values(checks).every((c) => c.ok), checks };
}

/** Everything /status shows, before redaction. */
export function gatewayStatus(g: StatusParts): GatewayStatus {
  const b = g.buffer.stats();
  const p = g.pipeline.stats();
  const u = g.uplink?.state();
  const f = g.forwarder?.stats() ?? null;
  return {
    gatewayId: g.config.gateway.id,
    site: g.config.gateway.site,
    version: g.version,
    pid: Deno.pid,
    startedAt: g.startedAt,
    uptimeMs: Date.now() - g.startedAt,
    health: gatewayHealth(g),
    adapters: g.supervisors.map((s) => {
      const a = s.status();
      return { ...a, devices: g.presence.get(a.name)?.judge(a.devices) ?? {} };
    }),
    buffer: {
      ...b,
      oldestPendingAgeMs: b.oldestPendingTs === null ? null : Date.now() - b.oldestPendingTs,
    },
    storage: g.wear.stats(),
    uplink: u ? { ...u, forSeconds: Math.round((Date.now() - u.since) / 1000) } : null,
    forwarder: f,
    pipeline: p,
    drops: {
      invalid: Object.values(p.invalid).reduce((a, n) => a + n, 0),
      seriesLimit: p.seriesLimit,
      droppedUnforwarded: b.droppedUnforwarded,
      rejectedFull: b.rejectedFull,
      diskFull: p.diskFull,
      writeFailed: p.writeFailed,
      setAside: f?.setAside ?? 0,
    },
    devices: g.pipeline.lastValues(),
    edge: g.edge?.status() ?? null,
    alarms: g.edge?.alarmSummary() ?? NO_ALARMS,
    ...g.statusSections?.(),
  };
}

/**
 * The retained status message (online, or offline with its reason) the fleet console reads,
 * within its size budget (`src/uplink/status_budget.ts`; the uplink's `maxMessageBytes` if lower).
 */
export function statusMessage(
  g: StatusParts,
  state: "online" | "offline",
  reason?: string,
): StatusMessage {
  const b = g.buffer.stats();
  const u = g.config.uplink;
  return fitStatus({
    schema: STATUS_SCHEMA,
    gatewayId: g.config.gateway.id,
    state,
    version: g.version,
    ts: Date.now(),
    backlog: b.pending,
    oldestPendingAgeMs: b.oldestPendingTs === null ? null : Date.now() - b.oldestPendingTs,
    lastForwardedAt: g.forwarder?.stats().lastForwardedAt ?? null,
    startedAt: g.startedAt,
    droppedUnforwarded: b.droppedUnforwarded,
    ...statusIdentity(g),
    ...g.announce?.(),
    alarms: g.edge?.alarmSummary() ?? NO_ALARMS,
    ...(reason ? { reason } : {}),
  }, statusBudget(u?.type === "mqtt" ? u.maxMessageBytes : undefined));
}

/** Site, page address and health in one word each, for the fleet console. */
function statusIdentity(g: StatusParts): Record<string, unknown> {
  const c = g.config;
  const h = gatewayHealth(g);
  return {
    ...(c.gateway.site ? { site: c.gateway.site } : {}),
    ...(c.http.pageUrl ? { pageUrl: c.http.pageUrl } : {}),
    health: {
      ok: h.ok,
      failing: Object.entries(h.checks).filter(([, v]) => !v.ok).map(([k]) => k),
    },
  };
}
