/**
 * Connections to Modbus devices. A link runs one request at a time: a TCP link serves one
 * device, a serial link serves every device on its line and keeps the RTU inter-frame gap.
 */
import modbusSerial from "modbus-serial";
import { deadline, sleep } from "../../src/adapter.ts";
import type { Logger } from "../../src/log.ts";
import { DenoSerialPort, interFrameGapMs, type SerialOptions } from "./_serial.ts";

// modbus-serial is CommonJS: its default import is `module.exports`, typed as the module
// namespace, whose `default` is the client class again.
const ModbusRTU = modbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

/** Meanings of Modbus exception codes. */
export const EXCEPTION_NAMES: Record<number, string> = {
  1: "illegal function",
  2: "illegal data address",
  3: "illegal data value",
  4: "server device failure",
  5: "acknowledge (still processing)",
  6: "server device busy",
  7: "negative acknowledge",
  8: "memory parity error",
  10: "gateway path unavailable",
  11: "gateway target device failed to respond",
};

/** A device answered a request with a Modbus exception response. */
export class ModbusExceptionError extends Error {
  /** The exception code (1–11). */
  readonly code: number;
  /** Creates the error; `what` names the request, e.g. `read holding 100+2 of "pump-1"`. */
  constructor(what: string, code: number, options?: ErrorOptions) {
    super(
      `Cannot ${what}: exception ${code} (${EXCEPTION_NAMES[code] ?? "unknown exception"})`,
      options,
    );
    this.name = "ModbusExceptionError";
    this.code = code;
  }
}

/** Why a request got no usable answer. */
export type FailureKind = "timeout" | "crc" | "connection";

/** A request that got no usable answer: timed out, garbled, or the connection failed. */
export class ModbusRequestError extends Error {
  /** What went wrong. */
  readonly kind: FailureKind;
  /** Creates the error; `what` names the request. */
  constructor(what: string, kind: FailureKind, detail: string, options?: ErrorOptions) {
    super(`Cannot ${what}: ${detail}`, options);
    this.name = "ModbusRequestError";
    this.kind = kind;
  }
}

/** Turns whatever `modbus-serial` rejected with into one of this module's errors. */
export function classifyError(what: string, e: unknown): ModbusExceptionError | ModbusRequestError {
  if (e instanceof ModbusExceptionError || e instanceof ModbusRequestError) return e;
  const err = e as { name?: string; message?: string; errno?: string; modbusCode?: number };
  if (typeof err?.modbusCode === "number") {
    return new ModbusExceptionError(what, err.modbusCode, { cause: e });
  }
  const message = err?.message ?? String(e);
  if (err?.name === "TransactionTimedOutError" || err?.errno === "ETIMEDOUT") {
    return new ModbusRequestError(what, "timeout", "no response in time", { cause: e });
  }
  if (/CRC error|Data length error|Unexpected data error/.test(message)) {
    return new ModbusRequestError(what, "crc", `garbled response (${message})`, { cause: e });
  }
  return new ModbusRequestError(what, "connection", message, { cause: e });
}

/** The client calls a request uses; the unit id is given per call. */
export interface Client {
  readCoils(unit: number, start: number, count: number): Promise<boolean[]>;
  readDiscrete(unit: number, start: number, count: number): Promise<boolean[]>;
  readHolding(unit: number, start: number, count: number): Promise<number[]>;
  readInput(unit: number, start: number, count: number): Promise<number[]>;
  writeCoil(unit: number, address: number, value: boolean): Promise<void>;
  writeRegisters(unit: number, address: number, words: number[]): Promise<void>;
}

type Callback<T> = (err: unknown, res: T) => void;

function call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => err ? reject(err) : resolve(res)));
}

function wrap(m: ModbusRTU): Client {
  return {
    readCoils: (u, s, n) =>
      call<{ data: boolean[] }>((cb) => m.writeFC1(u, s, n, cb)).then((r) => r.data),
    readDiscrete: (u, s, n) =>
      call<{ data: boolean[] }>((cb) => m.writeFC2(u, s, n, cb)).then((r) => r.data),
    readHolding: (u, s, n) =>
      call<{ data: number[] }>((cb) => m.writeFC3(u, s, n, cb)).then((r) => r.data),
    readInput: (u, s, n) =>
      call<{ data: number[] }>((cb) => m.writeFC4(u, s, n, cb)).then((r) => r.data),
    writeCoil: (u, a, v) => call((cb) => m.writeFC5(u, a, v, cb)).then(() => {}),
    writeRegisters: (u, a, w) =>
      (w.length === 1
        ? call((cb) => m.writeFC6(u, a, w[0], cb))
        : call((cb) => m.writeFC16(u, a, w, cb))).then(() => {}),
  };
}

