import type { AdapterModule, AdapterRegistry } from "../adapter.ts";
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
import { httpsUplinkSchema, mqttUplinkSchema } from "../uplink/mod.ts";
import { aggregateSchema, checkRuleRefs, filterSchema, ruleSchema } from "../edge/mod.ts";
import { updateSchema } from "../update/mod.ts";
import { checkCommandsConfig, commandsSchema } from "../commands/mod.ts";
import { checkUrlCredentials } from "./credentials.ts";
import { checkConflicts } from "./conflicts.ts";
import { isLoopbackListen } from "../common/net.ts";

export { isLoopbackListen };
import { EnduranceSchema } from "../buffer/mod.ts";
import { devicesSchema } from "../devices/mod.ts";

/** Config schema of the buffer. */
export const bufferSchema = s.object({
  path: s.string({ min: 1 }).default("data/buffer.db").describe("SQLite file of the buffer"),
  maxRows: s.integer({ min: 1000 }).default(50_000_000).describe("Cap on stored readings"),
  maxBytes: s.bytes({ min: 1024 * 1024 }).default(4 * 1024 ** 3)
    .describe("Cap on the database size"),
  maxSeries: s.integer({ min: 100 }).default(50_000)
    .describe(
      "Most distinct device/metric series the buffer takes (each costs heap for the file's life); readings of new ones beyond it are dropped and counted",
    ),
  minFreeDisk: s.bytes().default(256 * 1024 ** 2)
    .describe("Free space to leave on the disk; below it the buffer acts as full"),
  reserve: s.bytes().default(8 * 1024 ** 2)
    .describe(
      "Spare file kept beside the buffer (<path>.reserve) and released when the disk fills, so eviction and checkpoints still run; 0 turns it off",
    ),
  overflow: s.enum(["drop-oldest", "reject-new"] as const).default("drop-oldest")
    .describe("At a cap: drop forwarded then oldest rows, or refuse new readings"),
  retention: s.duration({ min: 0 }).default(30 * 86_400_000)
    .describe("How long forwarded readings are kept for export and queries"),
  commitInterval: s.duration({ min: 1, max: 1000 }).default(20)
    .describe("Longest wait before a group of readings is committed"),
  commitWindow: s.duration({ min: 1, max: 1000 }).default(1000)
    .describe(
      "Longest wait before a commit when readings trickle in (fewer than 32 waiting): at most one such commit per window, to spare the flash",
    ),
  commitRows: s.integer({ min: 1, max: 100_000 }).default(1000)
    .describe("Commit as soon as this many readings are waiting"),
  storageEndurance: new EnduranceSchema().optional()
    .describe(
      "Rated endurance (TBW) of the storage holding the buffer, e.g. 30TB: status and metrics project its years of life at the gateway's write rate",
    ),
  integrityCheck: s.boolean().default(true)
    .describe("Run SQLite's quick_check at start; a corrupt file is moved aside"),
});

/** Validated buffer config. */
export type BufferConfig = Infer<typeof bufferSchema>;

const LISTEN = {
  pattern: /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/,
  patternName: "host:port such as 127.0.0.1:8787",
};

