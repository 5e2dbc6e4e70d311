/**
 * From device updates to readings: which configured device an advertisement belongs to, which
 * decoder reads it, and the per-device throttle that keeps the latest values and emits at most
 * once per interval.
 */
import type { AdapterContext } from "../../src/adapter.ts";
import type { Reading } from "../../src/reading.ts";
import type { DeviceProps } from "./_bluez.ts";
import { BTHOME_UUID, decodeBthome } from "./_bthome.ts";
import { DecodeError, type DecodeResult } from "./_decode.ts";
import { decodeLayout } from "./_layout.ts";
import { decodeRuuvi, RUUVI_COMPANY_ID } from "./_ruuvi.ts";
import type { BleConfig } from "./config.ts";

/** Expands a 16- or 32-bit UUID to the 128-bit lowercase form BlueZ uses. */
export function fullUuid(uuid: string): string {
  const u = uuid.toLowerCase();
  if (u.length === 4) return `0000${u}-0000-1000-8000-00805f9b34fb`;
  if (u.length === 8) return `${u}-0000-1000-8000-00805f9b34fb`;
  return u;
}

/** Picks the payload a decoder reads out of an update and decodes it; undefined when absent. */
type PayloadDecoder = (props: DeviceProps) => DecodeResult | undefined;

function payloadDecoder(name: string, layouts: BleConfig["layouts"]): PayloadDecoder {
  if (name === "bthome") {
    return (p) => {
      const data = p.serviceData?.get(BTHOME_UUID);
      return data && decodeBthome(data);
    };
  }
  if (name === "ruuvi") {
    return (p) => {
      const data = p.manufacturerData?.get(RUUVI_COMPANY_ID);
      return data && decodeRuuvi(data);
    };
  }
  const layout = layouts[name];
  if (layout.manufacturer !== undefined) {
    const company = layout.manufacturer;
    return (p) => {
      const data = p.manufacturerData?.get(company);
      return data && decodeLayout(data, layout);
    };
  }
  const uuid = fullUuid(layout.serviceData!);
  return (p) => {
    const data = p.serviceData?.get(uuid);
    return data && decodeLayout(data, layout);
  };
}

interface Rule {
  name: string;
  decode: PayloadDecoder;
  interval: number;
}

interface DiscoverRule {
  uuid?: string;
  manufacturer?: number;
  prefix: string;
  decode: PayloadDecoder;
  interval: number;
}

/** What is known about one BlueZ device object. */
interface Seen {
  address: string;
  uuids: Set<string>;
  companies: Set<number>;
  rule?: Rule;
  /** Counted once as an unknown device. */
  counted: boolean;
}

/** Throttle state of one configured or discovered device, kept across BlueZ restarts. */
interface Tracked {
  rule: Rule;
  pending: Map<string, Reading>;
  rssi?: number;
  lastEmit: number;
  lastSeen: number;
  timer?: ReturnType<typeof setTimeout>;
  online: boolean;
}

/** Options of {@linkcode Devices}. */
export type DevicesOptions =
  & Pick<
    AdapterContext<BleConfig>,
    "config" | "emit" | "log" | "count" | "setDeviceState" | "signal"
  >
  & {
    /** Clock, for tests. */
    now?: () => number;
  };

const BLUEZ_PATH_ADDRESS = /dev_([0-9A-F]{2}(?:_[0-9A-F]{2}){5})$/i;

/** Routes device updates to decoders and emits throttled readings. */
export class Devices {
  readonly #o: DevicesOptions;
  readonly #now: () => number;
  readonly #byAddress = new Map<string, Rule>();
  readonly #discover: DiscoverRule[] = [];
  readonly #seen = new Map<string, Seen>();
  readonly #tracked = new Map<string, Tracked>();

