import { cpuUsage } from "node:process";
import type { AlarmMetrics } from "../edge/mod.ts";
import type { GatewayStatus } from "../gateway.ts";
import { edgeFamilies } from "./metrics_edge.ts";

/** The content type of the Prometheus text exposition format this module writes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Figures about the process itself, gathered by {@linkcode processStats}. */
export interface ProcessStats {
  /** Resident set size, bytes. */
  residentBytes: number;
  /** User plus system CPU time, seconds. */
  cpuSeconds: number;
  /** When the process started, seconds since the epoch. */
  startTimeSeconds: number;
}

/** What {@linkcode renderMetrics} needs besides the gateway status. */
export interface MetricsExtra {
  process: ProcessStats;
  /** Counters of the local HTTP server. */
  http?: { unauthorized: number };
  /** Alarm figures of the running edge logic, when rules are configured. */
  alarms?: AlarmMetrics;
  /** Clock for ages, ms since the epoch; defaults to `Date.now()`. */
  now?: number;
}

/** States of the self-update subsystem as `outpost_update_state` names them. */
export const UPDATE_STATES = ["disabled", "idle", "staged", "trial"] as const;

/** The part of `/status` → `update` that metrics and the page read. */
interface UpdateView {
  phase?: string;
  staged?: unknown;
  committed?: { slot?: string; version?: string };
  lastCheck?: { at?: number; result?: string };
  lastRollback?: { at?: number };
  metadataExpires?: number;
}

/** The update state of a status document: disabled (no `update:`), idle, staged or trial. */
export function updateState(status: GatewayStatus): (typeof UPDATE_STATES)[number] {
  const u = status.update as UpdateView | undefined;
  if (!u) return "disabled";
  if (u.phase === "trial") return "trial";
  if (u.staged) return "staged";
  return "idle";
}

/** Reads the process's memory, CPU time and start time. */
export function processStats(): ProcessStats {
  const cpu = cpuUsage();
  return {
    residentBytes: Deno.memoryUsage().rss,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    startTimeSeconds: performance.timeOrigin / 1000,
  };
}

type Labels = Record<string, string>;
type Sample = [labels: Labels, value: number];

/** Escapes a label value: backslash, double quote and line feed, as the text format requires. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Collects metric families in order and writes them out as one document. */
class Exposition {
  #out: string[] = [];

  family(
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: Sample[] | number,
  ): void {
    const list = typeof samples === "number" ? [[{}, samples] as Sample] : samples;
    // A family without samples says nothing; leave it out rather than print bare metadata.
    if (list.length === 0) return;
    this.#out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of list) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
      this.#out.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}`);
    }
  }

  toString(): string {
    return this.#out.join("\n") + "\n";
  }
}

/** Refusal reasons of remote commands always present in `outpost_commands_refused_total`. */
const REFUSAL_REASONS = [
  "unsigned",
  "unknown-key",
  "expired",
  "replayed",
  "bad-signature",
  "forbidden",
];

const INVALID_REASONS = ["device", "metric", "value", "unit", "timestamp"] as const;

/**
 * Renders a gateway status as Prometheus text (exposition format 0.0.4): HELP and TYPE for every
 * family, base units (seconds, bytes), `_total` counters, escaped label values. Pure: the same
 * input gives the same text.
 *
 * @example
 * ```ts
 * const body = renderMetrics(gateway.status(), { process: processStats() });
 * new Response(body, { headers: { "content-type": METRICS_CONTENT_TYPE } });
 * ```
 */
