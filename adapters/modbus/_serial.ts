/**
 * A serial port for `modbus-serial` in pure Deno. The `serialport` addon cannot do I/O under Deno
 * (EBADF), so the line is set up with `stty` and the device is read and written with `Deno.open`.
 * The port delivers whole RTU frames to `modbus-serial`, as its own RTUBufferedPort does, but
 * scans for a frame whose CRC is valid so line noise before a response does not lose it.
 */
import { EventEmitter } from "node:events";
import { Buffer } from "node:buffer";

/** Settings of one serial line. */
export interface SerialOptions {
  path: string;
  baudRate: number;
  parity: "none" | "even" | "odd";
  dataBits: number;
  stopBits: number;
}

/** A serial line that cannot be opened, set up, read or written. */
export class SerialPortError extends Error {
  /** Creates the error; the message names the device path. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SerialPortError";
  }
}

/** `stty` arguments that put `path` in raw mode with the given framing. */
export function sttyArgs(o: SerialOptions): string[] {
  const parity = o.parity === "none"
    ? ["-parenb"]
    : o.parity === "even"
    ? ["parenb", "-parodd"]
    : ["parenb", "parodd"];
  return [
    "-F",
    o.path,
    String(o.baudRate),
    "raw",
    "-echo",
    `cs${o.dataBits}`,
    o.stopBits === 2 ? "cstopb" : "-cstopb",
    ...parity,
    "clocal",
    "cread",
    "-crtscts",
    "-ixon",
    "-ixoff",
    // A read returns what has arrived, or nothing after 100 ms, so the reader can notice close.
    "min",
    "0",
    "time",
    "1",
  ];
}

/** The RTU inter-frame gap: 3.5 character times, fixed at 1.75 ms above 19200 bit/s. */
export function interFrameGapMs(o: SerialOptions): number {
  if (o.baudRate > 19200) return 1.75;
  const bitsPerChar = 1 + o.dataBits + (o.parity === "none" ? 0 : 1) + o.stopBits;
  return (3.5 * bitsPerChar * 1000) / o.baudRate;
}

/** CRC-16/MODBUS of `bytes`. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b;
    for (let j = 0; j < 8; j++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** True when the last two bytes of `frame` are the CRC of the rest. */
export function crcValid(frame: Uint8Array): boolean {
  if (frame.length < 4) return false;
  const n = frame.length;
  return crc16(frame.subarray(0, n - 2)) === (frame[n - 2] | (frame[n - 1] << 8));
}

/** Length of the normal response to a request frame, or undefined for unsupported functions. */
export function responseLength(request: Uint8Array): number | undefined {
  const fc = request[1];
  const quantity = (request[4] << 8) | request[5];
  switch (fc) {
    case 1:
    case 2:
      return 5 + Math.ceil(quantity / 8);
    case 3:
    case 4:
      return 5 + 2 * quantity;
    case 5:
    case 6:
    case 15:
    case 16:
      return 8;
  }
  return undefined;
}

/** Most bytes kept while waiting for a frame (an RTU frame is at most 256). */
const MAX_PENDING = 512;

/**
 * A `modbus-serial` port on a Deno file: an EventEmitter with `open(cb)`, `close(cb)`,
 * `write(data)` and `isOpen`, emitting each response frame as one `data` event.
 */
export class DenoSerialPort extends EventEmitter {
  readonly options: SerialOptions;
  #file?: Deno.FsFile;
  #pending = new Uint8Array(0);
  #expect?: { unit: number; fc: number; length: number };
  #writing: Promise<void> = Promise.resolve();

  /** Creates the port; nothing is opened until `open`. */
  constructor(options: SerialOptions) {
    super();
    this.options = options;
  }

  /** True between a successful `open` and `close`. */
  get isOpen(): boolean {
    return this.#file !== undefined;
  }

  /** Opens the device and sets up the line; calls back with an error on failure. */
  open(callback?: (err?: Error | null) => void): void {
    this.#open().then(() => callback?.(null), (e) => callback?.(e));
  }

