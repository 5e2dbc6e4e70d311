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
import type { InboundMessage, UplinkSubscription } from "../uplink/mod.ts";
import { admit } from "./admit.ts";
import { auditPath, AuditTrail } from "./audit.ts";
import { type CommandsConfig, commandsOf } from "./config.ts";
import {
  type Builtins,
  type CommandContext,
  type CommandEnv,
  CommandError,
  type CommandServiceOptions,
  type CommandsStatus,
  DEFERRED,
  type Operator,
  type Registered,
} from "./handler.ts";
import { AuditRecorder } from "./record.ts";
import { Replies, REPLY_WAIT_MS, type ReplyChain } from "./replies.ts";
import { asCommandError, describeArgs, loadOperatorKeys, type OperatorKeys } from "./request.ts";
import { settlePending } from "./settle.ts";
import { CommandState, type PendingOp } from "./state.ts";
import { type CommandRequest, ERROR_CODES, FLEET_TARGET } from "../protocol/mod.ts";

export {
  type Builtins,
  type CommandContext,
  type CommandEnv,
  CommandError,
  type CommandHandler,
  type CommandServiceOptions,
  type CommandsStatus,
  DEFERRED,
  type DeferredOp,
  type ExtraHandlers,
  type HandlerOptions,
  type Operator,
  type Settler,
  type SettleResult,
} from "./handler.ts";
export { MAX_REQUEST_BYTES, parseRequest } from "./request.ts";

/** Queries running at once. */
const MAX_QUERIES = 2;

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
  readonly #recorder = new AuditRecorder({
    trail: () => this.#audit,
    auditLog: () => this.#auditLog,
    log: () => this.#log,
  });
  #refusedBy = new Map<string, number>();
  #byCommand: Record<string, Record<string, number>> = {};
  #attached = new AbortController();
  #exclusive: string | undefined;
  #queries = 0;
  #running = new Map<string, string>();
  #handled = 0;
  #refused = 0;
  #last: CommandsStatus["last"] = null;
  readonly #replies = new Replies({
    gateway: () => this.#gateway,
    gatewayId: () => this.#config?.gateway.id,
    log: () => this.#log,
    closed: this.#closed.signal,
  });

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
    this.#replies.watchUplink();
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
    this.#replies.wakeConnWaiters();
  }

  /** Detaches for good: replies still waiting for a connection are dropped. */
  close(): void {
    this.detach();
    this.#closed.abort();
    this.#replies.wakeConnWaiters();
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
      this.#recorder.refusal({
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
      return this.#replies.sendQuietly(prefix, {
        id,
        cmd,
        status: "error",
        final: true,
        error: { code, message },
      });
    };
    const admitted = await admit(payload, {
      cfg,
      target,
      cmd,
      keys: this.#keys,
      state: this.#state!,
      log: this.#log,
    });
    if ("refused" in admitted) {
      operator = admitted.operator;
      claimed.keyid = admitted.keyid;
      return refuse(admitted.id, admitted.refused.code, admitted.refused.message);
    }
    const req = admitted.request;
    const id = req.id;
    operator = admitted.operator;
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
        this.#replies.send(prefix, { id, cmd, status, final: false, ...fields }, {
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
      await this.#replies.sendQuietly(
        prefix,
        { id, cmd, status: "done", final: true, result },
        chain,
      );
    } catch (e) {
      const err = asCommandError(e, signal);
      outcome = err.code;
      failure = err.message;
      log.warn(`command ${cmd} failed`, { id, code: err.code, error: err.message });
      await this.#replies.sendQuietly(prefix, {
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
      this.#recorder.record({
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
    settlePending({
      state: this.#state!,
      settlers: this.#settlers,
      env: this.env,
      signal,
      log: () => this.#log,
      recorder: this.#recorder,
      replies: this.#replies,
      busy: () => this.#exclusive !== undefined,
      begin: (op, exclusive) => {
        if (exclusive) this.#exclusive = `${op.cmd} ${op.id}`;
        this.#running.set(op.id, `${op.cmd} ${op.id}`);
      },
      end: (op) => {
        this.#running.delete(op.id);
        if (this.#exclusive === `${op.cmd} ${op.id}`) this.#exclusive = undefined;
      },
    });
  }
}
