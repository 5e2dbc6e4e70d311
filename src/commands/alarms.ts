/**
 * The alarm commands: `alarm-ack` acknowledges an active alarm, `alarm-clear` clears one by hand
 * (a `cleared` transition, sent upstream; the rule starts afresh). Both take `{key}`, the alarm's
 * `rule` or `rule[instance]` as `/status` → `alarms.list` names it, need the `operate` scope, and
 * are audited like every command. The history names the operator key that asked.
 *
 * @module
 */
import { AlarmNotFoundError } from "../edge/mod.ts";
import { ERROR_CODES } from "../protocol/mod.ts";
import { type CommandContext, type CommandEnv, CommandError } from "./handler.ts";

/** Longest alarm key accepted (rule names and instances are far shorter). */
const MAX_KEY = 512;

function keyOf(ctx: CommandContext): string {
  const extra = Object.keys(ctx.args).filter((k) => k !== "key");
  if (extra.length) {
    throw new CommandError(ERROR_CODES.badArgs, `unknown args ${extra.join(", ")}; expected key`);
  }
  const key = ctx.args.key;
  if (typeof key !== "string" || key === "" || key.length > MAX_KEY) {
    throw new CommandError(
      ERROR_CODES.badArgs,
      `args.key: expected an alarm key (rule or rule[instance]), got ${
        JSON.stringify(key)?.slice(0, 80)
      }`,
    );
  }
  return key;
}

/** Who asked, for the alarm history: the key's name, else its id. */
function who(ctx: CommandContext): string {
  const op = ctx.operator;
  return op ? `key ${op.name ?? op.keyid}` : "unsigned command";
}

function run(ctx: CommandContext, what: "ack" | "clear"): Promise<unknown> {
  const key = keyOf(ctx);
  const edge = ctx.gateway.edge;
  if (!edge?.hasRules) {
    throw new CommandError(ERROR_CODES.unavailable, "this gateway has no rules:, so no alarms");
  }
  try {
    return Promise.resolve(
      what === "ack"
        ? { acknowledged: edge.acknowledge(key, who(ctx)) }
        : { cleared: edge.clear(key, who(ctx)) },
    );
  } catch (e) {
    if (e instanceof AlarmNotFoundError) throw new CommandError(ERROR_CODES.failed, e.message);
    throw e;
  }
}

/** The alarm command handlers, for the built-in list of `createCommandService`. */
export const alarmCommands: Record<
  "alarm-ack" | "alarm-clear",
  { handler: (ctx: CommandContext, env: CommandEnv) => Promise<unknown> }
> = {
  "alarm-ack": { handler: (ctx) => run(ctx, "ack") },
  "alarm-clear": { handler: (ctx) => run(ctx, "clear") },
};