  constructor(options: DevicesOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const { config, signal } = options;
    for (const d of config.devices) {
      this.#byAddress.set(d.address.toUpperCase(), {
        name: d.name,
        decode: payloadDecoder(d.decoder, config.layouts),
        interval: d.interval ?? config.interval,
      });
    }
    for (const d of config.discover) {
      this.#discover.push({
        uuid: d.serviceUuid === undefined ? undefined : fullUuid(d.serviceUuid),
        manufacturer: d.manufacturer,
        prefix: d.prefix,
        decode: payloadDecoder(d.decoder, config.layouts),
        interval: d.interval ?? config.interval,
      });
    }
    const sweep = setInterval(() => this.#sweep(), Math.min(config.staleAfter / 2, 60_000));
    signal.addEventListener("abort", () => {
      clearInterval(sweep);
      for (const t of this.#tracked.values()) clearTimeout(t.timer);
    }, { once: true });
  }

  /** Handles one Device1 update; `live` false means a snapshot whose data may be old. */
  update(path: string, props: DeviceProps, live: boolean): void {
    const seen = this.#learn(path, props);
    seen.rule ??= this.#resolve(seen);
    if (!live) return;
    if (!seen.rule) {
      // Counted once it advertises data: a device may announce its service UUIDs later.
      if (!seen.counted && (props.manufacturerData?.size || props.serviceData?.size)) {
        seen.counted = true;
        this.#o.count("unknown_devices");
      }
      return;
    }
    const t = this.#track(seen.rule);
    if (props.rssi !== undefined) t.rssi = props.rssi;
    const result = seen.rule.decode(props);
    if (result === undefined) return;
    if (result instanceof DecodeError) {
      this.#o.count(result.kind);
      this.#o.log.debug("advertisement skipped", {
        device: t.rule.name,
        kind: result.kind,
        reason: result.message,
      });
      return;
    }
    const ts = this.#now();
    const device = t.rule.name;
    for (const m of result) t.pending.set(m.metric, { device, ...m, ts });
    if (this.#o.config.rssi && t.rssi !== undefined) {
      t.pending.set("rssi", { device, metric: "rssi", value: t.rssi, unit: "dBm", ts });
    }
    t.lastSeen = ts;
    if (!t.online) {
      t.online = true;
      this.#o.setDeviceState(device, "online");
    }
    this.#schedule(t);
  }

  /** Forgets a BlueZ device object; its throttle state stays, keyed by device name. */
  removed(path: string): void {
    this.#seen.delete(path);
  }

  /** Marks every device unavailable: the adapter or BlueZ went away. */
  unavailable(reason: string): void {
    this.#seen.clear();
    for (const t of this.#tracked.values()) {
      t.online = false;
      this.#o.setDeviceState(t.rule.name, "unavailable", reason);
    }
  }

  #learn(path: string, props: DeviceProps): Seen {
    let seen = this.#seen.get(path);
    if (!seen) {
      const address = props.address ?? BLUEZ_PATH_ADDRESS.exec(path)?.[1].replaceAll("_", ":") ??
        "";
      seen = {
        address: address.toUpperCase(),
        uuids: new Set(),
        companies: new Set(),
        counted: false,
      };
      this.#seen.set(path, seen);
    }
    for (const u of props.uuids ?? []) seen.uuids.add(u);
    for (const u of props.serviceData?.keys() ?? []) seen.uuids.add(u);
    for (const c of props.manufacturerData?.keys() ?? []) seen.companies.add(c);
    return seen;
  }

  #resolve(seen: Seen): Rule | undefined {
    const known = this.#byAddress.get(seen.address);
    if (known) return known;
    const d = this.#discover.find((r) =>
      r.uuid !== undefined ? seen.uuids.has(r.uuid) : seen.companies.has(r.manufacturer!)
    );
    if (!d || !seen.address) return undefined;
    const name = `${d.prefix}-${seen.address.replaceAll(":", "").toLowerCase()}`;
    return { name, decode: d.decode, interval: d.interval };
  }

  #track(rule: Rule): Tracked {
    let t = this.#tracked.get(rule.name);
    if (!t) {
      t = { rule, pending: new Map(), lastEmit: -Infinity, lastSeen: 0, online: false };
      this.#tracked.set(rule.name, t);
    }
    return t;
  }

  /** Emits now if the interval has passed since the last emission, else once it has. */
  #schedule(t: Tracked): void {
    if (t.timer !== undefined) return;
    const wait = t.lastEmit + t.rule.interval - this.#now();
    if (wait <= 0) return this.#flush(t);
    t.timer = setTimeout(() => {
      t.timer = undefined;
      this.#flush(t);
    }, wait);
  }

  #flush(t: Tracked): void {
    if (this.#o.signal.aborted || t.pending.size === 0) return;
    const readings = [...t.pending.values()];
    t.pending.clear();
    t.lastEmit = this.#now();
    this.#o.emit(readings).catch((e) => {
      this.#o.log.warn("cannot hand readings to the pipeline", { device: t.rule.name, error: e });
    });
  }

  #sweep(): void {
    const now = this.#now();
    for (const t of this.#tracked.values()) {
      if (t.online && now - t.lastSeen > this.#o.config.staleAfter) {
        t.online = false;
        this.#o.setDeviceState(
          t.rule.name,
          "offline",
          `no advertisement for ${Math.round((now - t.lastSeen) / 1000)}s`,
        );
      }
    }
  }
}
