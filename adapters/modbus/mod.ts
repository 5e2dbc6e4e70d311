/**
 * The `modbus` adapter: polls Modbus TCP and RTU devices by a register map and writes to them.
 *
 * @module
 */
import {
  type AdapterContext,
  backoffDelay,
  defineAdapter,
  sleep,
  type WriteRequest,
} from "../../src/adapter.ts";
import type { Reading } from "../../src/reading.ts";
import { type DeviceConfig, type ModbusConfig, modbusSchema, registerCount } from "./config.ts";
import { type Codec, decodeRegisters, encodeRegisters, toBool } from "./_decode.ts";
import {
  type Client,
  type Link,
  ModbusExceptionError,
  ModbusRequestError,
  SerialLink,
  TcpLink,
} from "./_link.ts";
import { isBitTable, planReads, type Point, type Read, type Table } from "./_plan.ts";

export { ModbusExceptionError, ModbusRequestError } from "./_link.ts";
export { ModbusEncodeError } from "./_decode.ts";
export { SerialPortError } from "./_serial.ts";
export type { ModbusConfig } from "./config.ts";

/** A write the adapter cannot perform: unknown device or point, or a read-only table. */
export class ModbusWriteError extends Error {
  /** Creates the error; the message names the device and point. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModbusWriteError";
  }
}

interface Group {
  name: string;
  interval: number;
  reads: Read[];
}

type Ctx = AdapterContext<ModbusConfig>;

/** Exceptions that mean "ask again later" rather than "this request is wrong". */
const RETRYABLE_EXCEPTIONS = new Set([5, 6]);
/** Exceptions that mean the device behind a gateway did not answer. */
const NO_ANSWER_EXCEPTIONS = new Set([10, 11]);

function describeRead(device: string, r: Read): string {
  return `read ${r.table} ${r.start}+${r.count} of "${device}"`;
}

/** One polled device: its groups, link, availability and request policy. */
class Device {
  readonly cfg: DeviceConfig;
  readonly link: Link;
  readonly groups: Group[];
  readonly points = new Map<string, Point>();
  readonly #ctx: Ctx;
  #available: boolean | undefined;
  #onlineWaiters: (() => void)[] = [];
  #recovering = false;
  /** Last error text per read, so a persistent failure is logged once, not every cycle. */
  readonly #lastError = new Map<Read, string>();

  constructor(cfg: DeviceConfig, link: Link, ctx: Ctx) {
    this.cfg = cfg;
    this.link = link;
    this.#ctx = ctx;
    const profile = cfg.profile ? ctx.config.profiles[cfg.profile] : undefined;
    const groups = [
      ...(profile?.groups.map((g) => ({ g, order: profile.order })) ?? []),
      ...(cfg.groups ?? []).map((g) => ({ g, order: undefined })),
    ];
    this.groups = groups.map(({ g, order }, i) => {
      const points = g.registers.map((r): Point => {
        const type = r.type ?? (isBitTable(r.function) ? "bool" : "uint16");
        const codec: Codec = {
          type,
          order: r.order ?? cfg.order ?? order ?? "ABCD",
          length: r.length,
          bit: r.bit,
          scale: r.scale,
          offset: r.offset,
          decimals: r.decimals,
        };
        const size = isBitTable(r.function) ? 1 : registerCount(type, r.length);
        const p = {
          name: r.name,
          table: r.function,
          address: r.address,
          size,
          codec,
          unit: r.unit,
        };
        this.points.set(r.name, p);
        return p;
      });
      return {
        name: g.name ?? `g${i + 1}`,
        interval: g.interval,
        reads: planReads(points, {
          maxGap: cfg.maxGap,
          maxRegisters: cfg.maxRegistersPerRead,
          maxBits: cfg.maxBitsPerRead,
        }),
      };
    });
  }

  get name(): string {
    return this.cfg.name;
  }

