/**
 * The doctor inside a running gateway: runs the checks at start and every few hours (they read a
 * few dozen small files, about 10 ms) and keeps the last report for /status, the page and
 * the retained status message.
 */
import type { AdapterModule } from "../adapter.ts";
import type { GatewayConfig } from "../config/gateway.ts";
import type { Logger } from "../log.ts";
import { doctorContext } from "./context.ts";
import { reportSummary, runChecks } from "./report.ts";
import type { DoctorReport } from "./types.ts";

/** How often a running gateway re-runs the doctor. */
export const DOCTOR_INTERVAL_MS = 6 * 3600_000;

/** Options of {@linkcode DoctorMonitor}. */
export interface DoctorMonitorOptions {
  configPath: string;
  /** The running config (it changes with reloads). */
  config: () => GatewayConfig;
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
  log: Logger;
  intervalMs?: number;
  /** Root prefix of the files read (tests); default "/". */
  root?: string;
}

/** Runs the doctor now and then; {@linkcode DoctorMonitor.report} is the latest result. */
export class DoctorMonitor {
  readonly #opts: DoctorMonitorOptions;
  readonly #timer: ReturnType<typeof setInterval>;
  #report: DoctorReport | undefined;

  /** Runs once at once, then every `intervalMs` (default 6 h) until {@linkcode close}. */
  constructor(opts: DoctorMonitorOptions) {
    this.#opts = opts;
    this.run();
    this.#timer = setInterval(() => this.run(), opts.intervalMs ?? DOCTOR_INTERVAL_MS);
  }

  /** Stops the periodic runs. */
  close(): void {
    clearInterval(this.#timer);
  }

  /** Runs the checks now; logs what fails (once per change of the failing set). */
  run(): DoctorReport | undefined {
    const o = this.#opts;
    try {
      const { ctx, checks } = doctorContext({
        root: o.root,
        configPath: o.configPath,
        config: o.config(),
        adapters: o.adapters,
        workdir: Deno.cwd(),
      });
      const before = this.#report && reportSummary(this.#report).failing.join(",");
      const report = runChecks(ctx, checks);
      this.#report = report;
      const now = reportSummary(report);
      if (now.failing.join(",") !== before) {
        const fields = { pass: now.summary.pass, warn: now.summary.warn, fail: now.summary.fail };
        if (now.failing.length) {
          o.log.warn(`host checklist: failing ${now.failing.join(", ")} (outpost doctor)`, fields);
        } else {
          o.log.info("host checklist: nothing fails", fields);
        }
      }
    } catch (e) {
      o.log.error("host checklist could not run", { error: (e as Error).message });
    }
    return this.#report;
  }

  /** The last report, or undefined before the first run finished. */
  report(): DoctorReport | undefined {
    return this.#report;
  }

  /** The last report's counts and failing ids, for the retained status message. */
  summary(): ReturnType<typeof reportSummary> | undefined {
    return this.#report && reportSummary(this.#report);
  }
}
