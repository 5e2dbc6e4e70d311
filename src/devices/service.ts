/**
 * The device artifact service: reads the release channel's signed metadata with the
 * self-updater's checks, fetches the device artifacts the configured classes need within the
 * same limits, keeps the current and previous version of each on disk, offers them class by
 * class in batches, and tracks what every device reports. Its state survives restarts
 * (`<dataDir>/state.json`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { MqttConnection } from "../common/mqtt.ts";
import type { Logger } from "../log.ts";
import {
  type DeviceTarget,
  parseDeviceTargets,
  type UpdateConfig,
  Updater,
  UpdateRefused,
  writeFileAtomic,
} from "../update/mod.ts";
import type { DevicesConfig } from "./config.ts";
import { type DeviceRoutes, deviceRoutes, type ServedArtifact } from "./http.ts";
import { DeviceMqtt, type Offer, reportOf, runOfferHook } from "./notify.ts";
import {
  applyReport,
  type ClassArtifact,
  countStates,
  type DeviceReport,
  type DevicesState,
  plan,
  resume,
} from "./rollout.ts";

/** Options of {@linkcode DeviceService.start}. */
export interface DeviceServiceOptions {
  config: DevicesConfig;
  /** The release channel and its trust (the gateway's `update:`). */
  update: UpdateConfig;
  gatewayId: string;
  /** Where artifacts and state live. */
  dataDir: string;
  /** How devices reach the gateway's HTTP server, e.g. `http://192.168.10.1:8787`. */
  baseUrl: string;
  /** The local broker, when offers and reports go over MQTT. */
  broker?: MqttConnection;
  log: Logger;
  /** For tests: the clock. */
  now?: () => number;
}

/** A device artifact the gateway holds (or failed to get). */
export interface HeldArtifact {
  version: string;
  size: number;
  sha256: string;
  classes: string[];
  devices?: string[];
  /** The version before, kept on disk for devices that go back to it. */
  previous?: { version: string; size: number; sha256: string };
  /** Why the newest listed version is not held (it is then not offered). */
  refused?: { version: string; code: string; reason: string; at: number };
}

/** `/status` → `devices`. */
export interface DevicesStatus {
  lastCheck?: { at: number; result: "ok" | "refused"; code?: string; reason?: string };
  broker?: { connected: boolean };
  artifacts: Record<string, HeldArtifact>;
  rollouts: DevicesState["rollouts"];
  devices: DevicesState["devices"][string][];
  counts: ReturnType<typeof countStates>;
}

const sha = (t: string) => createHash("sha256").update(t).digest("hex");

/** The running device artifact service. */
export class DeviceService {
  readonly #o: DeviceServiceOptions;
  readonly #log: Logger;
  readonly #updater: Updater;
  readonly #now: () => number;
  readonly #state: DevicesState;
  readonly #held: Record<string, HeldArtifact>;
  readonly #tokens = new Map<string, string>();
  readonly #ac = new AbortController();
  #mqtt?: DeviceMqtt;
  #lastCheck?: DevicesStatus["lastCheck"];
  #checking?: Promise<void>;
  #saving = Promise.resolve();
  #saved = "";
  /** The routes the HTTP server mounts under `/devices/`. */
  readonly routes: DeviceRoutes;