export function renderMetrics(status: GatewayStatus, extra: MetricsExtra): string {
  const now = extra.now ?? Date.now();
  const e = new Exposition();
  const p = status.pipeline;
  const b = status.buffer;
  const f = status.forwarder;
  const u = status.uplink;

  e.family(
    "outpost_build_info",
    "gauge",
    "Always 1; labels name the running build, the gateway id and its site.",
    [[{ version: status.version, gateway: status.gatewayId, site: status.site ?? "" }, 1]],
  );
  e.family(
    "outpost_gateway_start_time_seconds",
    "gauge",
    "When the running gateway (re)started, seconds since the epoch; counters restart from 0 " +
      "with it (a remote restart or config change starts a new gateway in the same process).",
    status.startedAt / 1000,
  );
  e.family(
    "outpost_up",
    "gauge",
    "1 when every health check of /healthz passes, else 0.",
    status.health.ok ? 1 : 0,
  );
  e.family(
    "outpost_health_check_ok",
    "gauge",
    "Result of each /healthz check (1 ok, 0 failing).",
    Object.entries(status.health.checks).map(([check, c]) => [{ check }, c.ok ? 1 : 0]),
  );

  e.family(
    "outpost_readings_received_total",
    "counter",
    "Readings handed to the pipeline by adapters, valid or not.",
    p.received,
  );
  e.family(
    "outpost_readings_accepted_total",
    "counter",
    "Readings committed to the buffer.",
    p.accepted,
  );
  e.family(
    "outpost_readings_dropped_total",
    "counter",
    "Readings the gateway lost for good, by reason: failed validation (invalid_*), deleted " +
      "unforwarded at a buffer cap (buffer_full_dropped), refused by a full buffer in reject-new " +
      "mode (buffer_full_rejected), of new series beyond buffer.maxSeries (series_limit).",
    [
      ...INVALID_REASONS.map((r): Sample => [{ reason: `invalid_${r}` }, p.invalid[r] ?? 0]),
      [{ reason: "series_limit" }, p.seriesLimit],
      [{ reason: "buffer_full_dropped" }, status.drops.droppedUnforwarded],
      [{ reason: "buffer_full_rejected" }, status.drops.rejectedFull],
    ],
  );
  e.family(
    "outpost_readings_refused_total",
    "counter",
    "Readings refused for now and left with the device to send again (HTTP 503, no PUBACK), by " +
      "reason: the disk was full (disk_full) or a commit failed (write_failed). One reading " +
      "refused twice counts twice.",
    [
      [{ reason: "disk_full" }, status.drops.diskFull ?? 0],
      [{ reason: "write_failed" }, status.drops.writeFailed ?? 0],
    ],
  );
  e.family(
    "outpost_readings_set_aside_total",
    "counter",
    "Readings kept in the buffer but not forwarded because the receiver refused them for good " +
      "(HTTPS 4xx).",
    status.drops.setAside,
  );
  e.family(
    "outpost_adapter_readings_received_total",
    "counter",
    "Readings handed to the pipeline, by adapter instance.",
    Object.entries(p.bySource).map(([adapter, s]) => [{ adapter }, s.received]),
  );
  e.family(
    "outpost_adapter_readings_accepted_total",
    "counter",
    "Readings committed to the buffer, by adapter instance.",
    Object.entries(p.bySource).map(([adapter, s]) => [{ adapter }, s.accepted]),
  );

  if (f) {
    e.family(
      "outpost_readings_forwarded_total",
      "counter",
      "Readings confirmed by the uplink (MQTT PUBACK or HTTP 2xx).",
      f.forwardedReadings,
    );
    e.family(
      "outpost_uplink_messages_total",
      "counter",
      "Uplink messages confirmed by the far end.",
      f.forwardedMessages,
    );
    e.family(
      "outpost_uplink_bytes_total",
      "counter",
      "Payload bytes of confirmed uplink messages.",
      f.forwardedBytes,
    );
    e.family(
      "outpost_uplink_retries_total",
      "counter",
      "Uplink messages sent again after a failure.",
      f.retries,
    );
    e.family(
      "outpost_uplink_last_forward_timestamp_seconds",
      "gauge",
      "When the uplink last confirmed a message, seconds since the epoch (0: never).",
      f.lastForwardedAt === null ? 0 : f.lastForwardedAt / 1000,
    );
  }
  if (u) {
    e.family(
      "outpost_uplink_info",
      "gauge",
      "Always 1; labels name the uplink type and target.",
      [[{ type: u.type, target: u.target }, 1]],
    );
    e.family(
      "outpost_uplink_connected",
      "gauge",
      "1 while the uplink is connected, else 0.",
      u.connected ? 1 : 0,
    );
    e.family(
      "outpost_uplink_state_change_timestamp_seconds",
      "gauge",
      "When the uplink last connected or disconnected, seconds since the epoch.",
      u.since / 1000,
    );
    e.family(
      "outpost_uplink_inflight_messages",
      "gauge",
      "Uplink messages sent and not yet confirmed.",
      u.inflight,
    );
    e.family(
      "outpost_uplink_failures_total",
      "counter",
      "Uplink sends that failed and will be retried.",
      u.failed,
    );
  }

  e.family(
    "outpost_buffer_pending_readings",
    "gauge",
    "Readings in the buffer not yet confirmed by the uplink.",
    b.pending,
  );
  e.family(
    "outpost_buffer_oldest_pending_age_seconds",
    "gauge",
    "Age of the oldest pending reading by its source timestamp (0 when nothing is pending).",
    b.oldestPendingTs === null ? 0 : Math.max(0, (now - b.oldestPendingTs) / 1000),
  );
  e.family("outpost_buffer_rows", "gauge", "Readings stored, forwarded or not.", b.rows);
  e.family("outpost_buffer_size_bytes", "gauge", "Bytes used by the buffer database.", b.bytes);
  e.family(
    "outpost_buffer_at_cap",
    "gauge",
    "1 for the buffer cap (rows, bytes or disk) currently binding.",
    (["rows", "bytes", "disk"] as const).map((cap) => [{ cap }, b.atCap === cap ? 1 : 0]),
  );
  e.family(
    "outpost_buffer_disk_full",
    "gauge",
    "1 while buffer commits fail for want of disk space (new readings are refused).",
    b.diskFull ? 1 : 0,
  );
  if (b.freeDisk !== null) {
    e.family(
      "outpost_buffer_disk_free_bytes",
      "gauge",
      "Free bytes on the buffer's filesystem.",
      b.freeDisk,
    );
  }
  const w = status.storage;
  if (w?.writtenBytes != null) {
    e.family(
      "outpost_storage_written_bytes_total",
      "counter",
      "Bytes the gateway process caused to be written to storage since it started (/proc/self/io write_bytes).",
      w.writtenBytes,
    );
  }
  if (w?.bytesPerDay != null) {
    e.family(
      "outpost_storage_written_bytes_per_day",
      "gauge",
      "Storage write rate of the gateway process over the last hour, as bytes per day.",
      w.bytesPerDay,
    );
  }
  if (w?.lifeYears != null) {
    e.family(
      "outpost_storage_life_years",
      "gauge",
      "Years until buffer.storageEndurance is written at the current rate (this process's writes only).",
      w.lifeYears,
    );
  }
  e.family(
    "outpost_buffer_commits_total",
    "counter",
    "Buffer transactions committed since start (each one WAL write).",
    b.commits,
  );
  e.family(
    "outpost_buffer_commit_failures_total",
    "counter",
    "Buffer transactions that failed (rolled back, nothing changed) since start.",
    b.commitFailures,
  );
  e.family(
    "outpost_buffer_evicted_forwarded_total",
    "counter",
    "Forwarded readings deleted early to make room (no data loss).",
    b.evictedForwarded,
  );
  e.family(
    "outpost_buffer_pruned_total",
    "counter",
    "Forwarded readings deleted at the end of the retention window.",
    b.pruned,
  );

  const adapterLabels = (a: { name: string; type: string }) => ({ adapter: a.name, type: a.type });
  e.family(
    "outpost_adapter_up",
    "gauge",
    "1 while the adapter instance is running, 0 while it is starting, backing off or stopped.",
    status.adapters.map((a) => [adapterLabels(a), a.state === "running" ? 1 : 0]),
  );
  e.family(
    "outpost_adapter_errors_total",
    "counter",
    "Adapter failures (each is followed by a restart after a backoff).",
    status.adapters.map((a) => [adapterLabels(a), a.errors]),
  );
  e.family(
    "outpost_adapter_restarts_total",
    "counter",
    "Adapter restarts after a failure.",
    status.adapters.map((a) => [adapterLabels(a), a.restarts]),
  );
  e.family(
    "outpost_adapter_events_total",
    "counter",
    "Adapter-specific counters (requests, exceptions, invalid_lines, ...), by event name.",
    status.adapters.flatMap((a) =>
      Object.entries(a.counters)
        // "readings" is outpost_adapter_readings_received_total already.
        .filter(([event]) => event !== "readings")
        .map(([event, n]): Sample => [{ ...adapterLabels(a), event }, n])
    ),
  );
  e.family(
    "outpost_device_up",
    "gauge",
    "1 while a device answers (online), 0 while offline or unavailable.",
    status.adapters.flatMap((a) =>
      Object.entries(a.devices).map((
        [device, d],
      ): Sample => [{ adapter: a.name, device }, d.state === "online" ? 1 : 0])
    ),
  );

  const state = updateState(status);
  e.family(
    "outpost_update_state",
    "gauge",
    "Self-update state: 1 for the current one of disabled, idle, staged (verified, waiting for " +
      "its trial) and trial (a new version on trial), 0 for the others.",
    UPDATE_STATES.map((s) => [{ state: s }, s === state ? 1 : 0]),
  );
  const upd = status.update as UpdateView | undefined;
  if (upd?.committed?.slot && upd.committed.version) {
    e.family(
      "outpost_update_committed_info",
      "gauge",
      "Always 1; labels name the committed A/B slot and its version.",
      [[{ slot: upd.committed.slot, version: upd.committed.version }, 1]],
    );
  }
  if (upd?.lastCheck?.at) {
    e.family(
      "outpost_update_last_check_timestamp_seconds",
      "gauge",
      "When the release channel was last checked, seconds since the epoch.",
      upd.lastCheck.at / 1000,
    );
    e.family(
      "outpost_update_last_check_refused",
      "gauge",
      "1 when the last check refused the release (bad signature, hash, size, older version...).",
      upd.lastCheck.result === "refused" ? 1 : 0,
    );
  }
  if (upd?.metadataExpires) {
    e.family(
      "outpost_update_metadata_expires_timestamp_seconds",
      "gauge",
      "When the newest verified release timestamp expires, seconds since the epoch; past it the " +
        "release metadata is stale (a frozen channel, or a timestamp not re-signed).",
      upd.metadataExpires / 1000,
    );
  }
  if (upd?.lastRollback?.at) {
    e.family(
      "outpost_update_last_rollback_timestamp_seconds",
      "gauge",
      "When a new version last failed its trial and was rolled back, seconds since the epoch.",
      upd.lastRollback.at / 1000,
    );
  }
  const cmds = (status as { commands?: { handled?: number; refusedBy?: Record<string, number> } })
    .commands;
  if (cmds?.refusedBy) {
    const refused = {
      ...Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])),
      ...cmds.refusedBy,
    };
    e.family(
      "outpost_commands_refused_total",
      "counter",
      "Remote commands refused before running, by reason (unsigned, unknown-key, expired, " +
        "replayed, bad-signature, forbidden, malformed, busy, ...).",
      Object.entries(refused).map(([reason, n]): Sample => [{ reason }, n]),
    );
    e.family(
      "outpost_commands_handled_total",
      "counter",
      "Remote commands run (whatever their outcome).",
      cmds.handled ?? 0,
    );
  }
  if (extra.http) {
    e.family(
      "outpost_http_unauthorized_requests_total",
      "counter",
      "Requests to the local HTTP server refused for a missing or wrong access token.",
      extra.http.unauthorized,
    );
  }

  for (const f of edgeFamilies(status, extra.alarms, now)) {
    e.family(f.name, f.type, f.help, f.samples);
  }

  e.family(
    "process_resident_memory_bytes",
    "gauge",
    "Resident memory size in bytes.",
    extra.process.residentBytes,
  );
  e.family(
    "process_cpu_seconds_total",
    "counter",
    "Total user and system CPU time spent in seconds.",
    extra.process.cpuSeconds,
  );
  e.family(
    "process_start_time_seconds",
    "gauge",
    "Start time of the process since unix epoch in seconds.",
    extra.process.startTimeSeconds,
  );
  return e.toString();
}
