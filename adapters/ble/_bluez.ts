/**
 * BlueZ over D-Bus: finds the adapter, starts LE discovery with duplicate reporting, and turns
 * BlueZ's signals into device updates. It keeps going through adapter power cycles, adapter
 * removal and BlueZ restarts; only losing the bus connection itself ends it (with an error, so
 * the gateway restarts the adapter with backoff).
 */
import dbus, { type Message, type MessageBus } from "dbus-next";
import { deadline, sleep } from "../../src/adapter.ts";
import type { Logger } from "../../src/log.ts";

const BLUEZ = "org.bluez";
const ADAPTER_IFACE = "org.bluez.Adapter1";
const DEVICE_IFACE = "org.bluez.Device1";
const DBUS = "org.freedesktop.DBus";
const OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager";
const PROPERTIES = "org.freedesktop.DBus.Properties";

/** Longest wait for a reply from the bus or BlueZ. */
const CALL_TIMEOUT_MS = 10_000;
/** How often the bus and BlueZ are checked while scanning, to notice a silent disconnect. */
const PROBE_MS = 30_000;
/** Least time between two attempts to (re)start scanning, so a flapping adapter cannot spin. */
const MIN_ATTEMPT_GAP_MS = 250;

/** The D-Bus connection failed or dropped; the adapter has to start over. */
export class BleBusError extends Error {
  override name = "BleBusError";
}

/** What one Device1 update says about an advertisement; absent fields did not change. */
export interface DeviceProps {
  address?: string;
  rssi?: number;
  /** Advertised service UUIDs, 128-bit lowercase. */
  uuids?: string[];
  /** Manufacturer data by company id (the payload after the id). */
  manufacturerData?: Map<number, Uint8Array>;
  /** Service data by 128-bit lowercase UUID. */
  serviceData?: Map<string, Uint8Array>;
}

/** Callbacks of {@linkcode watchBluez}. */
export interface BluezHandlers {
  /** A device's properties: `live` is false for the snapshot read when scanning (re)starts. */
  device(path: string, props: DeviceProps, live: boolean): void;
  /** BlueZ forgot a device (it had not been seen for a while). */
  deviceRemoved(path: string): void;
  /** Scanning started (`scanning` true) or stopped, with why. */
  state(scanning: boolean, reason: string): void;
}

/** Options of {@linkcode watchBluez}. */
export interface WatchOptions {
  busAddress: string;
  /** Adapter name such as `hci0`; any adapter when absent. */
  adapter?: string;
  /** Wait between attempts while BlueZ or the adapter is missing or off. */
  retryMs: number;
  log: Logger;
  signal: AbortSignal;
}

function isVariant(v: unknown): v is { signature: string; value: unknown } {
  return typeof v === "object" && v !== null && "signature" in v && "value" in v;
}

function bytesOf(v: unknown): Uint8Array | undefined {
  return isVariant(v) && v.signature === "ay" && v.value instanceof Uint8Array
    ? v.value
    : undefined;
}

/**
 * Reads the advertisement-related Device1 properties from a D-Bus property map, ignoring
 * values of unexpected types.
 */
export function parseDeviceProps(props: Record<string, unknown>): DeviceProps {
  const out: DeviceProps = {};
  const { Address, RSSI, UUIDs, ManufacturerData, ServiceData } = props;
  if (isVariant(Address) && Address.signature === "s") out.address = String(Address.value);
  if (isVariant(RSSI) && RSSI.signature === "n") out.rssi = Number(RSSI.value);
  if (isVariant(UUIDs) && UUIDs.signature === "as" && Array.isArray(UUIDs.value)) {
    out.uuids = UUIDs.value.map((u) => String(u).toLowerCase());
  }
  if (isVariant(ManufacturerData) && ManufacturerData.signature === "a{qv}") {
    const map = new Map<number, Uint8Array>();
    for (const [id, v] of Object.entries(ManufacturerData.value as Record<string, unknown>)) {
      const b = bytesOf(v);
      if (b) map.set(Number(id), b);
    }
    out.manufacturerData = map;
  }
  if (isVariant(ServiceData) && ServiceData.signature === "a{sv}") {
    const map = new Map<string, Uint8Array>();
    for (const [uuid, v] of Object.entries(ServiceData.value as Record<string, unknown>)) {
      const b = bytesOf(v);
      if (b) map.set(uuid.toLowerCase(), b);
    }
    out.serviceData = map;
  }
  return out;
}

type Props = Record<string, unknown>;

function dbusErrorName(e: unknown): string | undefined {
  return e instanceof dbus.DBusError ? e.type : undefined;
}

