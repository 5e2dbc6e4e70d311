/** `outpost check-config` and `outpost schema`: the config file, checked or described. */
import type { Command } from "../common/cli.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { type CliDeps, loadConfig } from "./deps.ts";

/** The JSON Schema of the config file. */
export function configJsonSchema(deps: CliDeps): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://outpost.dev/schema/config.json",
    title: "Outpost gateway config",
    ...gatewaySchema(deps.adapters).toJsonSchema(),
  };
}

/** `outpost check-config`. */
export const checkConfigCommand: Command<CliDeps> = {
  name: "check-config",
  summary: "Validate a config file and exit",
  usage: `Usage: outpost check-config FILE

Validates FILE; prints every problem as file:line:col key.path: message. Exit 2 when invalid.`,
  options: {
    config: { type: "string", short: "c", arg: "FILE", help: "the config file, instead of FILE" },
  },
  positionals: 1,
  run: (args, deps) => {
    const file = args.positionals[0] ?? args.string("config");
    if (!file) throw args.usage("missing FILE");
    const config = loadConfig(file, deps);
    const enabled = config.adapters.filter((a) => a.enabled);
    console.log(
      `${file}: ok — gateway "${config.gateway.id}", ${enabled.length} adapter(s) (${
        enabled.map((a) => `${a.name}:${a.type}`).join(", ") || "none"
      }), uplink ${config.uplink ? (config.uplink as unknown as { type: string }).type : "none"}`,
    );
    return 0;
  },
};

/** `outpost schema`. */
export const schemaCommand: Command<CliDeps> = {
  name: "schema",
  summary: "Print the config JSON Schema",
  usage: `Usage: outpost schema

Prints the JSON Schema of the config file (config/schema.json), for editors.`,
  run: (_args, deps) => {
    console.log(JSON.stringify(configJsonSchema(deps), null, 2));
    return 0;
  },
};
