/**
 * How the fleet console reaches the broker: a YAML connection file (`--connection`), flags and
 * environment variables, validated with the MQTT uplink's own schema pieces.
 */
import { type Infer, s } from "../config/schema.ts";
import { loadConfigFile } from "../config/load.ts";
import { BROKER_URL } from "../common/mqtt.ts";
import { tlsSchema } from "../common/tls.ts";
import { DEFAULT_PREFIX } from "../protocol/mod.ts";
import type { FleetConnection } from "./client.ts";

const pageUrl = s.string({
  pattern: /^https?:\/\/[^\s]+$/,
  patternName: "an http(s) URL such as https://{id}.plant.example.com:8080/",
});

/** Where each gateway's own page is, when its status does not say (`pageUrl`). */
export const fleetPagesSchema = s.object({
  url: pageUrl.optional()
    .describe("Pattern for every gateway; {id} and {site} are replaced (URL-encoded)"),
  sites: s.record(pageUrl).optional().describe("Pattern per site (the site in the status)"),
  gateways: s.record(pageUrl).optional().describe("URL per gateway id"),
});

/** A validated `pages:` section. */
export type FleetPages = Infer<typeof fleetPagesSchema>;

/**
 * The link to a gateway's own page: the `pageUrl` its status gives, else the connection file's
 * `pages.gateways[id]`, `pages.sites[site]`, `pages.url`; null when none applies.
 */
export function gatewayPageUrl(
  g: { id: string; site: string | null; pageUrl: string | null },
  pages: FleetPages | undefined,
): string | null {
  if (g.pageUrl) return g.pageUrl;
  if (!pages) return null;
  const own = (m: Record<string, string> | undefined, k: string | null) =>
    m && k !== null && Object.hasOwn(m, k) ? m[k] : undefined;
  const pattern = own(pages.gateways, g.id) ?? own(pages.sites, g.site) ?? pages.url;
  if (!pattern) return null;
  if (pattern.includes("{site}") && g.site === null) return null;
  const url = pattern.replaceAll("{id}", encodeURIComponent(g.id))
    .replaceAll("{site}", encodeURIComponent(g.site ?? ""));
  return /^https?:\/\/[^\s]+$/.test(url) ? url : null;
}

/** Schema of a `--connection` file; the same keys as the MQTT uplink where they overlap. */
export const fleetConnectionSchema = s.object({
  url: s.string({
    pattern: BROKER_URL,
    patternName: "a broker URL such as mqtts://broker.example.com:8883",
  }).describe("Broker URL: mqtt:// (plain) or mqtts:// (TLS)"),
  clientId: s.string({ min: 1, max: 128 }).optional()
    .describe("MQTT client id; defaults to outpost-fleet-<random>"),
  username: s.string().optional().describe("Username; use ${ENV} or ${file:...}"),
  password: s.string().optional().describe("Password; use ${ENV} or ${file:...}"),
  tls: tlsSchema.optional().describe("TLS and mutual TLS settings (files, PEM)"),
  prefix: s.string({
    min: 1,
    pattern: /^[^/#+\s]+(\/[^/#+\s]+)*$/,
    patternName: "a topic prefix such as gateways (no wildcards, no leading or trailing /)",
  }).default(DEFAULT_PREFIX).describe("The gateways' commands.prefix"),
  statusTopic: s.string({ min: 1 }).optional()
    .describe("MQTT filter of every gateway's status topic; default {prefix}/+/status"),
  key: s.string({ min: 1 }).optional()
    .describe("Operator key file (outpost release keygen) that signs every command"),
  pages: fleetPagesSchema.optional()
    .describe("Links to each gateway's own page on the fleet page (when its status has none)"),
  connectTimeout: s.duration({ min: 1000 }).default(10_000),
  keepalive: s.duration({ min: 1000, max: 3_600_000 }).default(30_000),
});

/** A validated `--connection` file. */
export type FleetConnectionFile = Infer<typeof fleetConnectionSchema>;

/** Connection flags as the CLI parsed them (strings, unvalidated). */
export interface ConnectionFlags {
  connection?: string;
  broker?: string;
  ca?: string;
  cert?: string;
  "cert-key"?: string;
  servername?: string;
  username?: string;
  "password-file"?: string;
  prefix?: string;
  "status-topic"?: string;
  key?: string;
}

/** A connection setting is missing or wrong; the CLI prints it as bad usage (exit 2). */
export class FleetConfigError extends Error {
  override name = "FleetConfigError";
}

/** Environment variables the console reads. */
export const FLEET_ENV = {
  broker: "OUTPOST_BROKER",
  username: "OUTPOST_BROKER_USERNAME",
  password: "OUTPOST_BROKER_PASSWORD",
} as const;

/**
 * Merges, in rising priority: the connection file, the environment, the flags. The password
 * comes only from the file (`${ENV}` / `${file:…}`), `$OUTPOST_BROKER_PASSWORD` or
 * `--password-file`, never from the command line itself.
 */
export function resolveConnection(
  flags: ConnectionFlags,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): { connection: FleetConnection; keyFile?: string; pages?: FleetPages } {
  const file = flags.connection
    ? loadConfigFile(flags.connection, fleetConnectionSchema)
    : undefined;
  const url = flags.broker ?? env(FLEET_ENV.broker) ?? file?.url;
  if (!url) {
    throw new FleetConfigError(
      `no broker: give --broker mqtts://host:8883, $${FLEET_ENV.broker} or --connection FILE`,
    );
  }
  if (!BROKER_URL.test(url)) {
    throw new FleetConfigError(
      `--broker: expected a broker URL such as mqtts://broker.example.com:8883, got "${url}"`,
    );
  }
  if ((flags.cert === undefined) !== (flags["cert-key"] === undefined)) {
    throw new FleetConfigError("--cert and --cert-key go together (mutual TLS)");
  }
  let password = env(FLEET_ENV.password) ?? file?.password;
  if (flags["password-file"]) {
    try {
      password = Deno.readTextFileSync(flags["password-file"]).replace(/\r?\n$/, "");
    } catch (e) {
      throw new FleetConfigError(
        `Cannot read --password-file "${flags["password-file"]}": ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  const tls = {
    ...file?.tls,
    ...(flags.ca ? { ca: flags.ca } : {}),
    ...(flags.cert ? { cert: flags.cert, key: flags["cert-key"] } : {}),
    ...(flags.servername ? { servername: flags.servername } : {}),
  };
  const prefix = flags.prefix ?? file?.prefix ?? DEFAULT_PREFIX;
  if (!/^[^/#+\s]+(\/[^/#+\s]+)*$/.test(prefix)) {
    throw new FleetConfigError(
      `--prefix: expected a topic prefix such as gateways (no wildcards, no leading or trailing /), got "${prefix}"`,
    );
  }
  return {
    connection: {
      url,
      clientId: file?.clientId,
      username: flags.username ?? env(FLEET_ENV.username) ?? file?.username,
      password,
      tls: Object.keys(tls).length ? tls : undefined,
      prefix,
      statusTopic: flags["status-topic"] ?? file?.statusTopic,
      connectTimeout: file?.connectTimeout,
      keepalive: file?.keepalive,
    },
    keyFile: flags.key ?? file?.key,
    pages: file?.pages,
  };
}
