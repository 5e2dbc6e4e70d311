/**
 * One way to connect to an MQTT broker, for every MQTT client in Outpost: the uplink, the
 * `mqtt` and `zigbee2mqtt` adapters (through `src/adapter.ts`), the `mqtt:` rule actions and
 * the fleet console. It builds mqtt.js options from config (TLS and mutual TLS from PEM files,
 * credentials, client id, clean session, keepalive, connect timeout, last will), and gives one
 * reconnect backoff: exponential with full jitter, 1 s to 5 s by default.
 *
 * @example
 * ```ts
 * const client = connectMqtt({ url: "mqtts://broker.lan:8883", tls: { ca: "ca.pem" } }, {
 *   reconnect: DEFAULT_RECONNECT,
 * });
 * ```
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { writeToStream } from "mqtt-packet";
import { type BackoffBounds, backoffDelay } from "./timing.ts";

// mqtt.js writes packet ids and lengths from a table of 65,536 two-byte Buffers that mqtt-packet
// builds on the first packet: about 9 MB of live heap, which keeps a gateway's heap and RSS that
// much higher. A 2-byte Buffer per number instead costs nothing measurable at 30k messages/s.
// Process-wide, and set here because every MQTT client in Outpost goes through this module.
writeToStream.cacheNumbers = false;

/** URLs a broker connection takes: mqtt:// (plain) or mqtts:// (TLS), host and optional port. */
export const BROKER_URL: RegExp = /^mqtts?:\/\/[^\s/]+(:\d+)?\/?$/;

/** Reconnect delays when none are configured: the first retry within 1 s, none later than 5 s. */
export const DEFAULT_RECONNECT: BackoffBounds = { min: 1000, max: 5000 };

