/** `outpost update`: the device side of self-update (check, apply, init, rollback, pin). */
import { healthUrl } from "../app.ts";
import { type Args, type Command, UsageError } from "../common/cli.ts";
import { localClient } from "../http/local.ts";
import { createLogger } from "../log.ts";
import {
  checkArtifact,
  checkRuntime,
  initWithRuntime,
  parseVersion,
  pinUpdates,
  readRootFile,
  rollbackByHand,
  Slots,
  unpinUpdates,
  type UpdateConfig,
  Updater,
  UpdateRefused,
} from "../update/mod.ts";
import { type CliDeps, loadConfig } from "./deps.ts";

async function updateInit(args: Args): Promise<number> {
  const installRoot = args.string("install-root");
  const artifact = args.string("artifact");
  const version = args.string("version");
  const rootFile = args.string("root");
  const runtime = args.string("runtime");
  if (!installRoot || !artifact || !version) {
    throw args.usage("init: needs --install-root, --artifact and --version");
  }
  if (!parseVersion(version)) {
    throw new UsageError(`--version: expected a semantic version, got "${version}"`);
  }
  if (runtime) await checkRuntime(runtime, Deno.build.target);
  await checkArtifact(artifact, {
    version: version,
    target: Deno.build.target,
    runtime,
  });
  const pinned = rootFile ? await readRootFile(rootFile) : undefined;
  const slots = new Slots(installRoot);
  await slots.init(artifact, version);
  if (runtime) await initWithRuntime(slots, runtime);
  if (rootFile) await Deno.copyFile(rootFile, `${slots.root}/root.json`);
  if (pinned) console.log(`pinned root version ${pinned.version} (${rootFile})`);
  console.log(`initialised ${installRoot}: slot a = ${version}, committed`);
  return 0;
}

/** The config of --config, which must have an update: section. */
function withUpdate(args: Args, deps: CliDeps, sub: string) {
  const path = args.string("config");
  if (!path) throw args.usage(`${sub}: missing --config FILE`);
  const config = loadConfig(path, deps);
  const uc = config.update as UpdateConfig | undefined;
  if (!uc) throw new UsageError(`${path}: has no update: section`);
  return { config, uc };
}

async function updateApply(args: Args, deps: CliDeps): Promise<number> {
  const { config } = withUpdate(args, deps, "apply");
  const client = localClient(config);
  const base = client.base;
  let pid: number;
  try {
    const res = await client.get("/status");
    if (!res.ok) throw new Error(`${base}/status answered ${res.status}: ${await res.text()}`);
    pid = (await res.json()).pid as number;
  } finally {
    client.close();
  }
  Deno.kill(pid, "SIGUSR2");
  console.log(`asked gateway pid ${pid} to check and apply now; watch ${base}/status (update)`);
  return 0;
}

