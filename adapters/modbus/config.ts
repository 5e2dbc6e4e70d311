import { type Infer, s } from "../../src/config/schema.ts";

/** Modbus data tables a register map entry can live in. */
export const FUNCTIONS = ["coil", "discrete", "holding", "input"] as const;
/** Value types a register map entry can decode to. */
export const TYPES = [
  "bool",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "float32",
  "int64",
  "uint64",
  "float64",
  "string",
] as const;
/** Byte/word orders of multi-register values: A is the most significant byte. */
export const ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"] as const;

/** Registers one value of `type` occupies; strings give their own `length`. */
export function registerCount(type: (typeof TYPES)[number], length?: number): number {
  switch (type) {
    case "bool":
    case "int16":
    case "uint16":
      return 1;
    case "int32":
    case "uint32":
    case "float32":
      return 2;
    case "int64":
    case "uint64":
    case "float64":
      return 4;
    case "string":
      return length ?? 1;
  }
}

const register = s.object({
  name: s.id().describe("Metric name of the readings"),
  function: s.enum(FUNCTIONS).describe(
    "Data table: coil (FC1/5), discrete input (FC2), holding register (FC3/6/16), input register (FC4)",
  ),
  address: s.integer({ min: 0, max: 65535 }).describe("Protocol address, 0-based (40001 is 0)"),
  type: s.enum(TYPES).optional()
    .describe("Value type; bool for coils and discrete inputs, uint16 for registers by default"),
  length: s.integer({ min: 1, max: 125 }).optional()
    .describe("Registers a string occupies (2 characters each); strings only"),
  bit: s.integer({ min: 0, max: 15 }).optional()
    .describe(
      "Bit of a register a bool reads (0 = least significant); without it, non-zero is true",
    ),
  order: s.enum(ORDERS).optional()
    .describe("Byte/word order; defaults to the device's, then the profile's, then ABCD"),
  scale: s.number().default(1).describe("Multiplier applied to the raw number"),
  offset: s.number().default(0).describe("Added after scaling: value = raw × scale + offset"),
  decimals: s.integer({ min: 0, max: 12 }).optional().describe("Round the value to these digits"),
  unit: s.string({ max: 32 }).optional().describe("Unit of the readings"),
}, {
  refine: (r, ctx, path) => {
    const bitTable = r.function === "coil" || r.function === "discrete";
    if (bitTable && r.type !== undefined && r.type !== "bool") {
      ctx.fail([...path, "type"], `expected bool for a ${r.function}, got "${r.type}"`);
    }
    if (r.type === "string" && r.length === undefined) {
      ctx.fail(path, `missing required key "length" (registers of the string "${r.name}")`);
    }
    if (r.type !== "string" && r.length !== undefined) {
      ctx.fail(
        [...path, "length"],
        `"length" applies to type string only, not ${r.type ?? "the default type"}`,
      );
    }
    if (r.bit !== undefined && (bitTable || (r.type ?? "uint16") !== "bool")) {
      ctx.fail([...path, "bit"], `"bit" applies to type bool in a holding or input register only`);
    }
    const end = r.address + (bitTable ? 1 : registerCount(r.type ?? "uint16", r.length));
    if (end > 65536) {
      ctx.fail(
        [...path, "address"],
        `expected address + size ≤ 65536, got ${r.address} + ${end - r.address}`,
      );
    }
    if (r.scale === 0) ctx.fail([...path, "scale"], "expected a non-zero scale, got 0");
  },
});

/** Schema of one register map entry. */
export type RegisterConfig = Infer<typeof register>;

const group = s.object({
  name: s.id().optional().describe("Group name for logs; defaults to g1, g2…"),
  interval: s.duration({ min: 10, max: 86_400_000 }).default(1000)
    .describe("Time between two polls of the group"),
  registers: s.array(register, { min: 1 }).describe("Register map entries polled together"),
});

/** Schema of one poll group. */
export type GroupConfig = Infer<typeof group>;

const profile = s.object({
  order: s.enum(ORDERS).optional().describe("Default byte/word order of the profile's entries"),
  groups: s.array(group, { min: 1 }).describe("Poll groups of the device type"),
});

const tcp = s.object({
  host: s.string({ min: 1, max: 253 }).describe("Host name or IP address of the server"),
  port: s.integer({ min: 1, max: 65535 }).default(502).describe("TCP port"),
});

const rtu = s.object({
  port: s.string({ min: 1, max: 256 }).describe("Serial device, e.g. /dev/ttyUSB0"),
  baudRate: s.integer({ min: 50, max: 4_000_000 }).describe("Line speed in bit/s"),
  parity: s.enum(["none", "even", "odd"] as const).default("none").describe("Parity bit"),
  dataBits: s.integer({ min: 7, max: 8 }).default(8).describe("Data bits per character"),
  stopBits: s.integer({ min: 1, max: 2 }).default(1).describe("Stop bits per character"),
});

