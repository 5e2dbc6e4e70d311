/**
 * Time synchronised. Without a battery-backed clock (most CM4 carriers) a gateway boots at the
 * last saved time, and readings, certificates and signed commands all depend on the clock.
 * Indicators, read without running a program:
 * - `/run/systemd/timesync/synchronized` exists: systemd-timesyncd has synchronised since boot;
 * - `/run/chrony/chronyd.sock` or `/run/chrony/chronyd.pid`: chronyd runs (it disciplines the
 *   clock; `chronyc tracking` shows how well);
 * - `/run/ntpd.pid` or `/run/ntpsec/ntpd.pid`: ntpd runs;
 * and the clock itself must be past this build's date floor (a clock at 1970 is never right).
 */
import type { Check, DoctorContext } from "./types.ts";

/** A time before which the clock is certainly wrong (2026-01-01). */
export const CLOCK_FLOOR = Date.UTC(2026, 0, 1);

/** `time.sync`: a time daemon has synchronised, or runs, and the clock is plausible. */
export function timeSync(ctx: DoctorContext): Check {
  const id = "time.sync";
  const title = "clock synchronised";
  const fix = "enable one time service: systemctl enable --now systemd-timesyncd (NTP= in " +
    "/etc/systemd/timesyncd.conf.d/) or apt install chrony";
  if (ctx.now < CLOCK_FLOOR) {
    return {
      id,
      title,
      verdict: "fail",
      reason: `the clock reads ${new Date(ctx.now).toISOString()}, before ${
        new Date(CLOCK_FLOOR).toISOString().slice(0, 10)
      }: never synchronised since boot`,
      fix,
    };
  }
  const h = ctx.host;
  if (h.exists("/run/systemd/timesync/synchronized")) {
    return {
      id,
      title,
      verdict: "pass",
      reason: "systemd-timesyncd synchronised (/run/systemd/timesync/synchronized)",
    };
  }
  for (const f of ["/run/chrony/chronyd.sock", "/run/chrony/chronyd.pid", "/run/chronyd.pid"]) {
    if (h.exists(f)) return { id, title, verdict: "pass", reason: `chronyd runs (${f})` };
  }
  for (const f of ["/run/ntpd.pid", "/run/ntpsec/ntpd.pid"]) {
    if (h.exists(f)) return { id, title, verdict: "pass", reason: `ntpd runs (${f})` };
  }
  if (h.exists("/run/systemd/timesync")) {
    return {
      id,
      title,
      verdict: "warn",
      reason: "systemd-timesyncd runs but has not synchronised yet (no " +
        "/run/systemd/timesync/synchronized): no NTP server reachable?",
      fix: "check timedatectl timesync-status; set a reachable server in NTP= " +
        "(/etc/systemd/timesyncd.conf.d/)",
    };
  }
  return {
    id,
    title,
    verdict: "fail",
    reason: "no time service found (systemd-timesyncd, chronyd or ntpd)",
    fix,
  };
}