/** Rejects after `ms` or on abort, whichever comes first; the timer is tied to `signal`. */
function requestDeadline<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  signal: AbortSignal,
): Promise<T> {
  return deadline(p, ms, {
    signal,
    timeout: () => new ModbusRequestError(what, "timeout", `no response within ${ms}ms`),
    aborted: () => new ModbusRequestError(what, "connection", "stopped"),
  });
}

/** A connection that runs requests one at a time. */
export abstract class Link {
  #queue: Promise<unknown> = Promise.resolve();
  protected readonly signal: AbortSignal;
  protected readonly log: Logger;
  #client?: ModbusRTU;

  /** Creates the link; it connects on the first request. */
  constructor(signal: AbortSignal, log: Logger) {
    this.signal = signal;
    this.log = log;
  }

  /** Human name of the connection for messages. */
  abstract get label(): string;
  /** Opens a new client, giving up after `timeoutMs`. */
  protected abstract connect(timeoutMs: number): Promise<ModbusRTU>;
  /** Waits before a request, e.g. the inter-frame gap. */
  protected abstract pace(): Promise<void>;
  /** Notes that an exchange ended. */
  protected abstract settled(): void;

  /**
   * Runs `op` when the link is free, connecting first if needed. Rejects with
   * {@linkcode ModbusExceptionError} or {@linkcode ModbusRequestError}.
   */
  request<T>(what: string, timeoutMs: number, op: (c: Client) => Promise<T>): Promise<T> {
    const run = async () => {
      await this.pace();
      try {
        if (!this.#client?.isOpen) {
          this.drop();
          this.#client = await this.connect(timeoutMs);
        }
        const client = this.#client;
        client.setTimeout(timeoutMs);
        // The outer deadline is a backstop should the client never call back.
        return await requestDeadline(op(wrap(client)), timeoutMs + 100, what, this.signal);
      } catch (e) {
        const err = classifyError(what, e);
        if (err instanceof ModbusRequestError && err.kind === "connection") this.drop();
        throw err;
      } finally {
        this.settled();
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Closes the current client, if any; the next request reconnects. */
  drop(): void {
    const c = this.#client;
    this.#client = undefined;
    if (!c) return;
    try {
      c.destroy(() => {});
    } catch (e) {
      this.log.debug("closing connection failed", { link: this.label, error: e as Error });
    }
  }
}

/** A Modbus TCP connection to one device. */
export class TcpLink extends Link {
  readonly host: string;
  readonly port: number;

  /** Creates the link to `host:port`. */
  constructor(host: string, port: number, signal: AbortSignal, log: Logger) {
    super(signal, log);
    this.host = host;
    this.port = port;
  }

  /** `tcp://host:port`. */
  get label(): string {
    return `tcp://${this.host}:${this.port}`;
  }

  protected async connect(timeoutMs: number): Promise<ModbusRTU> {
    const client = new ModbusRTU();
    client.on(
      "error",
      (e: unknown) => this.log.debug("connection error", { link: this.label, error: String(e) }),
    );
    const what = `connect to ${this.label}`;
    try {
      await requestDeadline(
        client.connectTCP(this.host, { port: this.port }),
        timeoutMs,
        what,
        this.signal,
      );
    } catch (e) {
      client.destroy(() => {});
      const reason = e instanceof ModbusRequestError && e.kind === "timeout"
        ? `no connection within ${timeoutMs}ms`
        : (e as Error)?.message ?? String(e);
      throw new Error(`cannot connect to ${this.label}: ${reason}`, { cause: e });
    }
    return client;
  }

  protected pace(): Promise<void> {
    return Promise.resolve();
  }

  protected settled(): void {}
}

/** A serial line shared by the RTU devices on it. */
export class SerialLink extends Link {
  readonly options: SerialOptions;
  readonly gapMs: number;
  #lastEnd = 0;

  /** Creates the link on the serial line `options.path`. */
  constructor(options: SerialOptions, signal: AbortSignal, log: Logger) {
    super(signal, log);
    this.options = options;
    this.gapMs = interFrameGapMs(options);
  }

  /** `rtu:///dev/ttyUSB0`. */
  get label(): string {
    return `rtu://${this.options.path}`;
  }

  protected async connect(): Promise<ModbusRTU> {
    const client = new ModbusRTU(new DenoSerialPort(this.options));
    client.on(
      "error",
      (e: unknown) => this.log.debug("serial error", { link: this.label, error: String(e) }),
    );
    await new Promise<void>((resolve, reject) =>
      client.open((e: unknown) => e ? reject(e) : resolve())
    );
    return client;
  }

  protected async pace(): Promise<void> {
    const wait = this.#lastEnd + this.gapMs - performance.now();
    if (wait > 0) await sleep(Math.ceil(wait), this.signal);
  }

  protected settled(): void {
    this.#lastEnd = performance.now();
  }
}
