/**
 * A Modbus server for tests and benchmarks, run as its own process:
 *
 *   deno run -A server.ts --tcp <port> [--units 1-200] [--quiet]
 *   deno run -A server.ts --rtu <serial device> [--units 1-3] [--quiet]
 *
 * Registers hold `(unit * 7 + address) & 0xffff` until written; coils and discrete inputs are on
 * at addresses divisible by 3. Holding registers 50000–50099 answer exception 6 (busy) and
 * 60000–60099 exception 2 (illegal address). Units outside `--units` never answer.
 *
 * stdout: `ready` once serving, then one JSON line per request (`{"unit","fc","address","count"}`,
 * plus `"ex"` for exceptions and `"silent"` for unanswered ones) unless `--quiet`.
 * stdin, one command a line: `set <unit> <holding|input|coil|discrete> <address> <v1,v2,…>`,
 * `mute <unit>` / `unmute <unit>` (stop / resume answering), `corrupt <n>` / `truncate <n>`
 * (garble the CRC of / cut short the next n RTU responses).
 */
import { crc16 } from "../_serial.ts";

type Table = "coil" | "discrete" | "holding" | "input";

const args = Deno.args;
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quiet = args.includes("--quiet");
const [lo, hi] = (opt("--units") ?? "1-255").split("-").map(Number);
const units = { lo, hi: hi ?? lo };

const store = new Map<string, number>();
const muted = new Set<number>();
let corrupt = 0;
let truncate = 0;

function get(unit: number, table: Table, address: number): number {
  const v = store.get(`${unit}:${table}:${address}`);
  if (v !== undefined) return v;
  if (table === "coil" || table === "discrete") return address % 3 === 0 ? 1 : 0;
  return (unit * 7 + address) & 0xffff;
}

function set(unit: number, table: Table, address: number, value: number): void {
  store.set(`${unit}:${table}:${address}`, value);
}

const out = new TextEncoder();
function log(line: unknown): void {
  if (!quiet) Deno.stdout.writeSync(out.encode(JSON.stringify(line) + "\n"));
}

/** Answers one request PDU; undefined means stay silent. */
function handle(unit: number, pdu: Uint8Array): Uint8Array | undefined {
  const fc = pdu[0];
  const view = new DataView(pdu.buffer, pdu.byteOffset, pdu.byteLength);
  const address = view.getUint16(1);
  const count = view.getUint16(3);
  if (unit < units.lo || unit > units.hi || muted.has(unit)) {
    log({ unit, fc, address, count, silent: true });
    return undefined;
  }
  const exception = (ex: number) => {
    log({ unit, fc, address, count, ex });
    return Uint8Array.of(fc | 0x80, ex);
  };
  if (fc === 3 && address < 50100 && address + count > 50000) return exception(6);
  if (fc === 3 && address < 60100 && address + count > 60000) return exception(2);
  log({ unit, fc, address, count });
  switch (fc) {
    case 1:
    case 2: {
      if (count < 1 || count > 2000 || address + count > 65536) return exception(3);
      const bytes = new Uint8Array(Math.ceil(count / 8));
      for (let i = 0; i < count; i++) {
        if (get(unit, fc === 1 ? "coil" : "discrete", address + i)) bytes[i >> 3] |= 1 << (i & 7);
      }
      return Uint8Array.of(fc, bytes.length, ...bytes);
    }
    case 3:
    case 4: {
      if (count < 1 || count > 125) return exception(3);
      if (address + count > 65536) return exception(2);
      const res = new Uint8Array(2 + count * 2);
      res[0] = fc;
      res[1] = count * 2;
      const rv = new DataView(res.buffer);
      for (let i = 0; i < count; i++) {
        rv.setUint16(2 + 2 * i, get(unit, fc === 3 ? "holding" : "input", address + i));
      }
      return res;
    }
    case 5:
      set(unit, "coil", address, count === 0xff00 ? 1 : 0);
      return pdu.slice(0, 5);
    case 6:
      set(unit, "holding", address, count);
      return pdu.slice(0, 5);
    case 15:
      for (let i = 0; i < count; i++) {
        set(unit, "coil", address + i, (pdu[6 + (i >> 3)] >> (i & 7)) & 1);
      }
      return pdu.slice(0, 5);
    case 16:
      for (let i = 0; i < count; i++) set(unit, "holding", address + i, view.getUint16(6 + 2 * i));
      return pdu.slice(0, 5);
  }
  return exception(1);
}

