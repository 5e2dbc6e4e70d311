/**
 * The `outpost` command line: one table of commands ({@linkcode COMMANDS}), each parsed and
 * documented by `src/common/cli.ts`; the handlers live one file per area beside this one and
 * call the composition root (`src/app.ts`) or the library parts they need.
 */
import { type Command, commandHelp, commandList, parseCommand, UsageError } from "../common/cli.ts";
import { ConfigError, formatProblem } from "../config/load.ts";
import { FLEET_COMMAND, fleetMain } from "../fleet/mod.ts";
import { VERSION } from "../version.ts";
import { checkConfigCommand, schemaCommand } from "./config.ts";
import type { CliDeps } from "./deps.ts";
import { doctorCommand } from "./doctor.ts";
import { exportCommand } from "./export.ts";
import { releaseCommand } from "./release.ts";
import { devicesCommand } from "./devices.ts";
import { runCommand } from "./run.ts";
import { statusCommand, tokenCommand } from "./status.ts";
import { updateCommand } from "./update.ts";

export { configJsonSchema } from "./config.ts";
export type { CliDeps } from "./deps.ts";
export { formatStatus } from "./status.ts";
export { UsageError } from "../common/cli.ts";

/** Exit status: success. */
export const EXIT_OK = 0;
/** Exit status: runtime failure. */
export const EXIT_FAILURE = 1;
/** Exit status: bad usage or bad config. */
export const EXIT_USAGE = 2;

const versionCommand: Command<CliDeps> = {
  name: "version",
  summary: "Print the version",
  usage: "Usage: outpost version [--json]",
  options: { json: { type: "boolean", help: "version, Deno version and architecture as JSON" } },
  run: (args) => {
    console.log(
      args.flag("json")
        ? JSON.stringify({ version: VERSION, deno: Deno.version.deno, arch: Deno.build.arch })
        : `outpost ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.target})`,
    );
    return EXIT_OK;
  },
};

/** `outpost fleet` parses its own arguments with the same table module (src/fleet/cli.ts). */
const fleetCommand: Command<CliDeps> = {
  name: FLEET_COMMAND.name,
  summary: FLEET_COMMAND.summary,
};

/** Every `outpost` command, in the order of the help. */
export const COMMANDS: readonly Command<CliDeps>[] = [
  runCommand,
  checkConfigCommand,
  statusCommand,
  tokenCommand,
  exportCommand,
  schemaCommand,
  updateCommand,
  releaseCommand,
  doctorCommand,
  devicesCommand,
  fleetCommand,
  versionCommand,
];

/** The top-level help, listing {@linkcode COMMANDS}. */
export function mainHelp(): string {
  return `outpost ${VERSION} — IoT edge gateway

Usage: outpost <command> [options]

Commands:
${commandList(COMMANDS)}

Run "outpost <command> --help" for a command's options. Operating a gateway: docs/operations.md;
releases and self-update: docs/releasing.md.
Exit status: 0 ok, 1 runtime failure, 2 bad usage or config.`;
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[], deps: CliDeps): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(mainHelp());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === "fleet") return await fleetMain(rest);
  const cmd = COMMANDS.find((c) => c.name === (name === "--version" ? "version" : name));
  if (!cmd) {
    console.error(`outpost: unknown command "${name}"\n\n${mainHelp()}`);
    return EXIT_USAGE;
  }
  try {
    const inv = parseCommand(cmd, rest);
    if (inv.help) {
      console.log(commandHelp(cmd));
      return EXIT_OK;
    }
    return await inv.command.run!(inv.args, deps);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`outpost ${name}: ${e.message}${e.help ? `\n\n${e.help}` : ""}`);
      return EXIT_USAGE;
    }
    if (e instanceof ConfigError) {
      console.error(e.problems.map(formatProblem).join("\n"));
      return EXIT_USAGE;
    }
    console.error(`outpost ${name}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
}