async function updateCheck(args: Args, deps: CliDeps): Promise<number> {
  const { config, uc } = withUpdate(args, deps, "check");
  const log = createLogger({ level: "warn", format: "text" }).child("update");
  const updater = new Updater({ config: uc, gatewayId: config.gateway.id, log });
  try {
    // A look only: the replay counter is the running gateway's to advance.
    const r = await updater.check({ remember: false });
    if (r.kind === "none") {
      console.log(
        `${r.outcome.result}: ${r.outcome.version ?? ""}${
          r.outcome.reason ? ` (${r.outcome.reason})` : ""
        }`,
      );
    } else {
      console.log(
        `available: ${r.available.version} for ${r.available.target}, ${r.available.length} bytes from ${r.available.url}`,
      );
      const rt = r.available.runtime;
      if (rt) {
        console.log(`runtime: ${rt.key}, ${rt.length} bytes, sha256 ${rt.sha256} from ${rt.url}`);
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof UpdateRefused) {
      console.error(`update check: REFUSED (${e.code}): ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** `update rollback | pin | unpin`: the operator's hand on which version runs. */
async function updateHold(
  sub: "rollback" | "pin" | "unpin",
  args: Args,
  deps: CliDeps,
): Promise<number> {
  const path = args.string("config");
  const config = path ? loadConfig(path, deps) : undefined;
  const root = args.string("install-root") ??
    (config?.update as UpdateConfig | undefined)?.installRoot;
  if (!root || (sub === "rollback" && !config)) {
    throw args.usage(
      `${sub}: needs --config FILE${sub === "rollback" ? "" : " or --install-root DIR"}`,
    );
  }
  if (config && !config.update) throw new UsageError(`${path}: has no update: section`);
  const slots = new Slots(root);
  if (sub === "pin") {
    const p = await pinUpdates(slots, args.string("reason") ?? "pinned with outpost update pin");
    console.log(`pinned at ${p.pinned!.version}: no release is installed until \`update unpin\``);
    return 0;
  }
  if (sub === "unpin") {
    const allowed = await unpinUpdates(slots);
    console.log(
      `unpinned${
        allowed ? `; ${allowed} (rolled back before) may be installed again` : ""
      }: the next check installs what the channel offers`,
    );
    return 0;
  }
  const health = healthUrl(config!);
  const running = await fetch(`${health}/healthz`, { signal: AbortSignal.timeout(2000) })
    .then(async (r) => (await r.body?.cancel(), true), () => false);
  if (running) {
    console.error(
      `update rollback: a gateway answers on ${health}; stop it first (systemctl stop outpost), ` +
        `or send it the \`rollback\` command`,
    );
    return 1;
  }
  const r = await rollbackByHand(
    slots,
    args.string("reason") ?? "rolled back by hand (update rollback)",
  );
  console.log(
    `rolled back from ${r.from} to ${r.to}; ${r.from} is not installed again until a newer release or \`update unpin\``,
  );
  return 0;
}

const CONFIG = {
  config: { type: "string", short: "c", arg: "FILE", help: "the gateway's config file" },
} as const;
const INSTALL_ROOT = {
  "install-root": { type: "string", arg: "DIR", help: "the install root (slots, state.json)" },
} as const;
const REASON = {
  reason: { type: "string", arg: "TEXT", help: "why, kept in the update state" },
} as const;

/** `outpost update`. */
export const updateCommand: Command<CliDeps> = {
  name: "update",
  summary: "Self-update: check, apply, init (device side)",
  usage: `Usage: outpost update check --config FILE
       outpost update apply --config FILE
       outpost update init --install-root DIR --artifact FILE --version X [--root root.json]
                           [--runtime DENO]
       outpost update rollback --config FILE [--reason TEXT]
       outpost update pin (--config FILE | --install-root DIR) [--reason TEXT]
       outpost update unpin (--config FILE | --install-root DIR)

check fetches and verifies the channel's manifest and prints what the device would do (nothing
changes). apply asks the running gateway (pid from its /status) to check and install now
(SIGUSR2). init lays out a fresh install root (slots/a with the artifact, current, state.json);
the artifact must be an Outpost build for this machine that reports exactly --version; a
bundle's pinned Deno given with --runtime goes beside it (slots/a/deno, run by slots/a/outpost).
rollback (gateway stopped) makes the other slot's version the committed one; the version rolled
back from is not installed again until a newer release or unpin. pin stops all installs until
unpin. See docs/releasing.md.`,
  subcommands: [
    {
      name: "check",
      summary: "what the device would do",
      options: CONFIG,
      run: updateCheck,
    },
    {
      name: "apply",
      summary: "check and install now",
      options: CONFIG,
      run: updateApply,
    },
    {
      name: "init",
      summary: "lay out a fresh install root",
      options: {
        ...INSTALL_ROOT,
        artifact: { type: "string", arg: "FILE", help: "the build for slot a" },
        version: { type: "string", arg: "X", help: "the version the artifact reports" },
        root: { type: "string", arg: "FILE", help: "the release's root.json to pin" },
        runtime: { type: "string", arg: "FILE", help: "the Deno a bundle runs on" },
      },
      run: (args) => updateInit(args),
    },
    {
      name: "rollback",
      summary: "commit the other slot",
      options: { ...CONFIG, ...REASON },
      run: (args, deps) => updateHold("rollback", args, deps),
    },
    {
      name: "pin",
      summary: "stop all installs",
      options: { ...CONFIG, ...INSTALL_ROOT, ...REASON },
      run: (args, deps) => updateHold("pin", args, deps),
    },
    {
      name: "unpin",
      summary: "allow installs again",
      options: { ...CONFIG, ...INSTALL_ROOT },
      run: (args, deps) => updateHold("unpin", args, deps),
    },
  ],
};