/** TLS files (PEM) of a broker connection, as in a config's `tls:`. */
export interface MqttTls {
  ca?: string;
  cert?: string;
  key?: string;
  /** Server name to verify, when it differs from the URL host. */
  servername?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

/** Where and how to connect, as the config gives it. */
export interface MqttConnection {
  /** mqtt:// or mqtts:// broker URL. */
  url: string;
  clientId?: string;
  username?: string;
  password?: string;
  tls?: MqttTls;
  /** Clean session; default true. */
  clean?: boolean;
  /** ms; default 30 s. */
  keepalive?: number;
  /** ms; default 15 s. */
  connectTimeout?: number;
}

/** Options of {@linkcode mqttClientOptions} and {@linkcode connectMqtt}. */
export interface MqttClientOptions {
  /** Client id when the connection names none; default: mqtt.js's random one. */
  clientId?: string;
  /** Last will, published by the broker when the connection is lost. */
  will?: IClientOptions["will"];
  /**
   * Reconnect this client after a drop, with {@linkcode reconnectDelay} between attempts;
   * publishes made meanwhile wait in it. Default: no reconnect (the caller makes a new client).
   */
  reconnect?: BackoffBounds;
}

/** A broker connection could not be set up (an unreadable TLS file). */
export class BrokerSetupError extends Error {
  override name = "BrokerSetupError";
}

function readPem(path: string | undefined, key: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    throw new BrokerSetupError(
      `Cannot read TLS file "${path}" (tls.${key}): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * The mqtt.js options of a connection: TLS files read now (throws {@linkcode BrokerSetupError}
 * naming the file), MQTT 3.1.1, no mqtt.js reconnect unless asked for.
 */
export function mqttClientOptions(
  conn: MqttConnection,
  options: MqttClientOptions = {},
): IClientOptions {
  const tls = conn.tls;
  return {
    clientId: conn.clientId ?? options.clientId,
    username: conn.username,
    password: conn.password,
    clean: conn.clean ?? true,
    keepalive: Math.ceil((conn.keepalive ?? 30_000) / 1000),
    connectTimeout: conn.connectTimeout ?? 15_000,
    // Reconnects follow our backoff (keepReconnecting), not mqtt.js's fixed period.
    reconnectPeriod: 0,
    protocolVersion: 4,
    queueQoSZero: false,
    will: options.will,
    ca: readPem(tls?.ca, "ca"),
    cert: readPem(tls?.cert, "cert"),
    key: readPem(tls?.key, "key"),
    servername: tls?.servername,
    rejectUnauthorized: tls?.rejectUnauthorized ?? true,
  };
}

/**
 * Connects a new client (see {@linkcode mqttClientOptions}); with `reconnect`, it keeps
 * reconnecting with backoff. Throws {@linkcode BrokerSetupError} for an unreadable TLS file;
 * connection failures arrive as the client's `error` and `close` events.
 */
export function connectMqtt(conn: MqttConnection, options: MqttClientOptions = {}): MqttClient {
  const client = mqtt.connect(conn.url, mqttClientOptions(conn, options));
  if (options.reconnect) keepReconnecting(client, options.reconnect);
  return client;
}

/**
 * Makes mqtt.js reconnect `client` after a drop or a failed attempt, waiting
 * {@linkcode reconnectDelay} before each attempt; the streak restarts once connected.
 * Subscriptions made after this call are renewed on each reconnect.
 */
export function keepReconnecting(
  client: MqttClient,
  bounds: BackoffBounds = DEFAULT_RECONNECT,
): void {
  let attempt = 0;
  // mqtt.js reads the period when a connection closes, so it is set one attempt ahead.
  const next = () => client.options.reconnectPeriod = reconnectDelay(attempt++, bounds);
  next();
  client.on("reconnect", next);
  client.on("connect", () => {
    attempt = 0;
    next();
  });
}

/**
 * Delay before reconnect attempt `attempt` (0 = the first after a drop): the ceiling doubles
 * from `min` and is capped at `max`; full jitter draws between `min / 2` and the ceiling, so a
 * fleet coming back after a broker outage does not reconnect in lockstep.
 */
export function reconnectDelay(
  attempt: number,
  bounds: BackoffBounds,
  random: () => number = Math.random,
): number {
  // backoffDelay's ceiling for (attempt + 1, min / 2) is min * 2^attempt; its floor is min / 2.
  return backoffDelay(attempt + 1, { min: bounds.min / 2, max: bounds.max }, { random });
}

/** Whether `topic` matches the MQTT topic filter `filter` (`+` one level, `#` the rest). */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i > 0 || !topic.startsWith("$");
    if (i >= t.length) return false;
    if (f[i] === "+") {
      if (i === 0 && topic.startsWith("$")) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Turns a connection error into words an operator can act on. */
export function describeMqttError(e: unknown): string {
  const err = e as { code?: string | number; message?: string };
  const msg = String(err?.message ?? e);
  const code = err?.code !== undefined ? String(err.code) : "";
  const m = msg.toLowerCase();
  // "received fatal alert" means the broker ended the handshake: it judged our side.
  if (/received fatal alert/.test(m)) {
    if (/certificaterequired|certificate required/.test(m)) {
      return `broker requires a client certificate (${msg})`;
    }
    return `broker rejected the client certificate (${msg})`;
  }
  if (/unknown ?ca|unknownissuer|unable to get local issuer|self.signed|self signed/.test(m)) {
    return `server certificate not trusted (${msg})`;
  }
  if (/certificate ?required|certificaterequired|alert.*116/.test(m)) {
    return `broker requires a client certificate (${msg})`;
  }
  if (/bad ?certificate|badcertificate|unknown_ca|decrypt|alert/.test(m)) {
    return `certificate rejected by the broker (${msg})`;
  }
  if (/hostname|altname|not valid for|notvalidforname/.test(m)) {
    return `server certificate does not match the host name (${msg})`;
  }
  if (code === "ECONNREFUSED" || /connection refused/.test(m)) return "connection refused";
  if (/not authorized|bad user name or password|connection refused: /.test(m)) {
    return `broker refused the connection: ${msg}`;
  }
  if (/timeout|timed out/.test(m)) return `timed out (${msg})`;
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
