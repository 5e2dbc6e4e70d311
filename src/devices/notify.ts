/**
 * How devices learn of an offer and report back: zigbee2mqtt-style topics on the local broker
 * (`<prefix>/<device>/update/available`, retained; `<prefix>/<device>/update/state` from the
 * device), and an optional program run per offer for devices that need a vendor tool.
 *
 * @module
 */
import type { MqttClient } from "mqtt";
import { connectMqtt, describeMqttError, type MqttConnection } from "../common/mqtt.ts";
import type { Logger } from "../log.ts";
import type { DeviceReport } from "./rollout.ts";

/** What a device is told: the artifact to fetch and check. */
export interface Offer {
  device: string;
  name: string;
  version: string;
  url: string;
  sha256: string;
  size: number;
}

/** Largest state message read from a device. */
const MAX_STATE_BYTES = 4096;

/** The MQTT side: offers out, reports in. */
export class DeviceMqtt {
  readonly #client: MqttClient;
  readonly #prefix: string;
  readonly #log: Logger;
  #connected = false;

  constructor(
    conn: MqttConnection,
    o: {
      prefix: string;
      clientId: string;
      log: Logger;
      /** A report from a device, its id from the topic (any id: the caller checks it). */
      onReport(id: string, r: unknown): void;
    },
  ) {
    this.#prefix = o.prefix;
    this.#log = o.log;
    this.#client = connectMqtt(conn, {
      clientId: o.clientId,
      reconnect: { min: 500, max: 10_000 },
    });
    const filter = `${o.prefix}/+/update/state`;
    this.#client.on("connect", () => {
      this.#connected = true;
      this.#client.subscribe(filter, { qos: 1 });
      this.#log.info("device topics subscribed", { filter });
    });
    this.#client.on("close", () => this.#connected = false);
    this.#client.on(
      "error",
      (e) => this.#log.warn("device broker", { error: describeMqttError(e) }),
    );
    const levels = o.prefix.split("/").length;
    this.#client.on("message", (topic, payload) => {
      const id = topic.split("/")[levels];
      if (payload.length > MAX_STATE_BYTES) {
        this.#log.warn("device state message too large; dropped", {
          device: id,
          bytes: payload.length,
        });
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder().decode(payload));
      } catch {
        this.#log.warn("device state message is not JSON; dropped", { device: id });
        return;
      }
      o.onReport(id, body);
    });
  }

  /** Whether the broker connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Publishes an offer on the device's topic, retained (a device that reconnects sees it). */
  offer(o: Offer): Promise<void> {
    const { device, ...body } = o;
    return new Promise((resolve, reject) =>
      this.#client.publish(
        `${this.#prefix}/${device}/update/available`,
        JSON.stringify(body),
        { qos: 1, retain: true },
        (e) => e ? reject(e) : resolve(),
      )
    );
  }

  /** Disconnects. */
  async close(): Promise<void> {
    await this.#client.endAsync().catch(() => {});
  }
}

/** Runs the configured program for one offer; resolves with its exit code. */
export async function runOfferHook(
  hook: { command: string; args: string[]; timeout: number },
  o: Offer & { path: string },
  log: Logger,
): Promise<number> {
  const cmd = new Deno.Command(hook.command, {
    args: hook.args,
    // Only what the offer needs: the gateway's environment may hold other devices' tokens.
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      OUTPOST_DEVICE: o.device,
      OUTPOST_ARTIFACT_NAME: o.name,
      OUTPOST_ARTIFACT_VERSION: o.version,
      OUTPOST_ARTIFACT_PATH: o.path,
      OUTPOST_ARTIFACT_URL: o.url,
      OUTPOST_ARTIFACT_SHA256: o.sha256,
      OUTPOST_ARTIFACT_SIZE: String(o.size),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(hook.timeout),
  });
  try {
    const out = await cmd.output();
    const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    (out.success ? log.info : log.warn)("device offer hook ran", {
      device: o.device,
      code: out.code,
      ...(out.success || !tail ? {} : { stderr: tail.slice(0, 300) }),
    });
    return out.code;
  } catch (e) {
    log.warn("device offer hook failed to run", { device: o.device, error: (e as Error).message });
    return -1;
  }
}

/** Parses a report coming over MQTT; undefined (logged by the caller) when malformed. */
export function reportOf(body: unknown): DeviceReport | undefined {
  const b = body as Record<string, unknown>;
  if (!b || typeof b !== "object" || typeof b.version !== "string") return undefined;
  if (!/^[0-9A-Za-z.+-]{1,64}$/.test(b.version)) return undefined;
  return {
    version: b.version,
    state: typeof b.state === "string" ? b.state.slice(0, 32) : undefined,
    error: typeof b.error === "string" ? b.error.slice(0, 200) : undefined,
  };
}
