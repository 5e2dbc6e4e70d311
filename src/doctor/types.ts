/** The shapes every doctor check shares: its verdict, the report, and what a check reads. */
import type { AdapterModule } from "../adapter.ts";
import type { GatewayConfig } from "../config/gateway.ts";
import type { Host } from "./host.ts";

/**
 * What a check found: `pass` meets the checklist, `warn` deserves a look, `fail` does not meet
 * it, `skip` does not apply here (no sshd, no eMMC, no config given).
 */
export type Verdict = "pass" | "warn" | "fail" | "skip";

/** One check's result. */
export interface Check {
  /** Stable id, e.g. `ssh.passwords`. */
  id: string;
  /** What is checked, in a few words. */
  title: string;
  verdict: Verdict;
  /** What was found, with the values and files it was read from. */
  reason: string;
  /** How to fix it (absent when it passes). */
  fix?: string;
}

/** Counts of each verdict. */
export type Summary = Record<Verdict, number>;

/** The doctor's report: every check with its verdict. */
export interface DoctorReport {
  /** When it ran (ms since epoch). */
  at: number;
  /** The root prefix the files were read from ("/" on a real run). */
  root: string;
  /** No check failed. */
  ok: boolean;
  summary: Summary;
  checks: Check[];
}

/** What the checks read: the host's files through a root prefix, and the gateway's config. */
export interface DoctorContext {
  host: Host;
  /** The gateway's config, when one was given and loads. */
  config?: GatewayConfig;
  /** Where the config was read from (shown in reasons; its mode is checked). */
  configPath?: string;
  /** The config file's text, for its `${file:…}` secret references. */
  configText?: string;
  /** The adapters the binary embeds (for the listen addresses they claim). */
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
  /** Directory relative paths of the config are resolved against. */
  workdir: string;
  /** The systemd unit to audit, e.g. `outpost.service`. */
  unit: string;
  /** Values that stood in for unset `${ENV}` references while loading the config. */
  placeholder?: string;
  /** The current time (ms), for the clock sanity check. */
  now: number;
}

/** A check: reads the context and returns its result(s). */
export type CheckFn = (ctx: DoctorContext) => Check | Check[];

/** Why a check that needs the config skips: none given, or it did not load. */
export function noConfig(ctx: DoctorContext): string {
  return ctx.configPath
    ? `the config ${ctx.configPath} did not load (see the config check)`
    : "no config given";
}
