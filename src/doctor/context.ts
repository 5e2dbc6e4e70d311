/** Builds a doctor's context: the config (loaded with its secrets as the unit would see them). */
import type { AdapterModule } from "../adapter.ts";
import { type GatewayConfig, gatewaySchema } from "../config/gateway.ts";
import { ConfigError, formatProblem, parseConfig } from "../config/load.ts";
import { ENV_FILE } from "./files.ts";
import { Host, resolvePath } from "./host.ts";
import { readUnit } from "./service.ts";
import type { Check, DoctorContext } from "./types.ts";

/** The config file the unit runs with (docs/install.md). */
export const DEFAULT_CONFIG = "/etc/outpost/site.yaml";

/** Stands in for `${ENV}` references the doctor cannot resolve (it checks no such value). */
const PLACEHOLDER = "outpost-doctor-unset-variable";

/** Options of {@linkcode doctorContext}. */
export interface DoctorOptions {
  /** Root prefix of every file read (default "/"). */
  root?: string;
  /** Config file (read under the root); default /etc/outpost/site.yaml when it exists. */
  configPath?: string;
  /** An already loaded config (the running gateway's): skips loading. */
  config?: GatewayConfig;
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
  /** The unit (default outpost.service). */
  unit?: string;
  /** Where relative config paths are resolved: default the unit's WorkingDirectory=, else cwd. */
  workdir?: string;
  now?: number;
}

function envFile(host: Host): Map<string, string> {
  const out = new Map<string, string>();
  let text: string | undefined;
  try {
    text = host.read(ENV_FILE);
  } catch {
    return out; // root:root 0600: readable by root only
  }
  for (const line of (text ?? "").split("\n")) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1], m[2].replace(/^(["'])(.*)\1$/, "$2"));
  }
  return out;
}

/**
 * Reads what the checks need: the config (its `${ENV}` from the environment, then the unit's
 * environment file, else a placeholder), and where its relative paths point. A config that does
 * not load gives a failing `config` check, and the checks that need it skip.
 */
export function doctorContext(opts: DoctorOptions): { ctx: DoctorContext; checks: Check[] } {
  const host = new Host(opts.root ?? "/");
  const unit = opts.unit ?? "outpost.service";
  const base: DoctorContext = {
    host,
    adapters: opts.adapters,
    unit,
    workdir: "/",
    placeholder: PLACEHOLDER,
    now: opts.now ?? Date.now(),
  };
  base.workdir = opts.workdir ??
    readUnit(base)?.service.get("WorkingDirectory")?.replace(/^-/, "") ?? Deno.cwd();
  const checks: Check[] = [];
  const given = opts.configPath;
  const configPath = given ? resolvePath(given, Deno.cwd()) : DEFAULT_CONFIG;
  const text = opts.config ? readQuiet(host, configPath) : host.read(configPath);
  if (opts.config) {
    return { ctx: { ...base, config: opts.config, configPath, configText: text }, checks };
  }
  if (text === undefined) {
    checks.push({
      id: "config",
      title: "gateway config",
      verdict: given ? "fail" : "skip",
      reason: `no config at ${configPath}${given ? "" : ": config checks skipped"}`,
      ...(given ? { fix: "give the path of the gateway's config with --config FILE" } : {}),
    });
    return { ctx: base, checks };
  }
  const env = envFile(host);
  // A reference with a default (`${PORT:-8787}`) takes its default rather than the placeholder.
  const withDefault = new Set(
    [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):-/g)].map((m) => m[1]),
  );
  try {
    const config = parseConfig(text, gatewaySchema(opts.adapters), {
      displayName: configPath,
      env: (name) =>
        Deno.env.get(name) ?? env.get(name) ?? (withDefault.has(name) ? undefined : PLACEHOLDER),
      readFile: (p) => {
        const t = host.read(resolvePath(p, base.workdir));
        if (t === undefined) throw new Error("no such file");
        return t;
      },
    }) as GatewayConfig;
    checks.push({
      id: "config",
      title: "gateway config",
      verdict: "pass",
      reason: `${configPath} is valid`,
    });
    return { ctx: { ...base, config, configPath, configText: text }, checks };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    checks.push({
      id: "config",
      title: "gateway config",
      verdict: "fail",
      reason: e.problems.map(formatProblem).join("; "),
      fix:
        `outpost check-config ${configPath}; run the doctor as root so that it reads ${ENV_FILE}`,
    });
    return { ctx: { ...base, configPath, configText: text }, checks };
  }
}

function readQuiet(host: Host, path: string): string | undefined {
  try {
    return host.read(path);
  } catch {
    return undefined;
  }
}
