import type { AdapterModule } from "./adapter.ts";
import { Buffer, WearMeter } from "./buffer/mod.ts";
import type { GatewayConfig } from "./config/gateway.ts";
import { Forwarder } from "./forwarder.ts";
import { Edge } from "./edge/mod.ts";
import type { Logger, RootLogger } from "./log.ts";
import { Pipeline } from "./pipeline.ts";
import { AdapterSupervisor } from "./supervisor.ts";
import { Presence } from "./presence.ts";
import { createUplink } from "./uplink/mod.ts";
import { within } from "./common/timing.ts";
import {
  gatewayHealth,
  type GatewayStatus,
  gatewayStatus,
  type Health,
  statusMessage,
  type StatusParts,
} from "./gateway_status.ts";
import type { InboundMessage, StatusMessage, Uplink, UplinkSubscription } from "./uplink/mod.ts";
import { redactValue, rememberSecretsIn } from "./redact.ts";

export type { GatewayStatus, Health } from "./gateway_status.ts";

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
    const announce = opts.announce;
    // A section of the retained status that throws costs that section, not the status (which
    // says the gateway is alive) and not the process (it is built in timers).
    this.#announce = announce && (() => {
      try {
        return announce();
      } catch (e) {
        this.#log.warn("a status section failed; the status goes out without it", {
          error: (e as Error).message,
        });
        return {};
      }
    });
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
        statusMessage(
          this.#parts(),
          "offline",
          typeof final === "string" ? final : "reconfiguring",
        ),
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

  /** What health, /status and the status message are read from, as it is now. */
  #parts(): StatusParts {
    return {
      config: this.#config,
      version: this.#version,
      startedAt: this.#startedAt,
      graceMs: this.#graceMs,
      buffer: this.#buffer,
      wear: this.#wear,
      pipeline: this.#pipeline,
      supervisors: this.#supervisors,
      presence: this.#presence,
      uplink: this.#uplink,
      forwarder: this.#forwarder,
      edge: this.#edge,
      statusSections: this.#statusSections,
      announce: this.#announce,
    };
  }

  #publishStatus(): void {
    const u = this.#uplink;
    if (!u?.connected || !u.publishStatus) return;
    let message: StatusMessage;
    try {
      message = statusMessage(this.#parts(), "online");
    } catch (e) {
      this.#log.warn("cannot build the status message; not published", {
        error: (e as Error).message,
      });
      return;
    }
    u.publishStatus(message).catch((e) =>
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
    return redactValue(gatewayHealth(this.#parts()));
  }

  /**
   * Everything /status shows, redacted at the source (secret-named keys, URL credentials, known
   * secrets), so /status, /metrics, the page and the `status` command carry no secret. The
   * devices' last values (readings) and the gateway id (an address, never masked by a password
   * that happens to contain it) are passed as they are.
   */
  status(): GatewayStatus {
    return redactValue(gatewayStatus(this.#parts()), { skip: ["devices", "gatewayId"] });
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
