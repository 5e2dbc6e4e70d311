/**
 * Finishes what a previous start of the gateway left pending (a restart, a config-set, an update
 * on trial): each kind's settler decides the final reply, which is recorded and sent as if the
 * command had just finished.
 */
import type { Logger } from "../log.ts";
import type { Builtins, CommandEnv, SettleResult } from "./handler.ts";
import type { AuditRecorder } from "./record.ts";
import type { Replies } from "./replies.ts";
import { asCommandError } from "./request.ts";
import type { CommandState, PendingOp } from "./state.ts";
import { ERROR_CODES } from "../protocol/mod.ts";

/** What {@linkcode settlePending} works with; `begin` and `end` keep the service's books. */
export interface SettlePendingOptions {
  state: CommandState;
  settlers: Builtins["settlers"];
  env: CommandEnv;
  /** Aborted when the gateway stops: a settler interrupted by it leaves the operation pending. */
  signal: AbortSignal;
  log(): Logger | undefined;
  recorder: AuditRecorder;
  replies: Replies;
  /** Whether an exclusive command runs now. */
  busy(): boolean;
  /** The operation starts settling (and holds the exclusive slot when `exclusive`). */
  begin(op: PendingOp, exclusive: boolean): void;
  /** It is settled, or left for a later start. */
  end(op: PendingOp): void;
}

/** Settles the pending operations a settler is registered for; see the module documentation. */
export function settlePending(o: SettlePendingOptions): void {
  for (const op of o.state.pending()) {
    const s = o.settlers[op.kind];
    if (!s) continue;
    const { settle, exclusive } = s;
    if (exclusive && o.busy()) continue;
    o.begin(op, exclusive);
    (async () => {
      let r: SettleResult;
      try {
        r = await settle(op, o.env, o.signal);
      } catch (e) {
        const err = asCommandError(e, o.signal);
        if (err.code === ERROR_CODES.interrupted) return;
        r = { status: "error", code: err.code, message: err.message, result: err.result };
      }
      if (!r) return;
      await o.state.removePending(op.id);
      o.recorder.record({
        ts: Date.now(),
        id: op.id,
        cmd: op.cmd,
        target: op.target ?? "-",
        keyid: op.keyid ?? null,
        verified: op.keyid !== undefined,
        ...(op.key ? { key: op.key } : {}),
        result: r.status === "done" ? "done" : r.code,
        ...(r.status === "error" ? { message: r.message } : {}),
      });
      o.log()?.info(`command ${op.cmd} settled after the restart`, {
        id: op.id,
        status: r.status,
        ...(r.status === "error" ? { code: r.code, error: r.message } : {}),
      });
      await o.replies.sendQuietly(op.prefix, {
        id: op.id,
        cmd: op.cmd,
        status: r.status,
        final: true,
        ...(r.result !== undefined ? { result: r.result } : {}),
        ...(r.status === "error" ? { error: { code: r.code, message: r.message } } : {}),
      });
    })().catch((e) =>
      o.log()?.error("settling a pending command failed", {
        id: op.id,
        error: (e as Error).message,
      })
    ).finally(() => o.end(op));
  }
}