  async #open(): Promise<void> {
    const path = this.options.path;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true });
    } catch (e) {
      throw new SerialPortError(`Cannot open serial port "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    // Set the line up while holding it open, so the settings are not reset on the last close.
    try {
      const out = await new Deno.Command("stty", {
        args: sttyArgs(this.options),
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(new TextDecoder().decode(out.stderr).trim() || `exit code ${out.code}`);
      }
    } catch (e) {
      file.close();
      throw new SerialPortError(
        `Cannot set up serial port "${path}" at ${this.options.baudRate} bit/s: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    this.#file = file;
    this.#pending = new Uint8Array(0);
    this.#readLoop(file);
  }

  async #readLoop(file: Deno.FsFile): Promise<void> {
    const buf = new Uint8Array(1024);
    let quickEmpty = 0;
    while (this.#file === file) {
      const t0 = performance.now();
      let n: number | null;
      try {
        n = await file.read(buf);
      } catch (e) {
        if (this.#file !== file) return;
        this.#fail(
          new SerialPortError(`Cannot read serial port "${this.options.path}"`, { cause: e }),
        );
        return;
      }
      if (n) {
        quickEmpty = 0;
        this.#onBytes(buf.subarray(0, n));
      } else if (performance.now() - t0 < 20 && ++quickEmpty > 50) {
        // An empty read should take the 100 ms line timeout; at once, again and again, is a hang-up.
        this.#fail(new SerialPortError(`Serial port "${this.options.path}" hung up`));
        return;
      } else if (performance.now() - t0 >= 20) quickEmpty = 0;
    }
  }

  #fail(err: Error): void {
    this.#closeFile();
    this.emit("error", err);
    this.emit("close");
  }

  #closeFile(): void {
    const f = this.#file;
    this.#file = undefined;
    try {
      f?.close();
    } catch {
      // Already closed by a failed read.
    }
  }

  #onBytes(chunk: Uint8Array): void {
    if (!this.#expect) return; // Nothing asked: stray bytes are line noise.
    const joined = new Uint8Array(this.#pending.length + chunk.length);
    joined.set(this.#pending);
    joined.set(chunk, this.#pending.length);
    this.#pending = joined.length > MAX_PENDING ? joined.slice(-MAX_PENDING) : joined;
    const { unit, fc, length } = this.#expect;
    const p = this.#pending;
    let corrupt: Uint8Array | undefined;
    for (let i = 0; i + 5 <= p.length; i++) {
      if (p[i] !== unit) continue;
      const size = p[i + 1] === fc ? length : p[i + 1] === (fc | 0x80) ? 5 : 0;
      if (!size || i + size > p.length) continue;
      const frame = p.subarray(i, i + size);
      if (crcValid(frame)) return this.#deliver(frame);
      corrupt ??= frame;
    }
    // A whole frame with a bad CRC and nothing better: hand it over so the client reports the CRC
    // error now rather than waiting for its timeout.
    if (corrupt && p.length >= length) this.#deliver(corrupt);
  }

  #deliver(frame: Uint8Array): void {
    this.#expect = undefined;
    this.#pending = new Uint8Array(0);
    this.emit("data", Buffer.from(frame));
  }

  /** Sends a request frame; bytes still pending from an earlier exchange are dropped. */
  write(data: Uint8Array): void {
    const length = responseLength(data);
    this.#pending = new Uint8Array(0);
    this.#expect = length === undefined ? undefined : { unit: data[0], fc: data[1], length };
    const file = this.#file;
    if (!file) {
      this.emit("error", new SerialPortError(`Serial port "${this.options.path}" is not open`));
      return;
    }
    const frame = Uint8Array.from(data);
    this.#writing = this.#writing.then(async () => {
      let off = 0;
      while (off < frame.length) off += await file.write(frame.subarray(off));
    }).catch((e) => {
      if (this.#file === file) {
        this.#fail(
          new SerialPortError(`Cannot write serial port "${this.options.path}"`, { cause: e }),
        );
      }
    });
  }

  /** Closes the device. */
  close(callback?: (err?: Error | null) => void): void {
    const wasOpen = this.isOpen;
    this.#closeFile();
    this.#expect = undefined;
    if (wasOpen) this.emit("close");
    callback?.(null);
  }

  /** Closes the device; `modbus-serial` calls this on destroy. */
  destroy(callback?: (err?: Error | null) => void): void {
    this.close(callback);
  }
}
