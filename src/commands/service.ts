/**
 * Remote commands, gateway side: requests arrive on the MQTT uplink's connection
 * (`{prefix}/{gatewayId}/cmd/{name}` and `{prefix}/fleet/cmd/{name}`), are checked (shape,
 * signature, replay window, allow-list), run, and answered on `{prefix}/{gatewayId}/reply` as
 * protocol.ts describes. Nothing a request contains can crash the gateway: every failure is an
 * `error` reply with a code.
 *
 * The service outlives the gateway it serves: `run` attaches it to each gateway it starts (a
 * restart command stops one and starts the next in the same process), so a command that spans a
 * restart still gets its final reply.
 */
import type { GatewayConfig } from "../config/gateway.ts";
import type { Gateway } from "../gateway.ts";
import type { Logger, RootLogger } from "../log.ts";
import { keyIdOf, type TrustedKey } from "../update/keys.ts";
import type { InboundMessage, UplinkSubscription } from "../uplink/mod.ts";
import { type AuditEntry, auditPath, AuditTrail } from "./audit.ts";
import { type CommandsConfig, commandsOf } from "./config.ts";
import { CommandState, type PendingOp } from "./state.ts";
import {
  COMMAND_NAMES,
  COMMAND_SCOPES,
  type CommandName,
  type CommandReply,
  type CommandRequest,
  ERROR_CODES,
  FLEET_TARGET,
  importOperatorKeys,
  OPEN_COMMANDS,
  replyTopic,
  type Scope,
  SCOPES,
  verifyRequest,
} from "../protocol/mod.ts";

/** The operator key a request was verified with. */
export interface Operator {
  keyid: string;
  name?: string;
  scopes: Scope[];
}

interface OperatorKeys {
  trusted: Map<string, TrustedKey>;
  grants: Map<string, { name?: string; scopes: Scope[] }>;
}

/** Refusals logged and written to the audit file per minute; beyond, they are only counted. */
const REFUSALS_RECORDED_PER_MINUTE = 60;

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

interface Registered {
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

/** Replies of one request, sent in order. */
interface ReplyChain {
  last: Promise<void>;
}

/** Requests larger than this are refused unread (config-set carries a whole YAML file). */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** How long a reply waits for a broker connection before it is given up. */
const REPLY_WAIT_MS = 5 * 60_000;
/** Queries running at once. */
const MAX_QUERIES = 2;

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

/**
 * Receives, checks and runs remote commands for whichever gateway it is attached to. See the
 * module documentation.
 */
export class CommandService {
  readonly #o: CommandServiceOptions;
  readonly #builtins: Map<string, Registered>;
  readonly #settlers: Builtins["settlers"];
  readonly #closed = new AbortController();
  #gateway: Gateway | undefined;
  #config: GatewayConfig | undefined;
  #cmds: CommandsConfig | undefined;
  #root: RootLogger | undefined;
  #log: Logger | undefined;
  #sub: UplinkSubscription | undefined;
  #keys: Promise<OperatorKeys> = Promise.resolve({ trusted: new Map(), grants: new Map() });
  #keysFor = "";
  #state: CommandState | undefined;
  #audit: AuditTrail | undefined;
  #auditLog: Logger | undefined;
  #refusedBy = new Map<string, number>();
  #byCommand: Record<string, Record<string, number>> = {};
  #refusalWindow = { start: 0, recorded: 0, skipped: 0 };
  #attached = new AbortController();
  #exclusive: string | undefined;
  #queries = 0;
  #running = new Map<string, string>();
  #handled = 0;
  #refused = 0;
  #last: CommandsStatus["last"] = null;
  #connWaiters = new Set<() => void>();
  #watched: unknown;

  /** The view handed to built-in handlers. */
  readonly env: CommandEnv;

