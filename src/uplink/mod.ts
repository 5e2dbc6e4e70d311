import type { Logger } from "../log.ts";
import { MqttUplink } from "./mqtt.ts";
import type { MqttUplinkConfig } from "./mqtt_config.ts";
import type { Uplink } from "./uplink.ts";
import { HttpsUplink } from "./https.ts";
import type { HttpsUplinkConfig } from "./https_config.ts";

export * from "./uplink.ts";
export { decodeBatch } from "./encode.ts";
export { fitStatus, STATUS_BUDGET_BYTES, STATUS_SCHEMA, statusBudget } from "./status_budget.ts";
export { httpsUplinkSchema } from "./https_config.ts";
export { mqttUplinkSchema } from "./mqtt_config.ts";
export type { HttpsUplinkConfig, MqttUplinkConfig };

/** Uplink config as validated by the gateway schema (tagged by `type`). */
export type UplinkConfig =
  | ({ type: "mqtt" } & MqttUplinkConfig)
  | ({ type: "https" } & HttpsUplinkConfig);

/** What every uplink is given. */
export interface UplinkDeps {
  gatewayId: string;
  epoch: string;
  version: string;
  log: Logger;
}

/** Makes the uplink named by `config.type`. */
export function createUplink(config: UplinkConfig, deps: UplinkDeps): Uplink {
  switch (config.type) {
    case "mqtt":
      return new MqttUplink({ config, ...deps });
    case "https":
      return new HttpsUplink({ config, ...deps });
  }
  throw new Error(`unknown uplink type "${(config as { type: string }).type}"`);
}
