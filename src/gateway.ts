import type { AdapterModule } from "./adapter.ts";
import { Buffer, type BufferStats, WearMeter, type WearStats } from "./buffer/mod.ts";
import type { GatewayConfig } from "./config/gateway.ts";
import { Forwarder, type ForwarderStats } from "./forwarder.ts";
import { type AlarmSummary, Edge, type EdgeStatus, NO_ALARMS } from "./edge/mod.ts";
import type { Logger, RootLogger } from "./log.ts";
import { type LastValue, Pipeline, type PipelineStats } from "./pipeline.ts";
import { type AdapterStatus, AdapterSupervisor } from "./supervisor.ts";
import { type DevicePresence, Presence } from "./presence.ts";
import { createUplink } from "./uplink/mod.ts";
import { within } from "./common/timing.ts";
import { diskCheck } from "./gateway_health.ts";
import type {
  InboundMessage,
  StatusMessage,
  Uplink,
  UplinkState,
  UplinkSubscription,
} from "./uplink/mod.ts";
import { TEST_BEHAVIOUR } from "./version.ts";
import { redactValue, rememberSecretsIn } from "./redact.ts";

interface GatewaySubscription {
  filters: readonly string[];
  handler: (msg: InboundMessage) => void;
  /** On the current uplink, when it has a broker. */
  current?: UplinkSubscription;
  closed: boolean;
}

/** Options of {@linkcode Gateway.start}. */
export interface GatewayOptions {
  config: GatewayConfig;
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
  log: RootLogger;
  version: string;
  /**
   * More sections of /status from parts of the process outside the gateway, wired by the
   * composition root (`commands`, and `update` from the self-updater, which outlives the gateway
   * across a trial).
   */
  statusSections?: () => Record<string, unknown>;
  /** More fields of the retained status message (the host checklist's summary). */
  announce?: () => Record<string, unknown>;
  /** How long after start an unconnected uplink still counts as healthy. */
  uplinkGraceMs?: number;
  /** Readings pending, uplink connected and no acknowledgement this long: unhealthy. */
  forwarderStuckMs?: number;
}

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

/**
 * Adapters whose devices each wait for their own answer (HTTP 200), so their readings may wait for
 * `buffer.commitWindow` when they trickle in. Pollers (modbus, ble, simulated, exec) have their
 * schedule wait on the commit, and a local MQTT broker caps the messages in flight to the gateway:
 * both commit after `commitInterval`.
 */
const COALESCING = new Set(["http"]);

/**
 * One running gateway: buffer, pipeline, adapters, forwarder and uplink, wired together.
 * `stop()` shuts down in the order that loses nothing: adapters first, then a final flush.
 */
export class Gateway {
  readonly #log: Logger;
  readonly #root: RootLogger;
  readonly #version: string;
  readonly #statusSections: (() => Record<string, unknown>) | undefined;
  readonly #announce: (() => Record<string, unknown>) | undefined;
  // deno-lint-ignore no-explicit-any
  readonly #registry: Record<string, AdapterModule<any>>;
  readonly #startedAt = Date.now();
  readonly #graceMs: number;
  readonly #stuckMs: number | undefined;
  #config: GatewayConfig;
  #buffer!: Buffer;
  #wear!: WearMeter;
  #pipeline!: Pipeline;
  #supervisors: AdapterSupervisor[] = [];
  #presence = new Map<string, Presence>();
  #uplink: Uplink | undefined;
  #forwarder: Forwarder | undefined;
  #edge: Edge | undefined;
  #statusSoon: ReturnType<typeof setTimeout> | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #statusTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  readonly #subscriptions = new Set<GatewaySubscription>();

  private constructor(opts: GatewayOptions) {
    this.#config = opts.config;
    this.#root = opts.log;
    this.#log = opts.log.child("gateway");
    this.#version = opts.version;
    this.#statusSections = opts.statusSections;
    this.#announce = opts.announce;
    this.#registry = opts.adapters;
    this.#graceMs = opts.uplinkGraceMs ?? 60_000;
    rememberSecretsIn(opts.config);
    this.#stuckMs = opts.forwarderStuckMs;
  }

  /** Opens the buffer, starts the uplink, forwarder and adapters. */
  static start(opts: GatewayOptions): Gateway {
    const gw = new Gateway(opts);
    gw.#open();
    return gw;
  }