/** Config schema of the local HTTP server. */
export const httpSchema = s.object({
  listen: s.string(LISTEN).default("127.0.0.1:8787")
    .describe(
      "Address of the gateway page, /status, /metrics and /healthz; one other than loopback " +
        "needs tls (or allowInsecure)",
    ),
  enabled: s.boolean().default(true).describe("Serve the local HTTP endpoints"),
  tokenFile: s.string({ min: 1 }).optional()
    .describe(
      "File holding the access token, created (mode 0600) on first run; default: http-token " +
        "next to buffer.path",
    ),
  tls: s.object({
    cert: s.string({ min: 1 }).describe("PEM certificate (chain) file"),
    key: s.string({ min: 1 }).describe("PEM private key file"),
  }).optional().describe("Serve HTTPS with this certificate and key"),
  allowInsecure: s.boolean().default(false)
    .describe(
      "Allow a listen address other than loopback without tls: the token and all data travel " +
        "in clear (trusted networks only)",
    ),
  pageUrl: s.string({
    pattern: /^https?:\/\/[^\s/@]+(\/\S*)?$/,
    patternName: "an http(s) URL without credentials",
  })
    .optional()
    .describe(
      "Address at which operators reach this gateway's page (e.g. over the site VPN); published " +
        "in the status so the fleet page links to it",
    ),
  healthListen: s.string(LISTEN).optional()
    .describe(
      "Loopback address serving only /healthz in plain HTTP, for the self-updater and local " +
        "supervisors when listen uses tls",
    ),
}, {
  refine: (h, ctx, path) => {
    if (!isLoopbackListen(h.listen) && !h.tls && !h.allowInsecure) {
      ctx.fail(
        [...path, "listen"],
        `"${h.listen}" accepts connections from other machines, and without tls the access ` +
          `token and the gateway's data would cross the network in clear: add ` +
          `tls: { cert: FILE, key: FILE }, listen on 127.0.0.1, or set allowInsecure: true ` +
          `(trusted networks only)`,
      );
    }
    if (h.healthListen !== undefined) {
      if (!isLoopbackListen(h.healthListen)) {
        ctx.fail(
          [...path, "healthListen"],
          `expected a loopback address such as 127.0.0.1:8788, got "${h.healthListen}"`,
        );
      } else if (h.healthListen === h.listen) {
        ctx.fail([...path, "healthListen"], `must differ from listen ("${h.listen}")`);
      }
    }
  },
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
export interface AdapterEntry<T extends string = string, C = unknown> {
  type: T;
  name: string;
  enabled: boolean;
  /** Silence after which a device of this entry shows as offline (ms); derived when unset. */
  offlineAfter?: number;
  config: C;
}

const entryShape = {
  name: s.id().describe("Adapter instance name, unique in this file; tags its logs"),
  enabled: s.boolean().default(true).describe("Set false to keep the entry but not run it"),
  offlineAfter: s.duration({ min: 1000, max: 30 * 86_400_000 }).optional().describe(
    "A device of this entry shows as offline after this long without a reading; default: 3 poll intervals for adapters that poll, else 3 of the device's usual intervals (at least 1 min; 5 min until known)",
  ),
};

/**
 * Splits `name` and `enabled` off an adapter entry and validates the rest with its own schema.
 * The `type` is set by the tagged union around it.
 */
class AdapterEntrySchema<C> extends Schema<Omit<AdapterEntry<string, C>, "type">> {
  readonly #own: Schema<C>;
  constructor(own: Schema<C>) {
    super();
    this.#own = own;
  }
  check(v: unknown, ctx: Ctx, path: Path): Omit<AdapterEntry<string, C>, "type"> | typeof INVALID {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(path, `expected a mapping, got ${typeof v}`);
    }
    const { type: _type, name, enabled, offlineAfter, ...rest } = v as Record<string, unknown>;
    const head = s.object(entryShape).check({ name, enabled, offlineAfter }, ctx, path);
    const config = this.#own.check(rest, ctx, path);
    if (head === INVALID || config === INVALID) return INVALID;
    return {
      name: head.name,
      enabled: head.enabled,
      ...(head.offlineAfter !== undefined ? { offlineAfter: head.offlineAfter } : {}),
      config,
    };
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

/** The entry schema of each registered adapter, keyed by its type. */
type EntrySchemas<A extends AdapterRegistry> = {
  [K in keyof A]: AdapterEntrySchema<A[K] extends AdapterModule<infer C> ? C : never>;
};

function entrySchemas<A extends AdapterRegistry>(adapters: A): EntrySchemas<A> {
  const out: Partial<EntrySchemas<A>> = {};
  for (const type of Object.keys(adapters) as (keyof A)[]) {
    out[type] = new AdapterEntrySchema(adapters[type].schema);
  }
  return out as EntrySchemas<A>;
}

/**
 * Builds the whole gateway schema from the registered adapters. `adapters:` entries validate to
 * a union discriminated by `type`, with each adapter's own config type when the registry's
 * types are known.
 */
export function gatewaySchema<A extends AdapterRegistry>(adapters: A) {
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
    uplink: s.tagged("type", {
      mqtt: s.object(mqttUplinkSchema.shape, { passthrough: ["type"] }),
      https: httpsUplinkSchema,
    }).optional().describe("Where readings go; without it the gateway only buffers"),
    http: httpSchema.default(defaultsOf(httpSchema)),
    log: log.default(defaultsOf(log)),
    adapters: s.array(s.tagged("type", entrySchemas(adapters))).default([])
      .describe("Protocol adapters to run"),
    filters: s.array(filterSchema).default([])
      .describe("Per device/metric filters applied before the buffer (range, deadband, ...)"),
    aggregate: s.array(aggregateSchema).default([])
      .describe("Tumbling windows (min/max/mean/last/count) emitted as readings"),
    rules: s.array(ruleSchema).default([])
      .describe("Local alarm rules and their actions; they run without the uplink"),
    update: updateSchema.optional()
      .describe("Self-update from a signed release channel (A/B slots, trial, rollback)"),
    commands: commandsSchema.optional()
      .describe("Remote commands over the MQTT uplink (restart, update, config, query, logs)"),
    devices: devicesSchema.optional()
      .describe("Firmware and model files for local field devices, from the release channel"),
  }, {
    refine: (c, ctx) => {
      checkConflicts(c, ctx, { adapters });
      checkRuleRefs(c.rules, c.adapters.map((a) => a.name), ctx);
      checkCommandsConfig(c, ctx);
      checkUrlCredentials(c, ctx);
      if (c.devices && (!c.update || !c.http.enabled)) {
        ctx.fail(
          ["devices"],
          "device artifacts come from the release channel and are served over the local HTTP " +
            "server: set update: (channel and its trust) and keep http enabled",
          true,
        );
      }
      if (c.update && c.http.enabled && c.http.tls && !c.http.healthListen) {
        ctx.fail(
          ["http", "tls"],
          "the self-updater checks a new version's /healthz over plain HTTP on loopback; with " +
            "tls set http.healthListen (e.g. 127.0.0.1:8788)",
          true,
        );
      }
    },
  });
}

/** The validated gateway config, with each adapter's `config` left `unknown` for the core. */
export type GatewayConfig = Infer<
  ReturnType<typeof gatewaySchema<Record<string, AdapterModule<unknown>>>>
>;
