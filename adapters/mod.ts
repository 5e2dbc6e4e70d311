import type { AdapterModule } from "../src/adapter.ts";
import { simulated } from "./simulated/mod.ts";

/**
 * Every built-in adapter, registered statically so `deno compile` embeds them. The key is the
 * YAML `type:`.
 */
export const adapters: Record<string, AdapterModule<any>> = {
  [simulated.type]: simulated,
};
