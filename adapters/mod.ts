import type { AdapterRegistry } from "../src/adapter.ts";
import { simulated } from "./simulated/mod.ts";
import { mqtt } from "./mqtt/mod.ts";
import { zigbee2mqtt } from "./zigbee2mqtt/mod.ts";
import { httpAdapter } from "./http/mod.ts";
import { modbus } from "./modbus/mod.ts";
import { exec } from "./exec/mod.ts";
import { ble } from "./ble/mod.ts";

/**
 * Every built-in adapter, registered statically so `deno compile` embeds them. The key is the
 * YAML `type:`, the folder name and the log tag (`mod_test.ts` checks they agree).
 */
export const adapters = {
  simulated,
  modbus,
  exec,
  mqtt,
  zigbee2mqtt,
  http: httpAdapter,
  ble,
} satisfies AdapterRegistry;