  #open(): void {
    const c = this.#config;
    this.#log.info("starting", { gateway: c.gateway.id, version: this.#version, pid: Deno.pid });
    this.#buffer = Buffer.open(c.buffer, { log: this.#root.child("buffer") });
    // After the open: its one-off writes (reserve file) are not the rate of wear.
    this.#wear = new WearMeter({ enduranceBytes: c.buffer.storageEndurance });
    this.#pipeline = new Pipeline({ buffer: this.#buffer, log: this.#root.child("pipeline") });
    this.#startUplink();
    this.#startEdge();
    this.#startAdapters();
    this.#timers.push(setInterval(() => this.#prune(), 60_000));
  }

  #startUplink(): void {
    const c = this.#config;
    if (!c.uplink) {
      this.#log.warn("no uplink configured: readings are buffered only");
      return;
    }
    const uplink = createUplink(c.uplink, {
      gatewayId: c.gateway.id,
      epoch: this.#buffer.epoch,
      version: this.#version,
      log: this.#root.child(`uplink.${c.uplink.type}`),
    });
    this.#uplink = uplink;
    for (const sub of this.#subscriptions) {
      sub.current = uplink.subscribe?.(sub.filters, sub.handler);
    }
    this.#forwarder = new Forwarder({
      buffer: this.#buffer,
      uplink,
      log: this.#root.child("forwarder"),
      stuckAfterMs: this.#stuckMs,
      backfill: c.uplink.type === "mqtt" ? c.uplink.backfill : undefined,
    });
    uplink.onStateChange((up) => {
      if (up) this.#publishStatus();
    });
    const interval = c.uplink.type === "mqtt" ? c.uplink.statusInterval : 30_000;
    this.#statusTimer = setInterval(() => this.#publishStatus(), interval);
    this.#forwarder.start();
    uplink.start();
  }

  /** `final` is the offline status reason when the gateway stops, false for a reload. */
  async #stopUplink(final: string | false): Promise<void> {
    clearInterval(this.#statusTimer);
    this.#forwarder?.stop();
    const uplink = this.#uplink;
    this.#uplink = undefined;
    this.#forwarder = undefined;
    for (const sub of this.#subscriptions) {
      sub.current?.close();
      sub.current = undefined;
    }
    if (uplink) {
      await uplink.close(
        this.#statusMessage("offline", typeof final === "string" ? final : "reconfiguring"),
      );
    }
  }

  /** Filters, rules and aggregation; after the uplink, whose reconnects the alarm lane follows. */
  #startEdge(): void {
    const c = this.#config;
    if (!c.filters.length && !c.aggregate.length && !c.rules.length) {
      this.#pipeline.setStages([]);
      return;
    }
    this.#edge = Edge.start({
      config: c,
      bufferPath: c.buffer.path,
      emit: (source, readings) => this.#pipeline.emit(source, readings),
      write: (adapter, request) => {
        const sup = this.#supervisors.find((s) => s.status().name === adapter);
        if (!sup) return Promise.reject(new Error(`adapter "${adapter}" is not running`));
        return sup.write(request);
      },
      uplink: this.#uplink,
      log: this.#root.child("edge"),
      onAlarmChange: () => this.#publishStatusSoon(),
    });
    this.#pipeline.setStages(this.#edge.stages);
  }

  async #stopEdge(): Promise<void> {
    const edge = this.#edge;
    this.#edge = undefined;
    this.#pipeline.setStages([]);
    await edge?.stop();
  }

  #startAdapters(): void {
    const before = this.#presence;
    this.#presence = new Map();
    for (const entry of this.#config.adapters) {
      if (!entry.enabled) {
        this.#log.info("adapter disabled in config", { adapter: entry.name });
        continue;
      }
      const module = this.#registry[entry.type];
      const presence = new Presence({
        offlineAfterMs: entry.offlineAfter,
        pollIntervalMs: module.pollInterval?.(entry.config),
      }).carry(before.get(entry.name));
      this.#presence.set(entry.name, presence);
      const sup = new AdapterSupervisor({
        name: entry.name,
        module,
        config: entry.config,
        emit: async (readings) => {
          const res = await this.#pipeline.emit(entry.name, readings, {
            coalesce: COALESCING.has(entry.type),
          });
          if (res.accepted) presence.arrived(readings);
          return res;
        },
        log: this.#root.child(entry.name),
      });
      this.#supervisors.push(sup);
      sup.start();
    }
  }

  async #stopAdapters(): Promise<void> {
    const sups = this.#supervisors;
    this.#supervisors = [];
    await Promise.all(sups.map((s) => s.stop()));
  }

  #prune(): void {
    try {
      const n = this.#buffer.prune();
      if (n) this.#log.info("retention: deleted forwarded readings past the window", { rows: n });
    } catch (e) {
      this.#log.error("retention pruning failed", { error: (e as Error).message });
    }
  }

  #statusMessage(state: "online" | "offline", reason?: string): StatusMessage {
    const b = this.#buffer.stats();
    return {
      gatewayId: this.#config.gateway.id,
      state,
      version: this.#version,
      ts: Date.now(),
      backlog: b.pending,
      oldestPendingAgeMs: b.oldestPendingTs === null ? null : Date.now() - b.oldestPendingTs,
      lastForwardedAt: this.#forwarder?.stats().lastForwardedAt ?? null,
      startedAt: this.#startedAt,
      droppedUnforwarded: b.droppedUnforwarded,
      ...this.#statusIdentity(),
      ...this.#announce?.(),
      alarms: this.#edge?.alarmSummary() ?? NO_ALARMS,
      ...(reason ? { reason } : {}),
    };
  }

  /** Site, page address and health in one word each, for the fleet console. */
  #statusIdentity(): Record<string, unknown> {
    const c = this.#config;
    const h = this.#health();
    return {
      ...(c.gateway.site ? { site: c.gateway.site } : {}),
      ...(c.http.pageUrl ? { pageUrl: c.http.pageUrl } : {}),
      health: {
        ok: h.ok,
        failing: Object.entries(h.checks).filter(([, v]) => !v.ok).map(([k]) => k),
      },
    };
  }

  #publishStatus(): void {
    const u = this.#uplink;
    if (!u?.connected || !u.publishStatus) return;
    u.publishStatus(this.#statusMessage("online")).catch((e) =>
      this.#log.debug("status publish failed", { error: (e as Error).message })
    );
  }

  /** Publishes the status shortly after alarms change (one message for a burst of changes). */
  #publishStatusSoon(): void {
    if (this.#statusSoon !== undefined) return;
    this.#statusSoon = setTimeout(() => {
      this.#statusSoon = undefined;
      if (!this.#stopping) this.#publishStatus();
    }, 250);
  }

  /** The running edge logic (alarms to acknowledge or clear), if any is configured. */
  get edge(): Edge | undefined {
    return this.#edge;
  }

  /** The buffer (for export and queries within the process). */
  get buffer(): Buffer {
    return this.#buffer;
  }

  /** The uplink, when one is configured. */
  get uplink(): Uplink | undefined {
    return this.#uplink;
  }

  /** The forwarder, when an uplink is configured. */
  get forwarder(): Forwarder | undefined {
    return this.#forwarder;
  }

  /**
   * Subscribes to MQTT topic filters on the uplink's connection (QoS 1): renewed on every
   * reconnect and carried over to the new uplink of a config reload. Inactive while the uplink
   * has no broker (HTTPS, none).
   */
  subscribe(
    filters: readonly string[],
    handler: (msg: InboundMessage) => void,
  ): UplinkSubscription {
    const sub: GatewaySubscription = { filters: [...filters], handler, closed: false };
    this.#subscriptions.add(sub);
    sub.current = this.#uplink?.subscribe?.(sub.filters, handler);
    return {
      get active() {
        return !sub.closed && (sub.current?.active ?? false);
      },
      close: () => {
        sub.closed = true;
        this.#subscriptions.delete(sub);
        sub.current?.close();
        sub.current = undefined;
      },
    };
  }

  /** The pipeline adapters emit into. */
  get pipeline(): Pipeline {
    return this.#pipeline;
  }

  /**
   * Health as /healthz reports it: buffer commits succeed, disk above its floor, adapters
   * running, uplink connected (after a grace), forwarder making progress. Redacted: it is served
   * without a token.
   */
  health(): Health {
    return redactValue(this.#health());
  }

  #health(): Health {
    const checks: Health["checks"] = {};
    const b = this.#buffer.stats();
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
    checks.disk = diskCheck(b, this.#config.buffer.minFreeDisk);
    const sups = this.#supervisors.map((s) => s.status());
    const failing = sups.filter((s) => s.state !== "running");
    checks.adapters = {
      ok: failing.length === 0 || failing.length < sups.length,
      detail: failing.length
        ? `not running: ${failing.map((s) => `${s.name} (${s.lastError ?? s.state})`).join(", ")}`
        : `${sups.length} running`,
    };
    if (this.#uplink) {
      const u = this.#uplink.state();
      const inGrace = Date.now() - this.#startedAt < this.#graceMs;
      checks.uplink = {
        ok: u.connected || inGrace,
        detail: u.connected
          ? `connected to ${u.target}`
          : `disconnected from ${u.target}${u.lastError ? `: ${u.lastError}` : ""}${
            inGrace ? " (start-up grace)" : ""
          }`,
      };
    }
    const stuck = this.#forwarder?.stuck();
    if (this.#forwarder) {
      checks.forwarder = stuck === undefined
        ? { ok: true, detail: `${b.pending} pending` }
        : { ok: false, detail: `stuck: ${stuck}` };
    }
    if (TEST_BEHAVIOUR === "unhealthy") {
      checks.test = { ok: false, detail: "TEST-ONLY build: never healthy (--behaviour unhealthy)" };
    }
    return { ok: Object.values(checks).every((c) => c.ok), checks };
  }

  /**
   * Everything /status shows, redacted at the source (secret-named keys, URL credentials, known
   * secrets), so /status, /metrics, the page and the `status` command carry no secret. The
   * devices' last values (readings) and the gateway id (an address, never masked by a password
   * that happens to contain it) are passed as they are.
   */
  status(): GatewayStatus {
    return redactValue(this.#status(), { skip: ["devices", "gatewayId"] });
  }

  #status(): GatewayStatus {
    const b = this.#buffer.stats();
    const p = this.#pipeline.stats();
    const u = this.#uplink?.state();
    const f = this.#forwarder?.stats() ?? null;
    return {
      gatewayId: this.#config.gateway.id,
      site: this.#config.gateway.site,
      version: this.#version,
      pid: Deno.pid,
      startedAt: this.#startedAt,
      uptimeMs: Date.now() - this.#startedAt,
      health: this.#health(),
      adapters: this.#supervisors.map((s) => {
        const a = s.status();
        return { ...a, devices: this.#presence.get(a.name)?.judge(a.devices) ?? {} };
      }),
      buffer: {
        ...b,
        oldestPendingAgeMs: b.oldestPendingTs === null ? null : Date.now() - b.oldestPendingTs,
      },
      storage: this.#wear.stats(),
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
      devices: this.#pipeline.lastValues(),
      edge: this.#edge?.status() ?? null,
      alarms: this.#edge?.alarmSummary() ?? NO_ALARMS,
      ...this.#statusSections?.(),
    };
  }

  /**
   * Applies a new, already validated config: adapters and uplink restart with it, the buffer
   * stays open (its caps change; its path only after a restart) and keeps every reading.
   */
  async reload(config: GatewayConfig): Promise<void> {
    this.#log.info("reloading config");
    await this.#stopAdapters();
    await this.#stopEdge();
    await this.#stopUplink(false);
    this.#buffer.flush();
    rememberSecretsIn(config);
    this.#config = config;
    this.#buffer.reconfigure(config.buffer);
    this.#wear.setEndurance(config.buffer.storageEndurance);
    this.#startUplink();
    this.#startEdge();
    this.#startAdapters();
    this.#log.info("config reloaded", { adapters: config.adapters.length });
  }

  /**
   * Stops in order: adapters, final buffer commit, a short wait for in-flight messages, offline
   * status (with `reason`, default "stopped"), uplink, buffer file.
   */
  async stop(opts: { reason?: string } = {}): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#log.info("stopping");
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#statusSoon);
    await this.#stopAdapters();
    await this.#stopEdge();
    this.#buffer.flush();
    const f = this.#forwarder;
    if (f && this.#uplink?.connected) {
      await within(f.idle(), 3000);
    }
    await this.#stopUplink(opts.reason ?? "stopped");
    this.#buffer.close();
    this.#log.info("stopped");
  }
}