  constructor(opts: CommandServiceOptions, builtins: Builtins) {
    this.#o = opts;
    // deno-lint-ignore no-this-alias
    const self = this;
    this.env = {
      configPath: opts.configPath,
      version: opts.version,
      get state() {
        return self.#need(self.#state);
      },
      config: () => this.#need(this.#config),
      commands: () => this.#need(this.#cmds),
      gateway: () => this.#gateway,
      logger: () => this.#need(this.#root),
      audit: (limit) => this.#audit?.recent(limit) ?? [],
      parse: (text) => opts.parse(text),
      apply: (config) => opts.apply(config),
      restart: (config) => opts.restart(config),
      maxReplyBytes: () => {
        const u = this.#config?.uplink as { maxMessageBytes?: number } | undefined;
        return u?.maxMessageBytes ?? 128 * 1024;
      },
    };
    this.#builtins = new Map([
      ...Object.entries(builtins.handlers).map((
        [k, v],
      ): [string, Registered] => [k, {
        handler: (ctx) => v.handler(ctx, this.env),
        exclusive: v.exclusive ?? false,
        preempts: [],
      }]),
      ...Object.entries(opts.handlers ?? {}).map((
        [k, v],
      ): [string, Registered] => [k, {
        handler: v!.handler,
        exclusive: v!.exclusive ?? false,
        preempts: v!.preempts ?? [],
      }]),
    ]);
    this.#settlers = builtins.settlers;
  }

  #need<T>(v: T | undefined): T {
    if (v === undefined) throw new CommandError(ERROR_CODES.interrupted, "the gateway is stopped");
    return v;
  }

  /**
   * Serves `gateway` (just started with `config`): subscribes to the request topics when commands
   * are on, and settles operations a previous start left pending (restart, config-set, update).
   */
  attach(gateway: Gateway, config: GatewayConfig, log: RootLogger): void {
    this.#gateway = gateway;
    this.#root = log;
    this.#log = log.child("commands");
    this.#auditLog = log.child("audit");
    this.#attached = new AbortController();
    const dir = config.buffer.path.includes("/")
      ? config.buffer.path.slice(0, config.buffer.path.lastIndexOf("/"))
      : ".";
    const path = `${dir}/commands-state.json`;
    const before = this.#state;
    if (before?.path !== path) this.#state = new CommandState(path);
    const state = this.#state!;
    const problem = state.load();
    if (problem) this.#log.warn("command state unreadable", { error: problem });
    const trailPath = auditPath(config.buffer.path);
    if (this.#audit?.path !== trailPath) {
      this.#audit = new AuditTrail(trailPath);
      const bad = this.#audit.load();
      if (bad) this.#log.warn("audit trail unreadable; starting it again", { error: bad });
    }
    // A restart onto another buffer directory: what is owed moves along.
    if (before && before !== state) {
      state.adopt(before).catch((e) =>
        this.#log?.error("cannot write the command state", { error: (e as Error).message })
      );
    }
    this.reconfigure(config);
    if (this.#cmds) this.#settlePending(this.#attached.signal);
  }

  /** Takes a new config of the running gateway (after a reload): prefix, keys, allow-list. */
  reconfigure(config: GatewayConfig): void {
    this.#config = config;
    const next = commandsOf(config);
    const prev = this.#cmds;
    this.#cmds = next;
    const gateway = this.#gateway;
    if (!gateway) return;
    const keyList = JSON.stringify(next?.operatorKeys ?? []);
    if (keyList !== this.#keysFor) {
      this.#keysFor = keyList;
      this.#keys = loadOperatorKeys(next?.operatorKeys ?? []).catch((e) => {
        this.#log?.error("operator keys unusable: signed requests will be refused", {
          error: (e as Error).message,
        });
        return { trusted: new Map(), grants: new Map() };
      });
    }
    const filters = next
      ? [
        `${next.prefix}/${config.gateway.id}/cmd/+`,
        `${next.prefix}/${FLEET_TARGET}/cmd/+`,
      ]
      : [];
    const same = prev && next && prev.prefix === next.prefix && this.#sub;
    if (!same) {
      this.#sub?.close();
      this.#sub = filters.length
        ? gateway.subscribe(filters, (m) => this.#onMessage(m))
        : undefined;
      if (next) {
        this.#log?.info("accepting remote commands", {
          topics: filters.join(" "),
          signatures: next.insecureUnsigned ? "off" : "required",
          keys: next.operatorKeys.length,
        });
      }
    }
    if (next?.insecureUnsigned) {
      this.#log?.warn(
        "INSECURE: commands.insecureUnsigned is true, so anyone who can publish on the broker " +
          "can run every command on this gateway (config-set, restart, update); remove it and " +
          "configure commands.operatorKeys",
      );
    } else if (next && next.operatorKeys.length === 0) {
      this.#log?.warn(
        "no commands.operatorKeys: every remote command except ping is refused; add a key " +
          "(outpost release keygen) with its scopes to command this gateway",
      );
    }
    this.#watchUplink();
  }

  /** Hears the connection changes of the current uplink (a reload replaces it). */
  #watchUplink(): void {
    const u = this.#gateway?.uplink;
    if (!u || u === this.#watched) return;
    this.#watched = u;
    u.onStateChange(() => this.#wakeConnWaiters());
  }

  /**
   * Stops serving the current gateway (before it stops): unsubscribes and aborts running
   * commands, whose replies wait for the next attached gateway.
   */
  detach(): void {
    this.#sub?.close();
    this.#sub = undefined;
    this.#attached.abort();
    this.#gateway = undefined;
    this.#wakeConnWaiters();
  }

  /** Detaches for good: replies still waiting for a connection are dropped. */
  close(): void {
    this.detach();
    this.#closed.abort();
    this.#wakeConnWaiters();
  }

  /** For /status. */
  status(): CommandsStatus {
    const c = this.#cmds;
    return {
      enabled: c !== undefined,
      prefix: c?.prefix ?? null,
      subscribed: this.#sub?.active ?? false,
      signatures: c?.insecureUnsigned ? "off" : "required",
      operatorKeys: c?.operatorKeys.length ?? 0,
      handled: this.#handled,
      refused: this.#refused,
      refusedBy: Object.fromEntries(this.#refusedBy),
      byCommand: structuredClone(this.#byCommand),
      running: [...this.#running.values()],
      last: this.#last,
    };
  }

  #onMessage(msg: InboundMessage): void {
    const cfg = this.#cmds;
    const config = this.#config;
    if (!cfg || !config || !this.#gateway) return;
    let target: string | undefined;
    let cmd = "";
    for (const t of [config.gateway.id, FLEET_TARGET]) {
      const head = `${cfg.prefix}/${t}/cmd/`;
      if (msg.topic.startsWith(head)) {
        target = t;
        cmd = msg.topic.slice(head.length);
      }
    }
    if (target === undefined || !cmd || cmd.includes("/")) return;
    if (msg.retain) {
      // A retained request would run again on every reconnect.
      this.#log?.warn("ignoring a retained request; publish commands without the retain flag", {
        topic: msg.topic,
      });
      return;
    }
    this.#handle(cfg, target, cmd, msg.payload).catch((e) =>
      this.#log?.error("command handling failed", { cmd, error: (e as Error).message })
    );
  }

  async #handle(
    cfg: CommandsConfig,
    target: string,
    cmd: string,
    payload: Uint8Array,
  ): Promise<void> {
    const prefix = cfg.prefix;
    let operator: Operator | undefined;
    const claimed: { keyid?: string } = {};
    const refuse = (id: string | null, code: string, message: string) => {
      this.#refused++;
      this.#refusedBy.set(code, (this.#refusedBy.get(code) ?? 0) + 1);
      this.#last = { id, cmd, at: Date.now(), outcome: code };
      this.#recordRefusal({
        ts: Date.now(),
        id,
        cmd,
        target,
        keyid: operator?.keyid ?? claimed.keyid ?? null,
        verified: operator !== undefined,
        ...(operator?.name ? { key: operator.name } : {}),
        result: code,
        message,
      });
      return this.#sendQuietly(prefix, {
        id,
        cmd,
        status: "error",
        final: true,
        error: { code, message },
      });
    };
    if (payload.length > MAX_REQUEST_BYTES) {
      return refuse(
        null,
        ERROR_CODES.malformed,
        `request of ${payload.length} bytes is over the limit of ${MAX_REQUEST_BYTES}`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
    } catch (e) {
      return refuse(null, ERROR_CODES.malformed, `request is not JSON: ${(e as Error).message}`);
    }
    const parsed = parseRequest(body);
    if ("error" in parsed) return refuse(parsed.id, ERROR_CODES.malformed, parsed.error);
    const req = parsed.request;
    const id = req.id;
    claimed.keyid = req.keyid;
    const known = (COMMAND_NAMES as readonly string[]).includes(cmd);
    if (req.sig !== undefined || req.keyid !== undefined) {
      const keys = await this.#keys;
      const bad = await verifyRequest(keys.trusted, cmd, target, req).catch((e) => ({
        code: ERROR_CODES.badSignature,
        message: `signature unusable: ${(e as Error).message}`,
      }));
      if (bad) return refuse(id, bad.code, bad.message);
      const grant = keys.grants.get(req.keyid!)!;
      operator = { keyid: req.keyid!, ...grant };
    } else if (cfg.insecureUnsigned) {
      operator = undefined;
    } else if (!known || !OPEN_COMMANDS.includes(cmd as CommandName)) {
      return refuse(
        id,
        ERROR_CODES.unsigned,
        `missing signature: this gateway runs ${cmd} only when signed by an operator key with the ${
          known ? COMMAND_SCOPES[cmd as CommandName] : "right"
        } scope (commands.operatorKeys${cfg.operatorKeys.length ? "" : " is empty"})`,
      );
    }
    // Unsigned open commands (ping) skip the replay cache: anyone can make a fresh one, and a
    // flood of them must not push the ids of signed requests out of it.
    if (operator || cfg.insecureUnsigned) {
      const bad = await this.#checkReplay(cfg, req);
      if (bad) return refuse(id, bad.code, bad.message);
    }
    if (!known) {
      return refuse(
        id,
        ERROR_CODES.unknownCommand,
        `unknown command "${cmd}"; expected one of ${COMMAND_NAMES.join(", ")}`,
      );
    }
    const needed = COMMAND_SCOPES[cmd as CommandName];
    if (operator && !operator.scopes.includes(needed)) {
      return refuse(
        id,
        ERROR_CODES.forbidden,
        `command "${cmd}" needs the ${needed} scope; operator key ${
          operator.name ? `"${operator.name}" (${operator.keyid})` : operator.keyid
        } has ${operator.scopes.join(", ")}`,
      );
    }
    if (cfg.allow && !(cfg.allow as readonly string[]).includes(cmd)) {
      return refuse(
        id,
        ERROR_CODES.forbidden,
        `command "${cmd}" is not allowed on this gateway (commands.allow: ${cfg.allow.join(", ")})`,
      );
    }
    const entry = this.#builtins.get(cmd);
    if (!entry) {
      return refuse(
        id,
        ERROR_CODES.unavailable,
        cmd.startsWith("update") || cmd === "rollback"
          ? "self-update is not configured on this gateway (no update: section)"
          : `command "${cmd}" is not available on this gateway`,
      );
    }
    const holder = this.#exclusive?.split(" ")[0];
    if (
      entry.exclusive && this.#exclusive !== undefined && !entry.preempts.includes(holder ?? "")
    ) {
      return refuse(
        id,
        ERROR_CODES.busy,
        `busy with ${this.#exclusive}; try again when it is done`,
      );
    }
    if (cmd === "query" && this.#queries >= MAX_QUERIES) {
      return refuse(id, ERROR_CODES.busy, `${MAX_QUERIES} queries are running; try again later`);
    }
    await this.#run(entry, { prefix, target, cmd, req, operator });
  }

  /** `expired` or `replayed`, or undefined after remembering the request's id. */
  async #checkReplay(
    cfg: CommandsConfig,
    req: CommandRequest,
  ): Promise<{ code: string; message: string } | undefined> {
    const id = req.id;
    const state = this.#state!;
    const now = Date.now();
    if (req.ts !== undefined && Math.abs(now - req.ts) > cfg.replayWindow) {
      return {
        code: ERROR_CODES.expired,
        message: `expired: request ts ${req.ts} is ${
          Math.round(Math.abs(now - req.ts) / 1000)
        }s from the gateway clock (${now}), outside the replay window of ${
          cfg.replayWindow / 1000
        }s`,
      };
    }
    if (state.seen(id, now)) {
      return {
        code: ERROR_CODES.replayed,
        message: `replayed: request id "${id}" was already received`,
      };
    }
    const until = Math.max(now, req.ts ?? now) + cfg.replayWindow;
    await state.remember(id, until, req.ts !== undefined, now).catch((e) =>
      this.#log?.error("cannot persist the replay cache; replays across a restart are possible", {
        error: (e as Error).message,
      })
    );
    return undefined;
  }

  /**
   * A refusal into the journal and the audit table, at most {@linkcode REFUSALS_RECORDED_PER_MINUTE}
   * a minute: a flood of forged requests is counted, not written out one by one.
   */
  #recordRefusal(e: AuditEntry): void {
    // The command name comes from the topic: an unknown one may be long.
    if (e.cmd.length > 64) e.cmd = e.cmd.slice(0, 61) + "...";
    if (e.message && e.message.length > 300) e.message = e.message.slice(0, 297) + "...";
    const w = this.#refusalWindow;
    if (e.ts - w.start >= 60_000) {
      if (w.skipped) {
        this.#auditLog?.warn("remote commands refused and not recorded one by one", {
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
    this.#record(e, true);
    if (now.recorded === REFUSALS_RECORDED_PER_MINUTE) {
      this.#auditLog?.warn(
        `${REFUSALS_RECORDED_PER_MINUTE} refusals this minute: further ones are only counted (/metrics) until the minute is over`,
      );
    }
  }

  /** One audit row: a journal line and a row in the bounded audit file. */
  #record(e: AuditEntry, refused = false): void {
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
    this.#auditLog?.[ok ? "info" : "warn"](
      refused ? `command ${e.cmd} refused` : `command ${e.cmd}: ${e.result}`,
      fields,
    );
    this.#audit?.record(e).catch((err) =>
      this.#log?.error("cannot write the audit trail", { error: (err as Error).message })
    );
  }

  async #run(
    entry: Registered,
    r: { prefix: string; target: string; cmd: string; req: CommandRequest; operator?: Operator },
  ): Promise<void> {
    const { prefix, target, cmd, req, operator } = r;
    const id = req.id;
    const gateway = this.#gateway!;
    const log = this.#log!;
    if (entry.exclusive) this.#exclusive = `${cmd} ${id}`;
    if (cmd === "query") this.#queries++;
    this.#running.set(id, `${cmd} ${id}`);
    this.#handled++;
    const started = Date.now();
    log.info(`command ${cmd}`, {
      id,
      target,
      key: operator
        ? (operator.name ? `${operator.name} (${operator.keyid})` : operator.keyid)
        : "unsigned",
      args: describeArgs(cmd, req.args ?? {}),
    });
    const signal = this.#attached.signal;
    const chain: ReplyChain = { last: Promise.resolve() };
    const ctx: CommandContext = {
      id,
      cmd,
      target,
      args: req.args ?? {},
      signal,
      log,
      gateway,
      operator,
      reply: (status, fields) =>
        this.#send(prefix, { id, cmd, status, final: false, ...fields }, {
          waitMs: status === "page" ? 30_000 : REPLY_WAIT_MS,
          chain,
        }),
      defer: async (op) => {
        await this.#state!.addPending(
          {
            ...op,
            id,
            cmd,
            prefix,
            at: Date.now(),
            target,
            ...(operator ? { keyid: operator.keyid } : {}),
            ...(operator?.name ? { key: operator.name } : {}),
          } as PendingOp,
        );
        return DEFERRED;
      },
    };
    let outcome = "done";
    let failure: string | undefined;
    try {
      const result = await entry.handler(ctx);
      if (result === DEFERRED) {
        outcome = "deferred";
        log.info(`command ${cmd}: final reply after the restart`, { id });
        return;
      }
      log.info(`command ${cmd} done`, { id, ms: Date.now() - started });
      await this.#sendQuietly(prefix, { id, cmd, status: "done", final: true, result }, chain);
    } catch (e) {
      const err = asCommandError(e, signal);
      outcome = err.code;
      failure = err.message;
      log.warn(`command ${cmd} failed`, { id, code: err.code, error: err.message });
      await this.#sendQuietly(prefix, {
        id,
        cmd,
        status: "error",
        final: true,
        error: { code: err.code, message: err.message },
        ...(err.result !== undefined ? { result: err.result } : {}),
      }, chain);
    } finally {
      this.#last = { id, cmd, at: Date.now(), outcome };
      const result = outcome === "deferred" ? "accepted" : outcome;
      const counts = this.#byCommand[cmd] ??= {};
      counts[result] = (counts[result] ?? 0) + 1;
      this.#record({
        ts: Date.now(),
        id,
        cmd,
        target,
        keyid: operator?.keyid ?? null,
        verified: operator !== undefined,
        ...(operator?.name ? { key: operator.name } : {}),
        result,
        ...(failure ? { message: failure } : {}),
      });
      this.#running.delete(id);
      if (cmd === "query") this.#queries--;
      if (entry.exclusive && this.#exclusive === `${cmd} ${id}`) this.#exclusive = undefined;
    }
  }

  #settlePending(signal: AbortSignal): void {
    const state = this.#state!;
    for (const op of state.pending()) {
      const s = this.#settlers[op.kind];
      if (!s) continue;
      const { settle, exclusive } = s;
      if (exclusive && this.#exclusive !== undefined) continue;
      if (exclusive) this.#exclusive = `${op.cmd} ${op.id}`;
      this.#running.set(op.id, `${op.cmd} ${op.id}`);
      (async () => {
        let r: SettleResult;
        try {
          r = await settle(op, this.env, signal);
        } catch (e) {
          const err = asCommandError(e, signal);
          if (err.code === ERROR_CODES.interrupted) return;
          r = { status: "error", code: err.code, message: err.message, result: err.result };
        }
        if (!r) return;
        await state.removePending(op.id);
        this.#record({
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
        this.#log?.info(`command ${op.cmd} settled after the restart`, {
          id: op.id,
          status: r.status,
          ...(r.status === "error" ? { code: r.code, error: r.message } : {}),
        });
        await this.#sendQuietly(op.prefix, {
          id: op.id,
          cmd: op.cmd,
          status: r.status,
          final: true,
          ...(r.result !== undefined ? { result: r.result } : {}),
          ...(r.status === "error" ? { error: { code: r.code, message: r.message } } : {}),
        });
      })().catch((e) =>
        this.#log?.error("settling a pending command failed", {
          id: op.id,
          error: (e as Error).message,
        })
      ).finally(() => {
        this.#running.delete(op.id);
        if (this.#exclusive === `${op.cmd} ${op.id}`) this.#exclusive = undefined;
      });
    }
  }

  async #sendQuietly(
    prefix: string,
    reply: Omit<CommandReply, "gatewayId" | "ts">,
    chain: ReplyChain = { last: Promise.resolve() },
  ): Promise<void> {
    try {
      await this.#send(prefix, reply, { waitMs: REPLY_WAIT_MS, chain });
    } catch (e) {
      this.#log?.warn("reply not delivered", {
        id: reply.id ?? undefined,
        cmd: reply.cmd,
        status: reply.status,
        error: (e as Error).message,
      });
    }
  }

  /**
   * Publishes a reply on the current gateway's uplink, waiting up to `waitMs` for a connection
   * (across reconnects, reloads and restarts); resolves on PUBACK. Replies on one `chain` go out
   * in order, but several may wait for their PUBACK at once (query pages).
   */
  #send(
    prefix: string,
    reply: Omit<CommandReply, "gatewayId" | "ts">,
    opts: { waitMs: number; chain: ReplyChain },
  ): Promise<void> {
    const started = opts.chain.last.then(() => this.#startSend(prefix, reply, opts.waitMs));
    opts.chain.last = started.then(() => {}, () => {});
    const acked = started.then((s) => s.acked);
    // A caller that does not wait for the PUBACK must not turn a lost reply into a crash.
    acked.catch(() => {});
    return acked;
  }

  async #startSend(
    prefix: string,
    reply: Omit<CommandReply, "gatewayId" | "ts">,
    waitMs: number,
  ): Promise<{ acked: Promise<void> }> {
    const gatewayId = this.#config?.gateway.id;
    if (!gatewayId) throw new Error("no gateway");
    const { id, cmd, status, final, ...rest } = reply;
    const full: CommandReply = { id, gatewayId, cmd, status, final, ts: Date.now(), ...rest };
    const text = JSON.stringify(full);
    const topic = replyTopic(prefix, gatewayId);
    const deadline = Date.now() + waitMs;
    let lastError = "not connected to the broker";
    // Wrapped: an async function returning the PUBACK promise would wait for it.
    const publish = async (): Promise<{ puback: Promise<void> }> => {
      for (;;) {
        if (this.#closed.signal.aborted) throw new Error("command service closed");
        const u = this.#gateway?.uplink;
        if (u?.connected && u.publish) return { puback: u.publish(topic, text) };
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`reply not sent within ${waitMs}ms: ${lastError}`);
        await this.#waitForConnection(Math.min(left, 1000));
      }
    };
    const first = await publish();
    const acked = (async () => {
      let pending = first;
      for (;;) {
        try {
          return await pending.puback;
        } catch (e) {
          // The connection dropped under it: publish again on the next one (at-least-once).
          lastError = (e as Error).message;
          pending = await publish();
        }
      }
    })();
    return { acked };
  }

  #waitForConnection(ms: number): Promise<void> {
    this.#watchUplink();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#connWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#connWaiters.add(done);
    });
  }

  #wakeConnWaiters(): void {
    for (const w of [...this.#connWaiters]) w();
  }
}

