/** `outpost doctor`: the host checked against the gateway's security checklist. */
import type { Command } from "../common/cli.ts";
import { DEFAULT_CONFIG, doctorContext, formatReport, runChecks } from "../doctor/mod.ts";
import type { CliDeps } from "./deps.ts";

/** `outpost doctor`. */
export const doctorCommand: Command<CliDeps> = {
  name: "doctor",
  summary: "Check the host against the security checklist",
  usage: `Usage: outpost doctor [--config FILE] [--root DIR] [--unit NAME] [--workdir DIR] [--json]

Checks this machine: IP forwarding off, sshd (public keys only, no root password login, only
from the jumphost), buffer and keys on an encrypted disk (LUKS), no stray listening services,
secret file modes, no default passwords, the uplink's TLS, time synchronised, eMMC wear and the
unit's sandbox. Prints pass/warn/fail/skip per check with the reason and the fix. Run it as root
to read everything (the unit's environment file is root's only). Exit status 1 when a check
fails. docs/install-cm4.md installs a box on which every check passes.`,
  options: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      help: "the gateway's config file",
      default: `${DEFAULT_CONFIG} when it exists`,
    },
    root: {
      type: "string",
      arg: "DIR",
      help: "read every file (the config too) under DIR instead of / (a prepared tree, for tests)",
    },
    unit: { type: "string", arg: "NAME", help: "the systemd unit", default: "outpost.service" },
    workdir: {
      type: "string",
      arg: "DIR",
      help: "where the config's relative paths point",
      default: "the unit's WorkingDirectory=, else the current directory",
    },
    json: { type: "boolean", help: "print the report as JSON" },
  },
  run: (args, deps) => {
    const root = args.string("root") ?? "/";
    try {
      if (!Deno.statSync(root).isDirectory) throw new Error("not a directory");
    } catch (e) {
      throw args.usage(`--root: cannot use "${root}": ${(e as Error).message}`);
    }
    const { ctx, checks } = doctorContext({
      root,
      configPath: args.string("config"),
      unit: args.string("unit"),
      workdir: args.string("workdir"),
      adapters: deps.adapters,
    });
    const report = runChecks(ctx, checks);
    console.log(args.flag("json") ? JSON.stringify(report, null, 2) : formatReport(report));
    return report.ok ? 0 : 1;
  },
};
