/**
 * The checks a request passes before the service looks for its handler: size, JSON, shape,
 * signature (or the open/unsigned rules), replay window, known command, the key's scope and the
 * gateway's allow-list. The first check that fails gives the refusal's code and message.
 */
import type { Logger } from "../log.ts";
import type { CommandsConfig } from "./config.ts";
import type { Operator } from "./handler.ts";
import { checkReplay, MAX_REQUEST_BYTES, type OperatorKeys, parseRequest } from "./request.ts";
import type { CommandState } from "./state.ts";
import {
  COMMAND_NAMES,
  COMMAND_SCOPES,
  type CommandName,
  type CommandRequest,
  ERROR_CODES,
  OPEN_COMMANDS,
  verifyRequest,
} from "../protocol/mod.ts";

/** What {@linkcode admit} checks a request against. */
export interface AdmitOptions {
  cfg: CommandsConfig;
  /** The gateway id or `fleet`, as in the request topic. */
  target: string;
  cmd: string;
  keys: Promise<OperatorKeys>;
  state: CommandState;
  log: Logger | undefined;
}

/**
 * A request that may run (with the operator key it was verified with; none for an open command
 * sent unsigned or with `insecureUnsigned`), or why it is refused. A refusal carries what was
 * known by then: the request id, the verified operator or the key id it only claimed.
 */
export type Admission =
  | { request: CommandRequest; operator?: Operator }
  | {
    refused: { code: string; message: string };
    id: string | null;
    operator?: Operator;
    keyid?: string;
  };

/** Checks one request payload; see the module documentation. */
export async function admit(payload: Uint8Array, o: AdmitOptions): Promise<Admission> {
  const { cfg, target, cmd } = o;
  if (payload.length > MAX_REQUEST_BYTES) {
    return {
      id: null,
      refused: {
        code: ERROR_CODES.malformed,
        message: `request of ${payload.length} bytes is over the limit of ${MAX_REQUEST_BYTES}`,
      },
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch (e) {
    return {
      id: null,
      refused: {
        code: ERROR_CODES.malformed,
        message: `request is not JSON: ${(e as Error).message}`,
      },
    };
  }
  const parsed = parseRequest(body);
  if ("error" in parsed) {
    return { id: parsed.id, refused: { code: ERROR_CODES.malformed, message: parsed.error } };
  }
  const req = parsed.request;
  const id = req.id;
  let operator: Operator | undefined;
  const refuse = (code: string, message: string): Admission => ({
    id,
    refused: { code, message },
    ...(operator ? { operator } : {}),
    ...(req.keyid !== undefined ? { keyid: req.keyid } : {}),
  });
  const known = (COMMAND_NAMES as readonly string[]).includes(cmd);
  if (req.sig !== undefined || req.keyid !== undefined) {
    const keys = await o.keys;
    const bad = await verifyRequest(keys.trusted, cmd, target, req).catch((e) => ({
      code: ERROR_CODES.badSignature,
      message: `signature unusable: ${(e as Error).message}`,
    }));
    if (bad) return refuse(bad.code, bad.message);
    const grant = keys.grants.get(req.keyid!)!;
    operator = { keyid: req.keyid!, ...grant };
  } else if (cfg.insecureUnsigned) {
    operator = undefined;
  } else if (!known || !OPEN_COMMANDS.includes(cmd as CommandName)) {
    return refuse(
      ERROR_CODES.unsigned,
      `missing signature: this gateway runs ${cmd} only when signed by an operator key with the ${
        known ? COMMAND_SCOPES[cmd as CommandName] : "right"
      } scope (commands.operatorKeys${cfg.operatorKeys.length ? "" : " is empty"})`,
    );
  }
  // Unsigned open commands (ping) skip the replay cache: anyone can make a fresh one, and a
  // flood of them must not push the ids of signed requests out of it.
  if (operator || cfg.insecureUnsigned) {
    const bad = await checkReplay(cfg, req, o.state, o.log);
    if (bad) return refuse(bad.code, bad.message);
  }
  if (!known) {
    return refuse(
      ERROR_CODES.unknownCommand,
      `unknown command "${cmd}"; expected one of ${COMMAND_NAMES.join(", ")}`,
    );
  }
  const needed = COMMAND_SCOPES[cmd as CommandName];
  if (operator && !operator.scopes.includes(needed)) {
    return refuse(
      ERROR_CODES.forbidden,
      `command "${cmd}" needs the ${needed} scope; operator key ${
        operator.name ? `"${operator.name}" (${operator.keyid})` : operator.keyid
      } has ${operator.scopes.join(", ")}`,
    );
  }
  if (cfg.allow && !(cfg.allow as readonly string[]).includes(cmd)) {
    return refuse(
      ERROR_CODES.forbidden,
      `command "${cmd}" is not allowed on this gateway (commands.allow: ${cfg.allow.join(", ")})`,
    );
  }
  return { request: req, ...(operator ? { operator } : {}) };
}
