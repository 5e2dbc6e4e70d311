/**
 * Records the outcome of every remote command: a journal line and a row in the audit trail,
 * with refusals rate-limited so a flood of forged requests is counted, not written out.
 */
import type { Logger } from "../log.ts";
import type { AuditEntry, AuditTrail } from "./audit.ts";

/** Refusals logged and written to the audit file per minute; beyond, they are only counted. */
const REFUSALS_RECORDED_PER_MINUTE = 60;

/** Where {@linkcode AuditRecorder} writes: the trail and loggers of the gateway served now. */
export interface AuditRecorderOptions {
  trail(): AuditTrail | undefined;
  /** The `audit` logger. */
  auditLog(): Logger | undefined;
  /** The `commands` logger, for failures to write the trail. */
  log(): Logger | undefined;
}

/** Writes audit rows of accepted, failed and refused commands. */
export class AuditRecorder {
  readonly #trail: () => AuditTrail | undefined;
  readonly #auditLog: () => Logger | undefined;
  readonly #log: () => Logger | undefined;
  #refusalWindow = { start: 0, recorded: 0, skipped: 0 };

  constructor(opts: AuditRecorderOptions) {
    this.#trail = opts.trail;
    this.#auditLog = opts.auditLog;
    this.#log = opts.log;
  }

  /**
   * A refusal into the journal and the audit table, at most {@linkcode REFUSALS_RECORDED_PER_MINUTE}
   * a minute: a flood of forged requests is counted, not written out one by one.
   */
  refusal(e: AuditEntry): void {
    // The command name comes from the topic: an unknown one may be long.
    if (e.cmd.length > 64) e.cmd = e.cmd.slice(0, 61) + "...";
    if (e.message && e.message.length > 300) e.message = e.message.slice(0, 297) + "...";
    const w = this.#refusalWindow;
    if (e.ts - w.start >= 60_000) {
      if (w.skipped) {
        this.#auditLog()?.warn("remote commands refused and not recorded one by one", {
          count: w.skipped,
          since: new Date(w.start).toISOString(),
        });
      }
      this.#refusalWindow = { start: e.ts, recorded: 0, skipped: 0 };
    }
    const now = this.#refusalWindow;
    if (now.recorded >= REFUSALS_RECORDED_PER_MINUTE) {
      now.skipped++;
      return;
    }
    now.recorded++;
    this.record(e, true);
    if (now.recorded === REFUSALS_RECORDED_PER_MINUTE) {
      this.#auditLog()?.warn(
        `${REFUSALS_RECORDED_PER_MINUTE} refusals this minute: further ones are only counted (/metrics) until the minute is over`,
      );
    }
  }

  /** One audit row: a journal line and a row in the bounded audit file. */
  record(e: AuditEntry, refused = false): void {
    const fields = {
      id: e.id ?? undefined,
      target: e.target,
      key: !e.keyid
        ? "unsigned"
        : e.verified
        ? (e.key ? `${e.key} (${e.keyid})` : e.keyid)
        : `${e.keyid} (not verified)`,
      result: e.result,
      ...(e.message ? { message: e.message } : {}),
    };
    const ok = e.result === "done" || e.result === "accepted";
    this.#auditLog()?.[ok ? "info" : "warn"](
      refused ? `command ${e.cmd} refused` : `command ${e.cmd}: ${e.result}`,
      fields,
    );
    this.#trail()?.record(e).catch((err) =>
      this.#log()?.error("cannot write the audit trail", { error: (err as Error).message })
    );
  }
}