function asCommandError(e: unknown, signal: AbortSignal): CommandError {
  if (e instanceof CommandError) return e;
  if (signal.aborted) {
    return new CommandError(
      ERROR_CODES.interrupted,
      `interrupted: the gateway stopped or restarted (${(e as Error).message})`,
    );
  }
  return new CommandError(ERROR_CODES.failed, (e as Error)?.message ?? String(e), { cause: e });
}

/** Checks the shape of a request; the id is returned with the error when one could be read. */
export function parseRequest(
  body: unknown,
): { request: CommandRequest } | { error: string; id: string | null } {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { error: "expected a JSON object with id (and args, ts, keyid, sig)", id: null };
  }
  const b = body as Record<string, unknown>;
  if (typeof b.id !== "string" || b.id.length === 0 || b.id.length > 200) {
    return { error: "expected id: a string of 1–200 characters, unique per request", id: null };
  }
  const id = b.id;
  if (
    b.args !== undefined && (b.args === null || typeof b.args !== "object" || Array.isArray(b.args))
  ) {
    return { error: "expected args to be a JSON object", id };
  }
  if (b.ts !== undefined && (typeof b.ts !== "number" || !Number.isFinite(b.ts))) {
    return { error: "expected ts to be ms since the epoch (a number)", id };
  }
  // Bounded: an unknown keyid is echoed in the reply, the journal and the audit trail.
  for (const [k, max] of [["keyid", 64], ["sig", 256]] as const) {
    if (b[k] !== undefined && (typeof b[k] !== "string" || (b[k] as string).length > max)) {
      return { error: `expected ${k} to be a string of at most ${max} characters`, id };
    }
  }
  return {
    request: {
      id,
      args: b.args as Record<string, unknown> | undefined,
      ts: b.ts as number | undefined,
      keyid: b.keyid as string | undefined,
      sig: b.sig as string | undefined,
    },
  };
}

/** Arguments as logged: never config text (it may hold secrets), only its size. */
function describeArgs(cmd: string, args: Record<string, unknown>): string | undefined {
  const shown: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    shown[k] = cmd === "config-set" && k === "yaml" && typeof v === "string"
      ? `<${v.length} characters>`
      : v;
  }
  const text = JSON.stringify(shown);
  if (text === "{}") return undefined;
  return text.length > 300 ? text.slice(0, 297) + "..." : text;
}

/** Imports the configured operator keys; one key listed twice gets the union of its scopes. */
async function loadOperatorKeys(
  keys: readonly { key: string; scopes: readonly Scope[]; name?: string }[],
): Promise<OperatorKeys> {
  const trusted = await importOperatorKeys(keys.map((k) => k.key));
  const grants = new Map<string, { name?: string; scopes: Scope[] }>();
  for (const k of keys) {
    const keyid = await keyIdOf(k.key);
    const had = grants.get(keyid);
    const scopes = new Set([...(had?.scopes ?? []), ...k.scopes]);
    const name = had?.name ?? k.name;
    grants.set(keyid, { ...(name ? { name } : {}), scopes: SCOPES.filter((x) => scopes.has(x)) });
  }
  return { trusted, grants };
}
