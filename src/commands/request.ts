/**
 * What the service checks of a request before it runs: its size and shape, its signature's
 * operator key, and the replay window; and how arguments and failures are shown.
 */
import type { Logger } from "../log.ts";
import { keyIdOf, type TrustedKey } from "../update/mod.ts";
import type { CommandsConfig } from "./config.ts";
import { CommandError } from "./handler.ts";
import type { CommandState } from "./state.ts";
import {
  type CommandRequest,
  ERROR_CODES,
  importOperatorKeys,
  type Scope,
  SCOPES,
} from "../protocol/mod.ts";

/** Requests larger than this are refused unread (config-set carries a whole YAML file). */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** The operator keys a request may be signed with, and what each may do. */
export interface OperatorKeys {
  trusted: Map<string, TrustedKey>;
  grants: Map<string, { name?: string; scopes: Scope[] }>;
}

/** `expired` or `replayed`, or undefined after remembering the request's id. */
export async function checkReplay(
  cfg: CommandsConfig,
  req: CommandRequest,
  state: CommandState,
  log: Logger | undefined,
): Promise<{ code: string; message: string } | undefined> {
  const id = req.id;
  const now = Date.now();
  if (req.ts !== undefined && Math.abs(now - req.ts) > cfg.replayWindow) {
    return {
      code: ERROR_CODES.expired,
      message: `expired: request ts ${req.ts} is ${
        Math.round(Math.abs(now - req.ts) / 1000)
      }s from the gateway clock (${now}), outside the replay window of ${cfg.replayWindow / 1000}s`,
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
    log?.error("cannot persist the replay cache; replays across a restart are possible", {
      error: (e as Error).message,
    })
  );
  return undefined;
}

/** A handler's failure as the error reply gives it. */
export function asCommandError(e: unknown, signal: AbortSignal): CommandError {
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
export function describeArgs(cmd: string, args: Record<string, unknown>): string | undefined {
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
export async function loadOperatorKeys(
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
