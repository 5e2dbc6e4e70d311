/** `outpost run`: parses the arguments and hands them to the composition root. */
import { runWithUpdates } from "../app.ts";
import type { Command } from "../common/cli.ts";
import type { LogLevel } from "../log.ts";
import type { CliDeps } from "./deps.ts";

/** `outpost run`. */
export const runCommand: Command<CliDeps> = {
  name: "run",
  summary: "Run the gateway (--config FILE)",
  usage: `Usage: outpost run --config FILE [--log-format text|json] [--log-level LEVEL]

Runs the gateway until SIGTERM/SIGINT. SIGHUP reloads the config (validated first; the
buffer is never wiped). The gateway page and API (http.listen) need the access token that the
first run generates and prints once (see "outpost token --help"). Under systemd (Type=notify) it
sends READY=1 once serving, WATCHDOG=1 at half of WatchdogSec while healthy, STATUS= lines and
STOPPING=1. See docs/operations.md.`,
  options: {
    config: { type: "string", short: "c", arg: "FILE", help: "the config file (required)" },
    "log-format": {
      type: "string",
      choices: ["text", "json"],
      help: "overrides log.format of the config",
    },
    "log-level": {
      type: "string",
      choices: ["debug", "info", "warn", "error"],
      help: "overrides log.level of the config",
    },
  },
  run: async (args, deps) => {
    const configPath = args.string("config");
    if (!configPath) throw args.usage("missing --config FILE");
    return await runWithUpdates({
      configPath,
      adapters: deps.adapters,
      logFormat: args.string("log-format") as "text" | "json" | undefined,
      logLevel: args.string("log-level") as LogLevel | undefined,
      argv: args.raw,
    });
  },
};