/** Settings of one serial line. */
export type RtuConfig = Infer<typeof rtu>;

const device = s.object({
  name: s.id().describe("Device id of the readings"),
  unitId: s.integer({ min: 0, max: 255 }).default(1).describe("Modbus unit (slave) id"),
  tcp: tcp.optional().describe("Modbus TCP server of the device"),
  rtu: rtu.optional().describe("Serial line of the device (Modbus RTU)"),
  profile: s.id().optional().describe(
    "Name of a profile under `profiles:` giving the register map",
  ),
  order: s.enum(ORDERS).optional().describe("Default byte/word order of this device's entries"),
  groups: s.array(group).optional().describe("Poll groups of this device, added to its profile's"),
  timeout: s.duration({ min: 10, max: 60_000 }).default(1000)
    .describe("How long to wait for one response"),
  retries: s.integer({ min: 0, max: 10 }).default(2)
    .describe("Further attempts of a request after a timeout, CRC error or busy device"),
  retryDelay: s.duration({ min: 0, max: 60_000 }).default(100)
    .describe("Wait before the first retry; doubles on each further retry"),
  unavailableInterval: s.duration({ min: 100, max: 3_600_000 }).default(30_000)
    .describe("Poll cadence of a device that stopped answering, until it answers again"),
  maxGap: s.integer({ min: 0, max: 124 }).default(0)
    .describe("Unmapped registers (or coils) one read may span to merge two ranges"),
  maxRegistersPerRead: s.integer({ min: 1, max: 125 }).default(125)
    .describe("Largest register read the device accepts"),
  maxBitsPerRead: s.integer({ min: 1, max: 2000 }).default(2000)
    .describe("Largest coil or discrete input read the device accepts"),
}, {
  refine: (d, ctx, path) => {
    if ((d.tcp === undefined) === (d.rtu === undefined)) {
      ctx.fail(path, `device "${d.name}" needs exactly one of "tcp" or "rtu"`);
    }
    if (d.profile === undefined && !d.groups?.length) {
      ctx.fail(path, `device "${d.name}" needs a "profile" or "groups"`);
    }
  },
});

/** Schema of one device. */
export type DeviceConfig = Infer<typeof device>;

function sameLine(a: RtuConfig, b: RtuConfig): boolean {
  return a.baudRate === b.baudRate && a.parity === b.parity && a.dataBits === b.dataBits &&
    a.stopBits === b.stopBits;
}

/** Config schema of the `modbus` adapter. */
export const modbusSchema = s.object({
  profiles: s.record(profile).default({})
    .describe("Reusable register maps by device type; devices refer to one with `profile:`"),
  devices: s.array(device, { min: 1 }).describe("Modbus devices to poll"),
}, {
  refine: (c, ctx, path) => {
    const names = new Map<string, number>();
    const lines = new Map<string, { line: RtuConfig; index: number }>();
    c.devices.forEach((d, i) => {
      const at = [...path, "devices", i];
      const prev = names.get(d.name);
      if (prev !== undefined) {
        ctx.fail([...at, "name"], `duplicate device name "${d.name}" (also devices[${prev}])`);
      } else names.set(d.name, i);
      if (d.profile !== undefined && !(d.profile in c.profiles)) {
        const known = Object.keys(c.profiles);
        ctx.fail(
          [...at, "profile"],
          `unknown profile "${d.profile}"; expected one of ${
            known.length ? known.join(", ") : "(none defined)"
          }`,
        );
        return;
      }
      if (d.rtu) {
        const other = lines.get(d.rtu.port);
        if (other && !sameLine(other.line, d.rtu)) {
          ctx.fail(
            [...at, "rtu"],
            `serial port "${d.rtu.port}" is set up differently in devices[${other.index}]; devices on one line share its settings`,
          );
        } else if (!other) lines.set(d.rtu.port, { line: d.rtu, index: i });
      }
      const groups = [...(d.profile ? c.profiles[d.profile].groups : []), ...(d.groups ?? [])];
      const metrics = new Set<string>();
      for (const g of groups) {
        for (const r of g.registers) {
          if (metrics.has(r.name)) {
            ctx.fail(at, `device "${d.name}" maps metric "${r.name}" more than once`);
          }
          metrics.add(r.name);
          const size = registerCount(r.type ?? "uint16", r.length);
          if (r.function !== "coil" && r.function !== "discrete" && size > d.maxRegistersPerRead) {
            ctx.fail(
              [...at, "maxRegistersPerRead"],
              `metric "${r.name}" spans ${size} registers, more than maxRegistersPerRead ${d.maxRegistersPerRead}`,
            );
          }
        }
      }
    });
  },
});

/** Validated config of the `modbus` adapter. */
export type ModbusConfig = Infer<typeof modbusSchema>;
