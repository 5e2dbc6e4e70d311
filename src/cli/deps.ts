/** What every `outpost` command gets from the binary that embeds the CLI. */
import type { AdapterModule } from "../adapter.ts";
import type { GatewayConfig } from "../config/gateway.ts";
import { loadGatewayConfig } from "../app.ts";

/** What the CLI needs from the binary that embeds it. */
export interface CliDeps {
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
}

/** Loads and validates a config file with every adapter the binary embeds. */
export function loadConfig(path: string, deps: CliDeps): GatewayConfig {
  return loadGatewayConfig(path, deps.adapters);
}