async function serveTcp(port: number): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("ready");
  for await (const conn of listener) {
    (async () => {
      let buf = new Uint8Array(0);
      const chunk = new Uint8Array(4096);
      try {
        for (;;) {
          const n = await conn.read(chunk);
          if (n === null) break;
          const joined = new Uint8Array(buf.length + n);
          joined.set(buf);
          joined.set(chunk.subarray(0, n), buf.length);
          buf = joined;
          while (buf.length >= 7) {
            const len = (buf[4] << 8) | buf[5];
            if (buf.length < 6 + len) break;
            const frame = buf.slice(0, 6 + len);
            buf = buf.slice(6 + len);
            const res = handle(frame[6], frame.subarray(7));
            if (!res) continue;
            const reply = new Uint8Array(7 + res.length);
            reply.set(frame.subarray(0, 4));
            reply[4] = (res.length + 1) >> 8;
            reply[5] = (res.length + 1) & 0xff;
            reply[6] = frame[6];
            reply.set(res, 7);
            await conn.write(reply);
          }
        }
      } catch {
        // Client went away.
      } finally {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    })();
  }
}

function requestLength(buf: Uint8Array): number | undefined {
  const fc = buf[1];
  if (fc >= 1 && fc <= 6) return 8;
  if (fc === 15 || fc === 16) return buf.length >= 7 ? 9 + buf[6] : undefined;
  return 8;
}

async function serveRtu(path: string): Promise<void> {
  const file = await Deno.open(path, { read: true, write: true });
  console.log("ready");
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(1024);
  for (;;) {
    const n = await file.read(chunk);
    if (n === null) continue;
    const joined = new Uint8Array(buf.length + n);
    joined.set(buf);
    joined.set(chunk.subarray(0, n), buf.length);
    buf = joined;
    while (buf.length >= 8) {
      const len = requestLength(buf);
      if (len === undefined || buf.length < len) break;
      const frame = buf.slice(0, len);
      const crc = crc16(frame.subarray(0, len - 2));
      if (crc !== (frame[len - 2] | (frame[len - 1] << 8))) {
        buf = buf.slice(1); // Resynchronise on the next byte.
        continue;
      }
      buf = buf.slice(len);
      const res = handle(frame[0], frame.subarray(1, len - 2));
      if (!res) continue;
      let reply = new Uint8Array(res.length + 3);
      reply[0] = frame[0];
      reply.set(res, 1);
      const c = crc16(reply.subarray(0, res.length + 1));
      reply[res.length + 1] = c & 0xff;
      reply[res.length + 2] = c >> 8;
      if (corrupt > 0) {
        corrupt--;
        reply[reply.length - 1] ^= 0x5a;
      } else if (truncate > 0) {
        truncate--;
        reply = reply.subarray(0, Math.max(3, reply.length - 3));
      }
      let off = 0;
      while (off < reply.length) off += await file.write(reply.subarray(off));
    }
  }
}

async function commands(): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of Deno.stdin.readable) {
    pending += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const [cmd, ...rest] = pending.slice(0, nl).trim().split(/\s+/);
      pending = pending.slice(nl + 1);
      if (cmd === "set") {
        const [unit, table, address, values] = rest;
        values.split(",").forEach((v, i) =>
          set(Number(unit), table as Table, Number(address) + i, Number(v))
        );
      } else if (cmd === "mute") muted.add(Number(rest[0]));
      else if (cmd === "unmute") muted.delete(Number(rest[0]));
      else if (cmd === "corrupt") corrupt = Number(rest[0]);
      else if (cmd === "truncate") truncate = Number(rest[0]);
      console.log(JSON.stringify({ ack: cmd }));
    }
  }
}

commands();
const tcp = opt("--tcp");
const rtu = opt("--rtu");
if (tcp) await serveTcp(Number(tcp));
else if (rtu) await serveRtu(rtu);
else throw new Error("usage: server.ts --tcp <port> | --rtu <device>");