  /** Runs a request with the device's timeout, retries and backoff. */
  async request<T>(
    what: string,
    op: (c: Client) => Promise<T>,
    retries = this.cfg.retries,
  ): Promise<T> {
    const { signal, count, log } = this.#ctx;
    for (let attempt = 0;; attempt++) {
      try {
        count("requests");
        const v = await this.link.request(what, this.cfg.timeout, op);
        this.#markOnline();
        return v;
      } catch (e) {
        const err = e as ModbusExceptionError | ModbusRequestError;
        const noAnswer = err instanceof ModbusRequestError ||
          NO_ANSWER_EXCEPTIONS.has(err.code);
        if (err instanceof ModbusRequestError) {
          count(
            err.kind === "timeout"
              ? "timeouts"
              : err.kind === "crc"
              ? "crc_errors"
              : "connection_errors",
          );
        } else count("exceptions");
        // Any exception response proves the device is there.
        if (!noAnswer) this.#markOnline();
        const retryable = noAnswer || RETRYABLE_EXCEPTIONS.has((err as ModbusExceptionError).code);
        if (signal.aborted || !retryable || attempt >= retries) {
          if (noAnswer && !signal.aborted) this.#markUnavailable(err.message);
          throw err;
        }
        count("retries");
        log.debug("retrying", { device: this.name, attempt: attempt + 1, error: err.message });
        await sleep(
          backoffDelay(attempt, { min: this.cfg.retryDelay, max: 30_000 }, { jitter: "none" }),
          signal,
        );
      }
    }
  }

  /** Polls one group once; every read stands alone, so one failing read keeps the others. */
  async poll(group: Group): Promise<Reading[]> {
    const ts = Date.now();
    const out: Reading[] = [];
    for (const read of group.reads) {
      if (this.#available === false || this.#ctx.signal.aborted) break;
      const what = describeRead(this.name, read);
      try {
        const data = await this.request(what, (c) => readTable(c, this.cfg.unitId, read));
        for (const p of read.points) out.push(this.#reading(p, read, data, ts));
        if (this.#lastError.delete(read)) {
          this.#ctx.log.info("read works again", { device: this.name, read: what });
        }
      } catch (e) {
        if (this.#ctx.signal.aborted) break;
        this.#ctx.count("errors");
        const msg = (e as Error).message;
        if (this.#lastError.get(read) !== msg) {
          this.#lastError.set(read, msg);
          if (e instanceof ModbusExceptionError || this.available !== false) {
            this.#ctx.log.warn(msg, { device: this.name, group: group.name });
          }
        }
      }
    }
    return out;
  }

  #reading(p: Point, read: Read, data: number[] | boolean[], ts: number): Reading {
    const at = p.address - read.start;
    const value = isBitTable(p.table)
      ? (data as boolean[])[at]
      : decodeRegisters((data as number[]).slice(at, at + p.size), p.codec);
    return { device: this.name, metric: p.name, value, unit: p.unit, ts };
  }

  #markOnline(): void {
    if (this.#available === true) return;
    const was = this.#available;
    this.#available = true;
    this.#ctx.setDeviceState(this.name, "online");
    if (was === false) this.#ctx.log.info("device answers again", { device: this.name });
    for (const w of this.#onlineWaiters.splice(0)) w();
  }

  #markUnavailable(reason: string): void {
    if (this.#available === false) return;
    this.#available = false;
    this.#ctx.setDeviceState(this.name, "unavailable", reason);
    this.#ctx.log.warn("device does not answer; polling it slowly until it does", {
      device: this.name,
      every: `${this.cfg.unavailableInterval}ms`,
      reason,
    });
    this.#recover();
  }

  /** Probes an unavailable device with single attempts on the slow cadence until it answers. */
  async #recover(): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    const { signal, log } = this.#ctx;
    const probe = this.groups[0].reads[0];
    try {
      while (this.#available === false && !signal.aborted) {
        await sleep(this.cfg.unavailableInterval, signal);
        if (signal.aborted) break;
        try {
          await this.request(
            describeRead(this.name, probe),
            (c) => readTable(c, this.cfg.unitId, probe),
            0,
          );
        } catch (e) {
          // Exceptions mark it online inside request(); other failures keep it unavailable.
          log.debug("probe failed", { device: this.name, error: e as Error });
        }
      }
    } finally {
      this.#recovering = false;
    }
  }