  private constructor(
    o: DeviceServiceOptions,
    state: DevicesState,
    held: Record<string, HeldArtifact>,
  ) {
    this.#o = o;
    this.#log = o.log;
    this.#now = o.now ?? Date.now;
    this.#state = state;
    this.#held = held;
    this.#updater = new Updater({ config: o.update, gatewayId: o.gatewayId, log: o.log });
    for (const d of o.config.list) this.#tokens.set(sha(d.token), d.id);
    this.routes = deviceRoutes({
      deviceOf: (token) => this.#tokens.get(sha(token)),
      artifact: (id, name, version) => this.#artifactFor(id, name, version),
      serving: (id, name, version, from, bytes) => {
        const rec = this.#state.devices[id];
        if (rec.target?.name !== name || rec.target.version !== version) return;
        rec.servedBytes = (rec.servedBytes ?? 0) + bytes;
        // A device fetching in small ranges (partial_http_download) makes many requests.
        (from === 0 ? this.#log.info : this.#log.debug)("serving device artifact", {
          device: id,
          name,
          version,
          from,
          bytes,
        });
        if (rec.state !== "offered") return;
        rec.state = "downloading";
        this.#save();
      },
      report: (id, r) => this.#report(id, r),
      offer: (id) => {
        const o = this.#offerOf(id);
        if (!o) return undefined;
        const { device: _, ...body } = o;
        return body;
      },
      resume: (cls) => this.resume(cls),
      log: o.log,
    });
  }

  /** Loads the saved state, connects to the broker and starts checking the channel. */
  static async start(o: DeviceServiceOptions): Promise<DeviceService> {
    await Deno.mkdir(`${o.dataDir}/files`, { recursive: true, mode: 0o750 });
    const saved = await Deno.readTextFile(`${o.dataDir}/state.json`).then(
      (t) => JSON.parse(t) as DevicesState & { artifacts?: Record<string, HeldArtifact> },
      (e) => {
        if (!(e instanceof Deno.errors.NotFound)) {
          o.log.warn("device state unreadable; starting afresh", { error: (e as Error).message });
        }
        return undefined;
      },
    );
    const state: DevicesState = {
      devices: {},
      rollouts: saved?.rollouts ?? {},
      counter: saved?.counter,
    };
    for (const d of o.config.list) {
      const before = saved?.devices?.[d.id];
      state.devices[d.id] = before && before.class === d.class
        ? before
        : { id: d.id, class: d.class, state: "unknown" };
    }
    const svc = new DeviceService(o, state, saved?.artifacts ?? {});
    if (o.broker) {
      svc.#mqtt = new DeviceMqtt(o.broker, {
        prefix: o.config.mqtt!.topicPrefix,
        clientId: `outpost-devices-${o.gatewayId}`.slice(0, 64),
        log: o.log,
        onReport: (id, body) => {
          if (!(id in svc.#state.devices)) return;
          const r = reportOf(body);
          if (!r) {
            o.log.warn("device state message without a valid version; dropped", { device: id });
            return;
          }
          svc.#report(id, r);
        },
      });
    }
    svc.#loop();
    return svc;
  }

  #loop(): void {
    const signal = this.#ac.signal;
    const check = () => {
      if (signal.aborted) return;
      this.#checking = this.check().finally(() => {
        if (!signal.aborted) timer = setTimeout(check, this.#o.config.checkInterval);
      });
    };
    let timer = setTimeout(check, 200);
    // Report timeouts and a batch whose last device reported while no check ran.
    const tick = setInterval(() => void this.#plan(), 2000);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      clearInterval(tick);
    }, { once: true });
  }

  /** Reads the channel once: verifies the metadata, fetches what is new, plans offers. */
  async check(): Promise<void> {
    const at = this.#now();
    let listed: Record<string, DeviceTarget>;
    try {
      const m = await this.#updater.verifiedManifest({ signal: this.#ac.signal, remember: false });
      if (this.#state.counter !== undefined && m.signed.counter < this.#state.counter) {
        throw new UpdateRefused(
          "counter-replayed",
          `manifest counter ${m.signed.counter} is lower than the ${this.#state.counter} device artifacts were taken from`,
        );
      }
      listed = parseDeviceTargets(m.signed.devices);
      this.#state.counter = m.signed.counter;
    } catch (e) {
      if (this.#ac.signal.aborted) return;
      const code = e instanceof UpdateRefused ? e.code : "error";
      if (this.#lastCheck?.reason !== (e as Error).message) {
        this.#log.warn("device artifacts: release metadata refused", {
          code,
          error: (e as Error).message,
        });
      }
      this.#lastCheck = { at, result: "refused", code, reason: (e as Error).message };
      return;
    }
    const wanted = new Set(this.#o.config.list.map((d) => d.class));
    for (const [name, t] of Object.entries(listed)) {
      if (!t.classes.some((c) => wanted.has(c))) continue;
      await this.#fetch(name, t);
      if (this.#ac.signal.aborted) return;
    }
    this.#lastCheck = { at, result: "ok" };
    await this.#plan();
  }

  #file(name: string, version: string): string {
    return `${this.#o.dataDir}/files/${name}/${version}.bin`;
  }

  async #fetch(name: string, t: DeviceTarget): Promise<void> {
    const held = this.#held[name];
    if (held?.version === t.version && held.sha256 === t.sha256) {
      // Classes and device lists may change without a new file.
      held.classes = t.classes;
      held.devices = t.devices;
      return;
    }
    if (held?.refused?.version === t.version && this.#now() - held.refused.at < 60_000) return;
    const dir = `${this.#o.dataDir}/files/${name}`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o750 });
    const part = `${dir}/${t.version}.part`;
    const url = new URL(t.path, `${this.#o.update.channel.replace(/\/+$/, "")}/`).href;
    try {
      if (!url.startsWith(`${this.#o.update.channel.replace(/\/+$/, "")}/`)) {
        throw new UpdateRefused(
          "manifest-malformed",
          `device artifact path "${t.path}" leads outside the channel`,
        );
      }
      await this.#updater.fetchArtifact(
        { version: `${name} ${t.version}`, url, sha256: t.sha256, length: t.length },
        part,
        { signal: this.#ac.signal, maxBytes: this.#o.config.maxArtifactBytes },
      );
      await Deno.rename(part, this.#file(name, t.version));
    } catch (e) {
      if (this.#ac.signal.aborted) return;
      const code = e instanceof UpdateRefused ? e.code : "error";
      this.#log.warn("device artifact refused; not offered", {
        name,
        version: t.version,
        code,
        error: (e as Error).message,
      });
      this.#held[name] = {
        ...(held ?? { version: "", size: 0, sha256: "", classes: t.classes }),
        refused: { version: t.version, code, reason: (e as Error).message, at: this.#now() },
      };
      this.#save();
      return;
    }
    const previous = held?.version
      ? { version: held.version, size: held.size, sha256: held.sha256 }
      : undefined;
    this.#held[name] = {
      version: t.version,
      size: t.length,
      sha256: t.sha256,
      classes: t.classes,
      devices: t.devices,
      previous,
    };
    // Keep the new version and the one before it; older files go.
    for await (const e of Deno.readDir(dir)) {
      const v = e.name.replace(/\.(bin|part)$/, "");
      if (v !== t.version && v !== previous?.version) {
        await Deno.remove(`${dir}/${e.name}`).catch(() => {});
      }
    }
    this.#log.info("device artifact verified and held", {
      name,
      version: t.version,
      bytes: t.length,
      previous: previous?.version,
    });
    this.#save();
  }

  #artifactFor(id: string, name: string, version: string): ServedArtifact | undefined {
    const rec = this.#state.devices[id];
    const h = this.#held[name];
    if (!rec || !h || !h.classes.includes(rec.class)) return undefined;
    if (h.devices && !h.devices.includes(id)) return undefined;
    const v = h.version === version ? h : h.previous?.version === version ? h.previous : undefined;
    return v ? { path: this.#file(name, version), size: v.size, sha256: v.sha256 } : undefined;
  }

  /** The artifact each class rolls out: the held one listing the class (by name, first). */
  #classArtifacts(): Map<string, ClassArtifact & HeldArtifact> {
    const out = new Map<string, ClassArtifact & HeldArtifact>();
    for (const name of Object.keys(this.#held).sort()) {
      const h = this.#held[name];
      if (!h.version) continue;
      for (const c of h.classes) if (!out.has(c) || name === c) out.set(c, { name, ...h });
    }
    return out;
  }

  async #plan(): Promise<void> {
    const now = this.#now();
    const offers: Offer[] = [];
    const arts = this.#classArtifacts();
    const members = new Map<string, string[]>();
    for (const d of this.#o.config.list) {
      members.set(d.class, [...members.get(d.class) ?? [], d.id]);
    }
    for (const [cls, ids] of members) {
      const a = arts.get(cls);
      if (!a) continue;
      const settings = this.#o.config.classes[cls]?.rollout ??
        { batch: 0, failureThreshold: 1, reportTimeout: 3_600_000 };
      const before = this.#state.rollouts[cls]?.status;
      for (const id of plan(this.#state, cls, ids, a, settings, now)) {
        offers.push(this.#offerOf(id)!);
      }
      const r = this.#state.rollouts[cls];
      if (r.status !== before) {
        (r.status === "stopped" ? this.#log.warn : this.#log.info)(`rollout ${r.status}`, {
          class: cls,
          name: r.name,
          version: r.version,
          failures: r.failures,
          ...(r.reason ? { reason: r.reason } : {}),
        });
      }
    }
    this.#save();
    for (const o of offers) {
      this.#log.info("offering device artifact", {
        device: o.device,
        name: o.name,
        version: o.version,
      });
      if (this.#mqtt) {
        await this.#mqtt.offer(o).catch((e) =>
          this.#log.warn("offer not published", { device: o.device, error: (e as Error).message })
        );
      }
      if (this.#o.config.exec) {
        void runOfferHook(
          this.#o.config.exec,
          { ...o, path: this.#file(o.name, o.version) },
          this.#log,
        );
      }
    }
  }

  /** The offer standing for a device: the artifact it was offered, while the gateway holds it. */
  #offerOf(id: string): Offer | undefined {
    const t = this.#state.devices[id]?.target;
    const a = t && this.#artifactFor(id, t.name, t.version);
    if (!t || !a) return undefined;
    return {
      device: id,
      name: t.name,
      version: t.version,
      url: `${this.#o.baseUrl.replace(/\/$/, "")}/devices/artifacts/${t.name}/${t.version}`,
      sha256: a.sha256,
      size: a.size,
    };
  }

  #report(id: string, r: DeviceReport): void {
    const rec = this.#state.devices[id];
    const before = rec.state;
    applyReport(rec, r, this.#now());
    if (rec.state !== before) {
      this.#log.info("device state", { device: id, state: rec.state, running: r.version });
    }
    void this.#plan();
  }

  /** Lets a stopped rollout of a class go on; false when there is none. */
  resume(cls: string): boolean {
    const ok = resume(this.#state, cls);
    if (ok) {
      this.#log.info("rollout resumed by the operator", { class: cls });
      void this.#plan();
    }
    return ok;
  }

  /** Writes state.json when it changed (the flash is spared the periodic planning). */
  #save(): void {
    const text = JSON.stringify({ ...this.#state, artifacts: this.#held }, null, 1) + "\n";
    if (text === this.#saved) return;
    this.#saved = text;
    this.#saving = this.#saving.then(() =>
      writeFileAtomic(`${this.#o.dataDir}/state.json`, text, 0o640)
    )
      .catch((e) => this.#log.warn("device state not saved", { error: (e as Error).message }));
  }

  /** `/status` → `devices`. */
  status(): DevicesStatus {
    return {
      ...(this.#lastCheck ? { lastCheck: this.#lastCheck } : {}),
      ...(this.#mqtt ? { broker: { connected: this.#mqtt.connected } } : {}),
      artifacts: this.#held,
      rollouts: this.#state.rollouts,
      devices: Object.values(this.#state.devices),
      counts: countStates(this.#state),
    };
  }

  /** Stops checking, closes the broker connection and writes the state. */
  async stop(): Promise<void> {
    this.#ac.abort();
    await this.#checking?.catch(() => {});
    await this.#mqtt?.close();
    this.#save();
    await this.#saving;
  }
}
