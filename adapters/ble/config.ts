import { type Infer, s } from "../../src/config/schema.ts";
import { FIELD_TYPES, type FieldType } from "./_layout.ts";

/** Decoders built into the adapter; layouts declared under `layouts:` add more. */
export const BUILTIN_DECODERS = ["bthome", "ruuvi"] as const;

const address = () =>
  s.string({
    pattern: /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/,
    patternName: 'a Bluetooth address such as "A4:C1:38:0B:5E:10"',
  });

const uuid = () =>
  s.string({
    pattern:
      /^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$/,
    patternName: 'a service UUID such as "fcd2" or "0000fcd2-0000-1000-8000-00805f9b34fb"',
  });

const companyId = () => s.integer({ min: 0, max: 0xffff });

const decoder = () =>
  s.string({ min: 1 }).describe(`${BUILTIN_DECODERS.join(", ")} or the name of a layout`);

const interval = () =>
  s.duration({ min: 0, max: 86_400_000 }).optional()
    .describe("Emit this device at most once per interval (overrides the adapter's interval)");

const field = s.object({
  metric: s.id().describe("Metric name of the value"),
  offset: s.integer({ min: 0, max: 255 }).describe("Byte offset in the payload"),
  type: s.enum(Object.keys(FIELD_TYPES) as FieldType[]).describe("How the bytes encode the value"),
  scale: s.number().default(1).describe("Multiplier applied to the raw value"),
  unit: s.string({ max: 32 }).optional().describe("Unit of the scaled value"),
});

const layout = s.object({
  manufacturer: companyId().optional()
    .describe("Read the manufacturer data of this company id (e.g. 0x0059 for Nordic)"),
  serviceData: uuid().optional().describe("Read the service data of this UUID"),
  fields: s.array(field, { min: 1 }).describe("Values in the payload"),
}, {
  refine: (l, ctx, path) => {
    if ((l.manufacturer === undefined) === (l.serviceData === undefined)) {
      ctx.fail(
        path,
        'expected exactly one of "manufacturer" or "serviceData" as the payload source',
      );
    }
    const seen = new Set<string>();
    l.fields.forEach((f, i) => {
      if (f.metric === "rssi") {
        ctx.fail([...path, "fields", i, "metric"], '"rssi" is reserved for the signal strength');
      }
      if (seen.has(f.metric)) {
        ctx.fail([...path, "fields", i, "metric"], `duplicate metric "${f.metric}"`);
      }
      seen.add(f.metric);
    });
  },
});

const device = s.object({
  name: s.id().describe("Device id of its readings"),
  address: address().describe("Bluetooth address (bluetoothctl shows it while scanning)"),
  decoder: decoder(),
  interval: interval(),
});

const discover = s.object({
  serviceUuid: uuid().optional().describe("Accept any device advertising this service UUID"),
  manufacturer: companyId().optional().describe(
    "Accept any device sending manufacturer data of this company id",
  ),
  decoder: decoder(),
  prefix: s.id().describe("Device ids are {prefix}-{address as 12 lowercase hex digits}"),
  interval: interval(),
}, {
  refine: (d, ctx, path) => {
    if ((d.serviceUuid === undefined) === (d.manufacturer === undefined)) {
      ctx.fail(path, 'expected exactly one of "serviceUuid" or "manufacturer"');
    }
  },
});

/** Config schema of the `ble` adapter. */
export const bleSchema = s.object({
  bus: s.enum(["system", "session"] as const).default("system")
    .describe("D-Bus bus where BlueZ (org.bluez) is; busAddress overrides it"),
  busAddress: s.string({
    pattern: /^(unix|tcp):\S+$/,
    patternName: 'a D-Bus address such as "unix:path=/run/dbus/system_bus_socket"',
  })
    .optional().describe("Explicit D-Bus address of the bus"),
  adapter: s.string({ pattern: /^[A-Za-z0-9_]+$/, patternName: 'an adapter name such as "hci0"' })
    .optional().describe("Bluetooth adapter to scan with; default: the first one BlueZ lists"),
  interval: s.duration({ min: 0, max: 86_400_000 }).default(30_000)
    .describe("Emit each device at most once per interval, with its latest values"),
  rssi: s.boolean().default(true).describe(
    "Add the signal strength (metric rssi, dBm) to each emission",
  ),
  staleAfter: s.duration({ min: 1000 }).default(300_000)
    .describe("Mark a device offline after this long without a decodable advertisement"),
  retryInterval: s.duration({ min: 50, max: 600_000 }).default(5000)
    .describe("How often to look again for BlueZ or the adapter while they are missing"),
  layouts: s.record(layout).default({}).describe("Byte layouts of custom sensors, by decoder name"),
  devices: s.array(device).default([]).describe("Known devices, by address"),
  discover: s.array(discover).default([])
    .describe("Accept unlisted devices by advertised service UUID or manufacturer id"),
}, {
  refine: (c, ctx, path) => {
    if (c.devices.length === 0 && c.discover.length === 0) {
      ctx.fail(path, 'expected at least one entry in "devices" or "discover"');
    }
    for (const name of Object.keys(c.layouts)) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._:\-\/]*$/.test(name)) {
        ctx.fail(
          [...path, "layouts", name],
          "expected a layout name of letters, digits and ._:-/",
          true,
        );
      } else if ((BUILTIN_DECODERS as readonly string[]).includes(name)) {
        ctx.fail(
          [...path, "layouts", name],
          `"${name}" is a built-in decoder; choose another name`,
          true,
        );
      }
    }
    const known = [...new Set([...BUILTIN_DECODERS, ...Object.keys(c.layouts)])];
    const checkDecoder = (d: string, at: (string | number)[]) => {
      if (!known.includes(d)) {
        ctx.fail(at, `unknown decoder "${d}"; expected one of ${known.join(", ")}`);
      }
    };
    const names = new Map<string, number>();
    const addresses = new Map<string, number>();
    c.devices.forEach((d, i) => {
      const at = [...path, "devices", i];
      checkDecoder(d.decoder, [...at, "decoder"]);
      const prevName = names.get(d.name);
      if (prevName !== undefined) {
        ctx.fail([...at, "name"], `duplicate device name "${d.name}" (also devices[${prevName}])`);
      }
      names.set(d.name, i);
      const key = d.address.toUpperCase();
      const prevAddr = addresses.get(key);
      if (prevAddr !== undefined) {
        ctx.fail([...at, "address"], `duplicate address ${key} (also devices[${prevAddr}])`);
      }
      addresses.set(key, i);
    });
    c.discover.forEach((d, i) => checkDecoder(d.decoder, [...path, "discover", i, "decoder"]));
  },
});

/** Validated config of the `ble` adapter. */
export type BleConfig = Infer<typeof bleSchema>;