/**
 * Deno permissions dbus-next needs for `address` that are not granted. dbus-next hits a missing
 * one inside a promise nobody awaits, which would end the whole process; asking first turns it
 * into an ordinary adapter failure.
 */
export function missingPermissions(address: string): string[] {
  const params = new Map(
    (address.split(";")[0].split(":")[1] ?? "").split(",").map((kv) =>
      kv.split("=", 2) as [string, string]
    ),
  );
  const wanted: [Deno.PermissionDescriptor, string][] = [[
    { name: "sys", kind: "uid" },
    "--allow-sys=uid",
  ]];
  const path = params.get("path");
  if (address.startsWith("unix:") && path) {
    wanted.push(
      [{ name: "net", host: `unix:${path}` }, `--allow-net=unix:${path}`],
      [{ name: "read", path }, `--allow-read=${path}`],
      [{ name: "write", path }, `--allow-write=${path}`],
    );
  } else if (address.startsWith("tcp:")) {
    const host = `${params.get("host") ?? "localhost"}:${params.get("port")}`;
    wanted.push([{ name: "net", host }, `--allow-net=${host}`]);
  }
  return wanted.filter(([d]) => Deno.permissions.querySync(d).state !== "granted").map(([, flag]) =>
    flag
  );
}

/**
 * Connects to the bus at `busAddress` and keeps BlueZ discovery running on the adapter until
 * `signal` aborts. Rejects with {@linkcode BleBusError} when the bus connection fails.
 */
export async function watchBluez(options: WatchOptions, handlers: BluezHandlers): Promise<void> {
  const watcher = new Watcher(options, handlers);
  await watcher.run();
}

class Watcher {
  readonly #o: WatchOptions;
  readonly #h: BluezHandlers;
  #bus!: MessageBus;
  /** Rejects when the connection breaks or the signal aborts; every wait races it. */
  #broken!: Promise<never>;
  #fail!: (e: Error) => void;
  /** Unique bus name of the current BlueZ process. */
  #owner: string | null = null;
  /** Object path of the adapter we scan with, while scanning. */
  #adapter: string | null = null;
  /** Bumped whenever scanning is lost, so an attempt in flight knows it is stale. */
  #generation = 0;
  #kicked = false;
  #wake: (() => void) | null = null;
  #lastProblem = "";

  constructor(options: WatchOptions, handlers: BluezHandlers) {
    this.#o = options;
    this.#h = handlers;
  }

