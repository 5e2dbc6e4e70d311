/** Runs the checks into a report, and renders it for a terminal. */
import { defaultCredentials } from "./credentials.ts";
import { secretModes } from "./files.ts";
import { ipv4Forwarding, ipv6Forwarding, listeners } from "./network.ts";
import { serviceSandbox } from "./service.ts";
import { sshPasswords, sshRootLogin, sshSource } from "./ssh.ts";
import { storageEncryption, storageWear } from "./storage.ts";
import { timeSync } from "./time.ts";
import type { Check, CheckFn, DoctorContext, DoctorReport, Summary, Verdict } from "./types.ts";
import { uplinkTls } from "./uplink.ts";

/** Every check, in the order of the report. */
export const CHECKS: readonly [string, CheckFn][] = [
  ["forwarding.ipv4", ipv4Forwarding],
  ["forwarding.ipv6", ipv6Forwarding],
  ["ssh.passwords", sshPasswords],
  ["ssh.root-login", sshRootLogin],
  ["ssh.source", sshSource],
  ["network.listeners", listeners],
  ["storage.encryption", storageEncryption],
  ["storage.wear", storageWear],
  ["files.secrets", secretModes],
  ["credentials.defaults", defaultCredentials],
  ["uplink.tls", uplinkTls],
  ["time.sync", timeSync],
  ["service.sandbox", serviceSandbox],
];

/**
 * Runs every check against `ctx`. A check that throws (a file it may not read) gives a `warn`
 * naming the error, so one unreadable file never hides the other results. `extra` are checks
 * found before (the config's loading).
 */
export function runChecks(ctx: DoctorContext, extra: Check[] = []): DoctorReport {
  const checks: Check[] = [...extra];
  for (const [id, fn] of CHECKS) {
    try {
      const r = fn(ctx);
      checks.push(...(Array.isArray(r) ? r : [r]));
    } catch (e) {
      checks.push({
        id,
        title: id,
        verdict: "warn",
        reason: `could not check: ${(e as Error).message}`,
        fix: notCapable(e)
          ? "run it with Deno's --allow-all: Deno opens /proc and /sys only with it"
          : "run outpost doctor as root",
      });
    }
  }
  const summary: Summary = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.verdict]++;
  return { at: ctx.now, root: ctx.host.root, ok: summary.fail === 0, summary, checks };
}

/** A Deno permission (not a file mode) refused the read. */
function notCapable(e: unknown): boolean {
  for (let x = e, i = 0; x instanceof Error && i < 4; x = x.cause, i++) {
    if (x instanceof Deno.errors.NotCapable) return true;
  }
  return false;
}

const MARK: Record<Verdict, string> = { pass: "PASS", warn: "WARN", fail: "FAIL", skip: "SKIP" };

/** Renders a report for a terminal: one line per check, with the reason and the fix under it. */
export function formatReport(r: DoctorReport): string {
  const width = Math.max(...r.checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const c of r.checks) {
    lines.push(`${MARK[c.verdict]}  ${c.id.padEnd(width)}  ${c.title}`);
    lines.push(`      ${" ".repeat(width)}  ${c.reason}`);
    if (c.fix && c.verdict !== "pass") lines.push(`      ${" ".repeat(width)}  fix: ${c.fix}`);
  }
  const s = r.summary;
  lines.push(
    "",
    `${s.pass} pass, ${s.warn} warn, ${s.fail} fail, ${s.skip} skip` +
      (r.root === "/" ? "" : ` (files read under ${r.root})`),
  );
  return lines.join("\n");
}

/** The compact form for the retained status message: counts and the ids that fail or warn. */
export function reportSummary(r: DoctorReport): {
  at: number;
  ok: boolean;
  summary: Summary;
  failing: string[];
  warning: string[];
} {
  return {
    at: r.at,
    ok: r.ok,
    summary: r.summary,
    failing: r.checks.filter((c) => c.verdict === "fail").map((c) => c.id),
    warning: r.checks.filter((c) => c.verdict === "warn").map((c) => c.id),
  };
}