  /** Resolves at once when the device is not known to be unavailable, else when it answers. */
  whenAvailable(signal: AbortSignal): Promise<void> {
    if (this.#available !== false || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#onlineWaiters.push(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  get available(): boolean | undefined {
    return this.#available;
  }
}

function readTable(c: Client, unit: number, r: Read): Promise<number[] | boolean[]> {
  switch (r.table) {
    case "coil":
      return c.readCoils(unit, r.start, r.count);
    case "discrete":
      return c.readDiscrete(unit, r.start, r.count);
    case "holding":
      return c.readHolding(unit, r.start, r.count);
    case "input":
      return c.readInput(unit, r.start, r.count);
  }
}

/** Runs one group's schedule until abort; nothing inside may end it early. */
async function runGroup(device: Device, group: Group, ctx: Ctx): Promise<void> {
  const { signal, emit, count, log } = ctx;
  let next = Date.now();
  while (!signal.aborted) {
    if (device.available === false) {
      await device.whenAvailable(signal);
      next = Date.now();
      continue;
    }
    try {
      const readings = await device.poll(group);
      count("polls");
      if (readings.length) await emit(readings);
    } catch (e) {
      count("errors");
      log.error("poll cycle failed", { device: device.name, group: group.name, error: e as Error });
    }
    next += group.interval;
    const late = Date.now() - next;
    if (late >= group.interval) {
      // Skip the ticks already gone instead of bursting to catch up.
      const missed = Math.floor(late / group.interval);
      count("missed_cycles", missed);
      next += missed * group.interval;
    }
    await sleep(Math.max(0, next - Date.now()), signal);
  }
}

const RAW_POINT = /^(coil|holding):(\d{1,5})$/;

/** Builds the write handler over the adapter's devices. */
function writer(devices: Map<string, Device>, ctx: Ctx): (req: WriteRequest) => Promise<void> {
  return async ({ device: name, point, value }) => {
    const device = devices.get(name);
    if (!device) {
      throw new ModbusWriteError(
        `Cannot write "${point}" of "${name}": no such device in "${ctx.name}"`,
      );
    }
    let table: Table;
    let address: number;
    let codec: Codec | undefined;
    const mapped = device.points.get(point);
    const raw = RAW_POINT.exec(point);
    if (mapped) {
      ({ table, address, codec } = mapped);
    } else if (raw && Number(raw[2]) <= 65535) {
      table = raw[1] as Table;
      address = Number(raw[2]);
    } else {
      throw new ModbusWriteError(
        `Cannot write "${point}" of "${name}": not a mapped metric nor "coil:<address>" or "holding:<address>"`,
      );
    }
    const what = `write ${JSON.stringify(value)} to ${table} ${address} ("${point}") of "${name}"`;
    const unit = device.cfg.unitId;
    if (table === "coil") {
      const on = toBool(value);
      await device.request(what, (c) => c.writeCoil(unit, address, on));
    } else if (table === "holding") {
      const c: Codec = codec ?? {
        type: typeof value === "number" && value < 0 ? "int16" : "uint16",
        order: "ABCD",
        scale: 1,
        offset: 0,
      };
      const words = encodeRegisters(value, c);
      await device.request(what, (cl) => cl.writeRegisters(unit, address, words));
    } else {
      throw new ModbusWriteError(
        `Cannot ${what}: ${table} ${table === "input" ? "registers" : "inputs"} are read-only`,
      );
    }
    ctx.count("writes");
    ctx.log.info("wrote", { device: name, point, value });
  };
}

/** Modbus TCP and RTU: polls register maps into readings, writes points on request. */
export const modbus = defineAdapter<ModbusConfig>({
  type: "modbus",
  schema: modbusSchema,
  pollInterval: (config) =>
    Math.max(
      ...[...Object.values(config.profiles), ...config.devices].flatMap((d) =>
        (d.groups ?? []).map((g) => g.interval)
      ),
    ),
  claims: (config) => ({
    serialPorts: config.devices.flatMap((d, i) =>
      d.rtu ? [{ port: d.rtu.port, at: ["devices", i, "rtu", "port"] }] : []
    ),
  }),
  async start(ctx) {
    const { config, signal, log } = ctx;
    const serial = new Map<string, SerialLink>();
    const links: Link[] = [];
    const devices = new Map<string, Device>();
    for (const d of config.devices) {
      let link: Link;
      if (d.rtu) {
        let line = serial.get(d.rtu.port);
        if (!line) {
          line = new SerialLink({ path: d.rtu.port, ...d.rtu }, signal, log);
          serial.set(d.rtu.port, line);
          links.push(line);
        }
        link = line;
      } else {
        link = new TcpLink(d.tcp!.host, d.tcp!.port, signal, log);
        links.push(link);
      }
      devices.set(d.name, new Device(d, link, ctx));
    }
    ctx.setWriter(writer(devices, ctx));
    log.info("polling modbus devices", {
      devices: devices.size,
      serialLines: serial.size,
      reads: [...devices.values()].reduce(
        (n, d) => n + d.groups.reduce((m, g) => m + g.reads.length, 0),
        0,
      ),
    });
    const loops = [...devices.values()].flatMap((d) => d.groups.map((g) => runGroup(d, g, ctx)));
    try {
      await Promise.all(loops);
    } finally {
      for (const l of links) l.drop();
    }
  },
});
