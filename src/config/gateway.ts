import type { AdapterModule } from "../adapter.ts";
import {
  Ctx,
  type Infer,
  INVALID,
  type JsonSchema,
  ObjectSchema,
  type Path,
  s,
  Schema,
} from "./schema.ts";
import { mqttUplinkSchema } from "../uplink/mqtt_config.ts";
import { httpsUplinkSchema } from "../uplink/https_config.ts";
import { aggregateSchema, checkRuleRefs, filterSchema, ruleSchema } from "../edge/config.ts";
import { updateSchema } from "../update/config.ts";

/** Config schema of the buffer. */
export const bufferSchema = s.object({
  path: s.string({ min: 1 }).default("data/buffer.db").describe("SQLite file of the buffer"),
  maxRows: s.integer({ min: 1000 }).default(50_000_000).describe("Cap on stored readings"),
  maxBytes: s.bytes({ min: 1024 * 1024 }).default(4 * 1024 ** 3)
    .describe("Cap on the database size"),
  minFreeDisk: s.bytes().default(256 * 1024 ** 2)
    .describe("Free space to leave on the disk; below it the buffer acts as full"),
  overflow: s.enum(["drop-oldest", "reject-new"] as const).default("drop-oldest")
    .describe("At a cap: drop forwarded then oldest rows, or refuse new readings"),
  retention: s.duration({ min: 0 }).default(30 * 86_400_000)
    .describe("How long forwarded readings are kept for export and queries"),
  commitInterval: s.duration({ min: 1, max: 1000 }).default(20)
    .describe("Longest wait before a group of readings is committed"),
  commitRows: s.integer({ min: 1, max: 100_000 }).default(1000)
    .describe("Commit as soon as this many readings are waiting"),
  integrityCheck: s.boolean().default(true)
    .describe("Run SQLite's quick_check at start; a corrupt file is moved aside"),
});

/** Validated buffer config. */
export type BufferConfig = Infer<typeof bufferSchema>;

/** Config schema of the local HTTP server. */
export const httpSchema = s.object({
  listen: s.string({
    pattern: /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/,
    patternName: "host:port such as 127.0.0.1:8787",
  }).default("127.0.0.1:8787").describe("Address of /healthz, /status and /metrics"),
  enabled: s.boolean().default(true).describe("Serve the local HTTP endpoints"),
});

/** Validated HTTP config. */
export type HttpConfig = Infer<typeof httpSchema>;

/** Validates `{}` against an object schema to get its defaults. */
function defaultsOf<T>(schema: Schema<T>): T {
  const v = schema.check({}, new Ctx(), []);
  if (v === INVALID) throw new Error("schema has required keys; it has no defaults");
  return v;
}

/** One `adapters:` entry: type, name, enabled, and the adapter's own keys as `config`. */
export interface AdapterEntry {
  type: string;
  name: string;
  enabled: boolean;
  config: unknown;
}

const entryShape = {
  name: s.id().describe("Adapter instance name, unique in this file; tags its logs"),
  enabled: s.boolean().default(true).describe("Set false to keep the entry but not run it"),
};

/** Splits `name` and `enabled` off an adapter entry and validates the rest with its own schema. */
class AdapterEntrySchema extends Schema<AdapterEntry> {
  readonly #own: Schema<unknown>;
  constructor(own: Schema<unknown>) {
    super();
    this.#own = own;
  }
  check(v: unknown, ctx: Ctx, path: Path): AdapterEntry | typeof INVALID {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(path, `expected a mapping, got ${typeof v}`);
    }
    const { type, name, enabled, ...rest } = v as Record<string, unknown>;
    const head = s.object(entryShape).check({ name, enabled }, ctx, path);
    const config = this.#own.check(rest, ctx, path);
    if (head === INVALID || config === INVALID) return INVALID;
    return { type: String(type), name: head.name, enabled: head.enabled, config };
  }
  protected json(): JsonSchema {
    const own = this.#own.toJsonSchema();
    const props = (own.properties ?? {}) as Record<string, JsonSchema>;
    const merged = new ObjectSchema(entryShape).toJsonSchema();
    return {
      ...own,
      properties: { type: {}, ...(merged.properties as object), ...props },
      required: ["name", ...((own.required as string[] | undefined) ?? [])],
      additionalProperties: false,
    };
  }
}

/** Builds the whole gateway schema from the registered adapters and uplinks. */
export function gatewaySchema(
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>,
  // deno-lint-ignore no-explicit-any
  extraUplinks: Record<string, Schema<any>> = {},
) {
  const adapterVariants: Record<string, Schema<AdapterEntry>> = {};
  for (const [type, mod] of Object.entries(adapters)) {
    adapterVariants[type] = new AdapterEntrySchema(mod.schema);
  }
  const log = s.object({
    level: s.enum(["debug", "info", "warn", "error"] as const).default("info"),
    format: s.enum(["text", "json"] as const).default("text"),
  });
  return s.object({
    gateway: s.object({
      id: s.id().describe("Gateway id, unique in the fleet (AWS IoT: the thing name)"),
      site: s.string().optional().describe("Free text: where this gateway is"),
    }),
    buffer: bufferSchema.default(defaultsOf(bufferSchema)),
    uplink: s.tagged<Record<string, unknown>>("type", {
      mqtt: s.object(mqttUplinkSchema.shape, { passthrough: ["type"] }) as unknown as Schema<
        Record<string, unknown>
      >,
      https: httpsUplinkSchema as unknown as Schema<Record<string, unknown>>,
      ...extraUplinks,
    }).optional().describe("Where readings go; without it the gateway only buffers"),
    http: httpSchema.default(defaultsOf(httpSchema)),
    log: log.default(defaultsOf(log)),
    adapters: s.array(s.tagged("type", adapterVariants)).default([])
      .describe("Protocol adapters to run"),
    filters: s.array(filterSchema).default([])
      .describe("Per device/metric filters applied before the buffer (range, deadband, ...)"),
    aggregate: s.array(aggregateSchema).default([])
      .describe("Tumbling windows (min/max/mean/last/count) emitted as readings"),
    rules: s.array(ruleSchema).default([])
      .describe("Local alarm rules and their actions; they run without the uplink"),
    update: updateSchema.optional()
      .describe("Self-update from a signed release channel (A/B slots, trial, rollback)"),
  }, {
    refine: (c, ctx) => {
      const seen = new Map<string, number>();
      c.adapters.forEach((a, i) => {
        const prev = seen.get(a.name);
        if (prev !== undefined) {
          ctx.fail(
            ["adapters", i, "name"],
            `duplicate adapter name "${a.name}" (also adapters[${prev}])`,
          );
        }
        seen.set(a.name, i);
      });
      checkRuleRefs(c.rules, c.adapters.map((a) => a.name), ctx);
    },
  });
}

/** The validated gateway config. */
export type GatewayConfig = Infer<ReturnType<typeof gatewaySchema>>;
