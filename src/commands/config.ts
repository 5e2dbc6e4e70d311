import {
  Ctx,
  type Infer,
  INVALID,
  type JsonSchema,
  type Path,
  s,
  Schema,
  show,
} from "../config/schema.ts";
import {
  COMMAND_NAMES,
  DEFAULT_PREFIX,
  FLEET_TARGET,
  type Scope,
  SCOPES,
} from "../protocol/mod.ts";

const KEY_RE = /^ed25519:[A-Za-z0-9+/]{43}=$/;

const keyText = s.string({
  pattern: KEY_RE,
  patternName: 'an operator public key "ed25519:BASE64" (as `outpost release keygen` prints)',
});

const keyObject = s.object({
  key: keyText.describe("The public key; use ${file:/path/key.pub} for a file"),
  scopes: s.array(s.enum(SCOPES), { min: 1 })
    .describe("What the key may do: read, operate and/or admin (each separately)"),
  name: s.string({ min: 1, max: 64 }).optional().describe("Who holds the key, for logs and audit"),
});

/** One entry of `commands.operatorKeys`, as validated. */
export interface OperatorKeyConfig {
  key: string;
  scopes: Scope[];
  name?: string;
}

/**
 * An operator key: `{key, scopes, name}`, or a plain `"ed25519:…"` string, which means a key with
 * the `read` scope only (the safe reading of the older form).
 */
class OperatorKeySchema extends Schema<OperatorKeyConfig> {
  check(v: unknown, ctx: Ctx, path: Path): OperatorKeyConfig | typeof INVALID {
    if (typeof v === "string") {
      const key = keyText.check(v, ctx, path);
      return key === INVALID ? INVALID : { key, scopes: ["read"] };
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return ctx.fail(
        path,
        `expected an operator key { key: "ed25519:…", scopes: [read, operate, admin], name: … } or a plain "ed25519:…" string (read only), got ${
          show(v)
        }`,
      );
    }
    const o = keyObject.check(v, ctx, path);
    if (o === INVALID) return INVALID;
    return { key: o.key, scopes: [...new Set(o.scopes)], ...(o.name ? { name: o.name } : {}) };
  }
  protected json(): JsonSchema {
    return { anyOf: [keyText.toJsonSchema(), keyObject.toJsonSchema()] };
  }
}

/** Config schema of the optional `commands:` section (remote commands over the MQTT uplink). */
export const commandsSchema = s.object({
  enabled: s.boolean().optional()
    .describe("Accept remote commands on the MQTT uplink's connection; on by default with mqtt"),
  prefix: s.string({
    min: 1,
    max: 200,
    pattern: /^[^/#+\s]+(\/[^/#+\s]+)*$/,
    patternName: "a topic prefix such as gateways (no wildcards, no leading or trailing /)",
  }).default(DEFAULT_PREFIX)
    .describe("Requests on {prefix}/{gatewayId}/cmd/{name} and {prefix}/fleet/cmd/{name}"),
  insecureUnsigned: s.boolean().default(false)
    .describe(
      "Accept unsigned requests with every scope (anyone who can publish on the broker commands the gateway); trusted test benches only",
    ),
  requireSignature: s.boolean().optional()
    .describe("Deprecated: signatures are always required; true is ignored, false is an error"),
  operatorKeys: s.array(new OperatorKeySchema()).default([])
    .describe(
      'Keys whose signed requests are accepted, each with scopes: { key: "ed25519:…", scopes: [read, operate, admin], name: alice }; a plain string is a read-only key',
    ),
  replayWindow: s.duration({ min: 1000, max: 86_400_000 }).default(300_000)
    .describe("A request's ts must be this close to the gateway clock; ids are remembered as long"),
  allow: s.array(s.enum(COMMAND_NAMES), { min: 1 }).optional()
    .describe("Commands this gateway accepts; all when absent"),
  query: s.object({
    pageRows: s.integer({ min: 1, max: 50_000 }).default(2000)
      .describe("Most readings in one page reply"),
    pageBytes: s.bytes({ min: 1024, max: 16 * 1024 * 1024 }).default(64 * 1024)
      .describe("Largest page reply (keep under the broker's message limit; AWS IoT: 128KB)"),
    inflight: s.integer({ min: 1, max: 64 }).default(4)
      .describe("Pages published and not yet acknowledged (PUBACK) at once"),
  }).default({ pageRows: 2000, pageBytes: 64 * 1024, inflight: 4 })
    .describe("Paging of query replies"),
  configDeadline: s.duration({ min: 1000, max: 3_600_000 }).default(60_000)
    .describe("Default time a config-set has to become healthy before it is reverted"),
}, {
  refine: (c, ctx, path) => {
    if (c.requireSignature === false) {
      ctx.fail(
        [...path, "requireSignature"],
        "requireSignature was removed: remote commands always need an operator signature now. " +
          "To accept unsigned commands anyway (anyone on the broker can then run them), set " +
          "commands.insecureUnsigned: true",
      );
    }
  },
});

/** Validated `commands:` config. */
export type CommandsConfig = Infer<typeof commandsSchema>;

interface ConfigView {
  gateway: { id: string };
  uplink?: Record<string, unknown>;
  commands?: CommandsConfig;
}

/** Cross-section checks of `commands:` against the gateway id and the uplink. */
export function checkCommandsConfig(c: ConfigView, ctx: Ctx): void {
  const id = c.gateway.id;
  if (id === FLEET_TARGET) {
    ctx.fail(
      ["gateway", "id"],
      `"${FLEET_TARGET}" is reserved: {prefix}/${FLEET_TARGET}/cmd/... addresses every gateway`,
    );
  }
  const type = c.uplink?.type;
  const cmds = c.commands;
  if (cmds && cmds.enabled !== false && type !== "mqtt") {
    ctx.fail(
      cmds.enabled === true ? ["commands", "enabled"] : ["commands"],
      `remote commands ride on the MQTT uplink, and ${
        type ? `uplink.type is ${type}` : "there is no uplink"
      }; use an mqtt uplink or set commands.enabled: false`,
    );
  }
  if (commandsOf(c) && id.includes("/")) {
    ctx.fail(
      ["gateway", "id"],
      `expected no "/" in the gateway id when remote commands are on (it is one topic level), got "${id}"`,
    );
  }
}

/** The effective commands config: defaults applied, undefined when commands are off. */
export function commandsOf(c: ConfigView): CommandsConfig | undefined {
  if (c.uplink?.type !== "mqtt") return undefined;
  if (c.commands?.enabled === false) return undefined;
  return c.commands ?? COMMANDS_DEFAULTS;
}

const defaults = commandsSchema.check({}, new Ctx(), []);
if (defaults === INVALID) throw new Error("commands schema has required keys");
const COMMANDS_DEFAULTS: CommandsConfig = defaults;
