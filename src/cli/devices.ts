/** `outpost devices`: field devices and their artifacts, through the running gateway. */
import type { Args, Command } from "../common/cli.ts";
import type { DevicesStatus } from "../devices/mod.ts";
import { localUrl } from "../http/local.ts";
import { readTokenFile, tokenPath } from "../http/token.ts";
import { type CliDeps, loadConfig } from "./deps.ts";

async function call(args: Args, deps: CliDeps, method: string, path: string): Promise<Response> {
  const file = args.string("config");
  if (!file) throw args.usage("missing --config FILE");
  const config = loadConfig(file, deps);
  if (!config.devices) throw new Error(`${file} has no devices: section`);
  const base = localUrl(config.http);
  const client = config.http.tls
    ? Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(config.http.tls.cert)] })
    : undefined;
  try {
    return await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${readTokenFile(tokenPath(config))}` },
      signal: AbortSignal.timeout(5000),
      ...(client ? { client } : {}),
    });
  } catch (e) {
    throw new Error(`Cannot reach the gateway at "${base}": ${(e as Error).message}`, { cause: e });
  } finally {
    client?.close();
  }
}

/** Renders the devices section of /status for a terminal. */
export function formatDevices(d: DevicesStatus): string {
  const lines = [];
  for (const [name, a] of Object.entries(d.artifacts)) {
    lines.push(
      `artifact ${name} ${a.version || "-"}${
        a.previous ? ` (previous ${a.previous.version})` : ""
      }${a.refused ? `  REFUSED ${a.refused.version}: ${a.refused.code}` : ""}`,
    );
  }
  for (const [cls, r] of Object.entries(d.rollouts)) {
    lines.push(
      `rollout  ${cls}: ${r.name} ${r.version} ${r.status.toUpperCase()}, ${r.failures} failed${
        r.reason ? ` (${r.reason})` : ""
      }`,
    );
  }
  for (const x of d.devices) {
    lines.push(
      `device   ${x.id.padEnd(20)} ${x.class.padEnd(20)} ${x.state.padEnd(12)} runs ${
        x.running ?? "?"
      }${x.target ? `, offered ${x.target.version}` : ""}${x.error ? `  (${x.error})` : ""}`,
    );
  }
  return lines.join("\n");
}

const OPTIONS = {
  config: { type: "string", short: "c", arg: "FILE", help: "the gateway's config file" },
} as const;

/** `outpost devices`. */
export const devicesCommand: Command<CliDeps> = {
  name: "devices",
  summary: "Field devices' artifacts and rollouts: status, resume",
  usage: `Usage: outpost devices status --config FILE [--json]
       outpost devices resume --config FILE --class CLASS

status shows the device artifacts the gateway holds, each class's rollout and each device's
state. resume lets a rollout that stopped at its failure threshold go on (the failures so far no
longer count). Both talk to the running gateway with its access token. From the fleet console,
\`outpost fleet send devices-resume --gateway G --args '{"class":"CLASS"}'\` does the same with
an operate key. See docs/devices.md.`,
  options: OPTIONS,
  subcommands: [
    {
      name: "status",
      summary: "artifacts, rollouts and device states",
      options: { json: { type: "boolean", help: "print JSON" } },
      run: async (args, deps) => {
        const res = await call(args, deps, "GET", "/status");
        if (!res.ok) throw new Error(`/status answered ${res.status}: ${await res.text()}`);
        const d = (await res.json()).deviceUpdates as DevicesStatus;
        console.log(args.flag("json") ? JSON.stringify(d, null, 2) : formatDevices(d));
        return 0;
      },
    },
    {
      name: "resume",
      summary: "let a stopped rollout go on",
      options: { class: { type: "string", arg: "CLASS", help: "the device class" } },
      run: async (args, deps) => {
        const cls = args.string("class");
        if (!cls) throw args.usage("resume: missing --class CLASS");
        const res = await call(
          args,
          deps,
          "POST",
          `/devices/resume?class=${encodeURIComponent(cls)}`,
        );
        const body = await res.json().catch(() => ({}));
        if (!res.ok) {
          console.error(`devices resume: ${body.error ?? `HTTP ${res.status}`}`);
          return 1;
        }
        console.log(`rollout of class ${cls} resumed`);
        return 0;
      },
    },
  ],
};
