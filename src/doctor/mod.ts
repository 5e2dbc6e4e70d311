/**
 * `outpost doctor`: audits the host against the gateway's security checklist — IP forwarding,
 * sshd, disk encryption, stray listeners, secret file modes, default passwords, uplink TLS, time
 * synchronisation, storage wear and the unit's sandbox — with a verdict, the reason and the fix
 * for each check. Every file is read under a root prefix so the checks run against a prepared
 * tree in tests.
 *
 * @example
 * ```ts
 * const { ctx, checks } = doctorContext({ adapters: {} });
 * console.log(formatReport(runChecks(ctx, checks)));
 * ```
 */
export { DEFAULT_CONFIG, doctorContext, type DoctorOptions } from "./context.ts";
export { DOCTOR_INTERVAL_MS, DoctorMonitor, type DoctorMonitorOptions } from "./monitor.ts";
export { CHECKS, formatReport, reportSummary, runChecks } from "./report.ts";
export type { Check, DoctorContext, DoctorReport, Summary, Verdict } from "./types.ts";