  async run(): Promise<void> {
    const { signal } = this.#o;
    this.#broken = new Promise<never>((_, reject) => {
      this.#fail = reject;
    });
    this.#broken.catch(() => {});
    const onAbort = () => this.#fail(new BleBusError("stopped"));
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await this.#connect();
      let lastAttempt = 0;
      while (!signal.aborted) {
        if (this.#adapter === null) {
          await sleep(Math.max(0, lastAttempt + MIN_ATTEMPT_GAP_MS - Date.now()), signal);
          if (signal.aborted) break;
          lastAttempt = Date.now();
          await this.#attempt();
        } else {
          await this.#probe();
        }
        await this.#idle(this.#adapter === null ? this.#o.retryMs : PROBE_MS);
      }
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      signal.removeEventListener("abort", onAbort);
      // BlueZ stops a client's discovery session by itself when the client leaves the bus.
      this.#bus?.disconnect();
    }
  }

  async #connect(): Promise<void> {
    const { busAddress, signal } = this.#o;
    const missing = missingPermissions(busAddress);
    if (missing.length) {
      throw new BleBusError(
        `Cannot connect to D-Bus at "${busAddress}": Deno lacks ${missing.join(" ")}`,
      );
    }
    let bus: MessageBus;
    try {
      bus = dbus.sessionBus({ busAddress });
    } catch (e) {
      throw new BleBusError(`Cannot connect to D-Bus at "${busAddress}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.#bus = bus;
    bus.on("error", (e: unknown) => {
      const reason = e instanceof Error ? e.message : String(e);
      this.#fail(new BleBusError(`Lost D-Bus at "${busAddress}": ${reason}`, { cause: e }));
    });
    bus.on("message", (m: Message) => {
      try {
        this.#dispatch(m);
      } catch (e) {
        this.#o.log.warn("cannot handle a BlueZ signal", {
          member: m.member,
          path: m.path,
          error: e,
        });
      }
    });
    await this.#race(
      new Promise<void>((resolve) => bus.on("connect", () => resolve())),
      `connect to D-Bus at "${busAddress}"`,
    );
    if (signal.aborted) return;
    const rules = [
      `type='signal',sender='${DBUS}',interface='${DBUS}',member='NameOwnerChanged',arg0='${BLUEZ}'`,
      `type='signal',sender='${BLUEZ}',interface='${OBJECT_MANAGER}'`,
      `type='signal',sender='${BLUEZ}',interface='${PROPERTIES}',member='PropertiesChanged',arg0='${ADAPTER_IFACE}'`,
      `type='signal',sender='${BLUEZ}',interface='${PROPERTIES}',member='PropertiesChanged',arg0='${DEVICE_IFACE}'`,
    ];
    for (const rule of rules) {
      await this.#call({
        destination: DBUS,
        path: "/org/freedesktop/DBus",
        interface: DBUS,
        member: "AddMatch",
        signature: "s",
        body: [rule],
      });
    }
  }

  /** Awaits `p`, failing when the bus breaks, the adapter stops, or `CALL_TIMEOUT_MS` passes. */
  #race<T>(p: Promise<T>, what: string): Promise<T> {
    return deadline(Promise.race([p, this.#broken]), CALL_TIMEOUT_MS, {
      timeout: () => new BleBusError(`Cannot ${what}: no answer within ${CALL_TIMEOUT_MS}ms`),
    });
  }

  async #call(m: {
    destination: string;
    path: string;
    interface: string;
    member: string;
    signature?: string;
    body?: unknown[];
  }): Promise<unknown[]> {
    const reply = await this.#race(
      this.#bus.call(new dbus.Message(m)),
      `call ${m.interface}.${m.member} on ${m.destination} ${m.path}`,
    );
    return reply?.body ?? [];
  }

  /** Waits `ms`, or less when a signal asked for a new attempt. */
  async #idle(ms: number): Promise<void> {
    if (this.#kicked) {
      this.#kicked = false;
      return;
    }
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    this.#o.signal.addEventListener("abort", onAbort, { once: true });
    this.#wake = () => ac.abort();
    try {
      await Promise.race([sleep(ms, ac.signal), this.#broken]);
    } finally {
      this.#wake = null;
      this.#kicked = false;
      this.#o.signal.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }

  #kick(): void {
    this.#kicked = true;
    this.#wake?.();
  }

  /** Scanning stopped (adapter gone or off, BlueZ gone): report it and try again. */
  #lose(reason: string): void {
    this.#generation++;
    if (this.#adapter !== null) {
      this.#adapter = null;
      this.#o.log.warn("scanning stopped", { reason });
      this.#h.state(false, reason);
    }
    this.#kick();
  }

  #problem(text: string): void {
    // Say it once at warn level; repeating it every retry would flood the journal.
    if (text !== this.#lastProblem) this.#o.log.warn("waiting for Bluetooth", { reason: text });
    else this.#o.log.debug("still waiting for Bluetooth", { reason: text });
    this.#lastProblem = text;
  }

  async #getOwner(): Promise<string | null> {
    try {
      const [owner] = await this.#call({
        destination: DBUS,
        path: "/org/freedesktop/DBus",
        interface: DBUS,
        member: "GetNameOwner",
        signature: "s",
        body: [BLUEZ],
      });
      return String(owner);
    } catch (e) {
      if (dbusErrorName(e) === "org.freedesktop.DBus.Error.NameHasNoOwner") return null;
      throw e;
    }
  }

  /** One try at finding a powered adapter and starting discovery on it. */
  async #attempt(): Promise<void> {
    const generation = this.#generation;
    const owner = await this.#getOwner();
    this.#owner = owner;
    if (owner === null) {
      return this.#problem("BlueZ (org.bluez) is not on the bus; is bluetoothd running?");
    }
    let objects: Record<string, Record<string, Props>>;
    try {
      const [body] = await this.#call({
        destination: BLUEZ,
        path: "/",
        interface: OBJECT_MANAGER,
        member: "GetManagedObjects",
      });
      objects = body as Record<string, Record<string, Props>>;
    } catch (e) {
      if (e instanceof BleBusError) throw e;
      return this.#problem(`cannot list BlueZ objects: ${(e as Error).message}`);
    }
    const adapters = Object.keys(objects).filter((p) => objects[p][ADAPTER_IFACE]).sort();
    const wanted = this.#o.adapter;
    const candidates = wanted ? adapters.filter((p) => p === `/org/bluez/${wanted}`) : adapters;
    if (candidates.length === 0) {
      return this.#problem(wanted ? `adapter ${wanted} not found` : "no Bluetooth adapter found");
    }
    const powered = (p: string) => {
      const v = objects[p][ADAPTER_IFACE].Powered;
      return isVariant(v) && v.value === true;
    };
    const path = candidates.find(powered);
    if (!path) {
      return this.#problem(
        `adapter ${candidates[0].split("/").pop()} is powered off (bluetoothctl power on)`,
      );
    }
    const call = (member: string, signature?: string, body?: unknown[]) =>
      this.#call({ destination: BLUEZ, path, interface: ADAPTER_IFACE, member, signature, body });
    try {
      await call("SetDiscoveryFilter", "a{sv}", [{
        Transport: new dbus.Variant("s", "le"),
        DuplicateData: new dbus.Variant("b", true),
      }]);
      await call("StartDiscovery").catch((e) => {
        // Already discovering for this client (e.g. after a filter change) is fine.
        if (dbusErrorName(e) !== "org.bluez.Error.InProgress") throw e;
      });
    } catch (e) {
      if (e instanceof BleBusError) throw e;
      return this.#problem(`cannot start discovery on ${path}: ${(e as Error).message}`);
    }
    if (generation !== this.#generation) return; // lost again while we were starting
    this.#adapter = path;
    this.#lastProblem = "";
    this.#o.log.info("scanning", { adapter: path.split("/").pop() });
    this.#h.state(true, "discovery started");
    for (const [p, ifaces] of Object.entries(objects)) {
      if (ifaces[DEVICE_IFACE] && this.#ours(p)) {
        this.#h.device(p, parseDeviceProps(ifaces[DEVICE_IFACE]), false);
      }
    }
  }

  /** Checks that the bus answers and BlueZ is still the process we started discovery with. */
  async #probe(): Promise<void> {
    const owner = await this.#getOwner();
    if (owner !== this.#owner) {
      this.#owner = owner;
      this.#lose(owner === null ? "BlueZ left the bus" : "BlueZ restarted");
    }
  }

  /** Whether a device path belongs to the adapter we were told to use. */
  #ours(path: string): boolean {
    const prefix = this.#o.adapter ? `/org/bluez/${this.#o.adapter}/` : "/org/bluez/";
    return path.startsWith(prefix) && path.slice(prefix.length).includes("dev_");
  }

  #dispatch(m: Message): void {
    if (m.type !== dbus.MessageType.SIGNAL) return;
    if (m.interface === DBUS && m.member === "NameOwnerChanged") {
      const [name, , owner] = m.body as [string, string, string];
      if (name !== BLUEZ) return;
      this.#owner = owner || null;
      this.#lose(owner ? "BlueZ restarted" : "BlueZ left the bus");
      return;
    }
    // Signals from a BlueZ that has since gone are stale.
    if (this.#owner !== null && m.sender !== this.#owner) return;
    if (m.interface === OBJECT_MANAGER && m.member === "InterfacesAdded") {
      const [path, ifaces] = m.body as [string, Record<string, Props>];
      if (ifaces[ADAPTER_IFACE] && this.#adapter === null) this.#kick();
      if (ifaces[DEVICE_IFACE] && this.#ours(path)) {
        this.#h.device(path, parseDeviceProps(ifaces[DEVICE_IFACE]), true);
      }
    } else if (m.interface === OBJECT_MANAGER && m.member === "InterfacesRemoved") {
      const [path, ifaces] = m.body as [string, string[]];
      if (ifaces.includes(ADAPTER_IFACE) && path === this.#adapter) {
        this.#lose(`adapter ${path.split("/").pop()} was removed`);
      }
      if (ifaces.includes(DEVICE_IFACE) && this.#ours(path)) this.#h.deviceRemoved(path);
    } else if (m.interface === PROPERTIES && m.member === "PropertiesChanged") {
      const [iface, changed] = m.body as [string, Props];
      if (iface === DEVICE_IFACE) {
        if (this.#ours(m.path)) this.#h.device(m.path, parseDeviceProps(changed), true);
      } else if (iface === ADAPTER_IFACE) {
        this.#adapterChanged(m.path, changed);
      }
    }
  }

  #adapterChanged(path: string, changed: Props): void {
    const value = (key: string) =>
      isVariant(changed[key]) ? (changed[key] as { value: unknown }).value : undefined;
    const name = path.split("/").pop();
    if (path === this.#adapter) {
      if (value("Powered") === false) this.#lose(`adapter ${name} was powered off`);
      else if (value("Discovering") === false) this.#lose(`discovery on ${name} stopped`);
    } else if (this.#adapter === null && value("Powered") === true) {
      this.#kick();
    }
  }
}
