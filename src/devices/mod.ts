/**
 * Firmware and model distribution to local field devices: artifacts listed in the release
 * channel's signed metadata, fetched and verified by the gateway, served over its HTTP server
 * with per-device tokens and Range resume, offered over MQTT or a program, rolled out per device
 * class in batches. See docs/devices.md.
 *
 * @module
 */
import type { MqttConnection } from "../common/mqtt.ts";
import type { Logger } from "../log.ts";
import type { UpdateConfig } from "../update/mod.ts";
import type { DevicesConfig } from "./config.ts";
import { renderDeviceMetrics } from "./metrics.ts";
import { DeviceService } from "./service.ts";
import { summarizeDevices } from "./summary.ts";

export { type DevicesConfig, devicesSchema } from "./config.ts";
export { type DeviceRoutes, parseRange } from "./http.ts";
export { renderDeviceMetrics } from "./metrics.ts";
export { DEVICE_STATES, type DeviceState } from "./rollout.ts";
export { DeviceService, type DevicesStatus } from "./service.ts";
export { type DeviceUpdatesSummary, summarizeDevices } from "./summary.ts";

/** The parts of the gateway config the device service reads. */
export interface DevicesHostConfig {
  gateway: { id: string };
  buffer: { path: string };
  http: { listen: string; tls?: unknown };
  adapters: { type: string; name: string; config: unknown }[];
  update?: unknown;
  devices?: unknown;
}

/** The device service's part of a gateway process, for the composition root. */
export interface DevicesPart {
  service: DeviceService;
  /** `/status` sections. */
  statusSections(): Record<string, unknown>;
  /** Fields of the retained status message (per class counts and rollout, for the fleet). */
  announce(): Record<string, unknown>;
  /** Prometheus text appended to /metrics. */
  metrics(): string;
  stop(): Promise<void>;
}

/** The broker of `devices.mqtt`: its own URL or that of the adapter entry it names. */
export function devicesBroker(c: DevicesHostConfig): MqttConnection | undefined {
  const d = c.devices as DevicesConfig;
  if (!d.mqtt) return undefined;
  if (d.mqtt.url) return { url: d.mqtt.url, username: d.mqtt.username, password: d.mqtt.password };
  const entry = c.adapters.find((a) =>
    d.mqtt!.adapter ? a.name === d.mqtt!.adapter : a.type === "mqtt" || a.type === "zigbee2mqtt"
  );
  const b = entry?.config as
    | { url?: string; username?: string; password?: string; tls?: MqttConnection["tls"] }
    | undefined;
  if (!b?.url) {
    throw new Error(
      d.mqtt.adapter
        ? `devices.mqtt.adapter: no mqtt or zigbee2mqtt adapter named "${d.mqtt.adapter}"`
        : "devices.mqtt: no mqtt or zigbee2mqtt adapter to take the broker from; set devices.mqtt.url",
    );
  }
  return { url: b.url, username: b.username, password: b.password, tls: b.tls };
}

/** Starts the device service of a gateway config with a `devices:` section. */
export async function startDevices(c: DevicesHostConfig, log: Logger): Promise<DevicesPart> {
  const config = c.devices as DevicesConfig;
  const bufferDir = c.buffer.path.includes("/")
    ? c.buffer.path.slice(0, c.buffer.path.lastIndexOf("/"))
    : ".";
  const host = c.http.listen.replace(/^0\.0\.0\.0:/, "127.0.0.1:").replace(/^\[::\]:/, "[::1]:");
  const service = await DeviceService.start({
    config,
    update: c.update as UpdateConfig,
    gatewayId: c.gateway.id,
    dataDir: config.dataDir ?? `${bufferDir}/artifacts`,
    baseUrl: config.baseUrl ?? `${c.http.tls ? "https" : "http"}://${host}`,
    broker: devicesBroker(c),
    log,
  });
  return {
    service,
    statusSections: () => ({ deviceUpdates: service.status() }),
    announce: () => ({ deviceUpdates: summarizeDevices(service.status()) }),
    metrics: () => renderDeviceMetrics(service.status()),
    stop: () => service.stop(),
  };
}
