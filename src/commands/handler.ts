/**
 * The contract between the command service and its handlers: what a handler is given
 * ({@linkcode CommandContext}), what it returns or throws ({@linkcode CommandError},
 * {@linkcode DEFERRED}), how it is registered, and what /status shows of the service.
 */
import type { GatewayConfig } from "../config/gateway.ts";
import type { Gateway } from "../gateway.ts";
import type { Logger, RootLogger } from "../log.ts";
import type { AuditEntry } from "./audit.ts";
import type { CommandsConfig } from "./config.ts";
import type { CommandState, PendingOp } from "./state.ts";
import { type CommandName, type CommandReply, ERROR_CODES, type Scope } from "../protocol/mod.ts";

/** The operator key a request was verified with. */
export interface Operator {
  keyid: string;
  name?: string;
  scopes: Scope[];
}

/** A command failed in a way the requester should know by `code` (see protocol ERROR_CODES). */
export class CommandError extends Error {
  override name = "CommandError";
  readonly code: string;
  readonly result?: unknown;
  constructor(code: string, message: string, options?: ErrorOptions & { result?: unknown }) {
    super(message, options);
    this.code = code;
    this.result = options?.result;
  }
}

/** Returned by a handler whose final reply will come from the next start of the gateway. */
export const DEFERRED: unique symbol = Symbol("deferred");

type Omit2<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A pending operation as a handler describes it; the service fills in who asked. */
export type DeferredOp = Omit2<PendingOp, "id" | "cmd" | "prefix" | "at">;

/** What a command handler is given. */
export interface CommandContext {
  readonly id: string;
  readonly cmd: string;
  /** The gateway id or `fleet`, as in the request topic. */
  readonly target: string;
  readonly args: Record<string, unknown>;
  /** Aborted when the gateway stops or restarts under the command. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** The gateway the request arrived at. */
  readonly gateway: Gateway;
  /** The verified operator key; undefined for an open command sent unsigned. */
  readonly operator?: Operator;
  /** Sends a non-final reply; resolves once the broker acknowledged it (PUBACK). */
  reply(
    status: "accepted" | "progress" | "page",
    fields?: Pick<CommandReply, "result" | "page" | "progress">,
  ): Promise<void>;
  /**
   * Records that the final reply is owed by the next start of the gateway (after a restart or a
   * trial of another version); the handler then returns {@linkcode DEFERRED}.
   */
  defer(op: DeferredOp): Promise<typeof DEFERRED>;
}

/** Runs one command; its result becomes the `done` reply, a thrown CommandError the `error` one. */
export type CommandHandler = (ctx: CommandContext) => Promise<unknown>;

/** How a handler runs alongside others. */
export interface HandlerOptions {
  /** At most one exclusive command runs at a time (restart, config-set, update-apply …). */
  exclusive?: boolean;
  /**
   * Exclusive commands this one may run alongside and take over from (rollback over an
   * update-apply still downloading: the handler stops the other, which then fails its reply).
   */
  preempts?: readonly string[];
}

/** A handler as the service runs it. */
export interface Registered {
  handler: CommandHandler;
  exclusive: boolean;
  preempts: readonly string[];
}

/** Handlers that come from outside the built-ins, e.g. the self-updater's update commands. */
export type ExtraHandlers = Partial<
  Record<CommandName, { handler: CommandHandler } & HandlerOptions>
>;

/** What the built-in handlers reach through the service. */
export interface CommandEnv {
  readonly configPath: string;
  readonly version: string;
  readonly state: CommandState;
  /** The config the gateway runs now. */
  config(): GatewayConfig;
  /** The effective commands config. */
  commands(): CommandsConfig;
  /** The gateway now running, if any (none between stop and start of a restart). */
  gateway(): Gateway | undefined;
  /** The process logger with its ring of recent lines. */
  logger(): RootLogger;
  /** The newest entries of the audit trail of remote commands, oldest first. */
  audit(limit: number): AuditEntry[];
  /** Validates config text exactly as `run` would; throws ConfigError. */
  parse(text: string): GatewayConfig;
  /** Applies a validated config to the running gateway, as SIGHUP does. */
  apply(config: GatewayConfig): Promise<void>;
  /** Stops the gateway and starts it again in this process with `config`. */
  restart(config: GatewayConfig): void;
  /** Largest reply the uplink may publish, in bytes. */
  maxReplyBytes(): number;
}

/** Options of {@linkcode CommandService}. */
export interface CommandServiceOptions {
  configPath: string;
  version: string;
  parse(text: string): GatewayConfig;
  apply(config: GatewayConfig): Promise<void>;
  restart(config: GatewayConfig): void;
  /**
   * More commands this service answers besides the built-ins (the update supervisor hands in
   * update-check, update-apply and rollback); without a handler such a command gets an
   * `unavailable` error reply.
   */
  handlers?: ExtraHandlers;
}

/** Finishes an operation a previous start left pending; undefined: not decided here. */
export type Settler = (
  op: PendingOp,
  env: CommandEnv,
  signal: AbortSignal,
) => Promise<SettleResult>;

/** How a pending operation ended: its final reply, or not decided by this process. */
export type SettleResult =
  | { status: "done"; result?: unknown }
  | { status: "error"; code: string; message: string; result?: unknown }
  | undefined;

/** The built-in commands and how each kind of pending operation is finished. */
export interface Builtins {
  handlers: Record<
    string,
    { handler: (ctx: CommandContext, env: CommandEnv) => Promise<unknown>; exclusive?: boolean }
  >;
  settlers: Partial<Record<PendingOp["kind"], { settle: Settler; exclusive: boolean }>>;
}

/** What /status shows under `commands`. */
export interface CommandsStatus {
  enabled: boolean;
  prefix: string | null;
  /** The broker granted the request subscriptions on the current connection. */
  subscribed: boolean;
  /** `required` (the default) or `off` (commands.insecureUnsigned: anyone on the broker). */
  signatures: "required" | "off";
  operatorKeys: number;
  /** Requests run (whatever their outcome) and refused before running, since start. */
  handled: number;
  refused: number;
  /** Refusals by error code (unsigned, unknown-key, expired, replayed, bad-signature, ...). */
  refusedBy: Record<string, number>;
  /** Requests run, by command and outcome (done, accepted, or the error code). */
  byCommand: Record<string, Record<string, number>>;
  running: string[];
  last: { id: string | null; cmd: string; at: number; outcome: string } | null;
}

/** Refuses a request whose args name anything but `allowed` (`bad-args`). */
export function onlyArgs(ctx: CommandContext, allowed: string[]): void {
  const unknown = Object.keys(ctx.args).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `unknown args ${unknown.join(", ")}${
        allowed.length ? `; expected ${allowed.join(", ")}` : "; this command takes none"
      }`,
    );
  }
}
