/**
 * The remote-command protocol between a fleet console (or any MQTT client) and gateways.
 *
 * Topics, with `prefix` the commands config's topic prefix (default `gateways`):
 * - request to one gateway:  `{prefix}/{gatewayId}/cmd/{name}`
 * - request to every gateway: `{prefix}/fleet/cmd/{name}` (so `fleet` is not a valid gateway id)
 * - replies from a gateway:  `{prefix}/{gatewayId}/reply` (one topic per gateway; match `id`)
 * - retained status + last will: the MQTT uplink's `statusTopic` (default `{prefix}/{gatewayId}/status`)
 *
 * A request is a JSON object {@linkcode CommandRequest}; every request gets at least one reply
 * {@linkcode CommandReply}: `accepted` first for long commands, then `progress`/`page` replies,
 * and always a final one with `final: true` (`status` `done` or `error`). Malformed requests get an
 * `error` reply (with the id when one could be read), never a crash.
 *
 * Signatures (when a gateway requires them): Ed25519 over the UTF-8 bytes of
 * {@linkcode signedBytes}, i.e. canonical JSON of `{cmd, target, id, ts, args}` where `target` is
 * the gateway id or `fleet` as in the topic — so a request cannot be replayed to another command,
 * another gateway or, after the gateway's replay window, at all.
 */
import { canonicalJson } from "../update/canonical.ts";
import {
  fromBase64,
  importTrustedKeys,
  type PublicKeyText,
  sign,
  type SigningKey,
  type TrustedKey,
} from "../update/keys.ts";

/** Commands a gateway understands. */
export const COMMAND_NAMES = [
  "ping",
  "status",
  "restart",
  "update-check",
  "update-apply",
  "rollback",
  "config-get",
  "config-set",
  "query",
  "logs",
] as const;

/** One of {@linkcode COMMAND_NAMES}. */
export type CommandName = typeof COMMAND_NAMES[number];

/** The target segment of fleet-wide requests. */
export const FLEET_TARGET = "fleet";

/** Default topic prefix. */
export const DEFAULT_PREFIX = "gateways";

/** Topic of a request named `cmd` to one gateway or, with `target` `fleet`, to all. */
export function commandTopic(prefix: string, target: string, cmd: string): string {
  return `${prefix}/${target}/cmd/${cmd}`;
}

/** Topic a gateway publishes its replies on. */
export function replyTopic(prefix: string, gatewayId: string): string {
  return `${prefix}/${gatewayId}/reply`;
}

/** Splits a request topic into target and command; undefined when it is not one. */
export function parseCommandTopic(
  prefix: string,
  topic: string,
): { target: string; cmd: string } | undefined {
  if (!topic.startsWith(prefix + "/")) return undefined;
  const parts = topic.slice(prefix.length + 1).split("/");
  if (parts.length !== 3 || parts[1] !== "cmd" || !parts[0] || !parts[2]) return undefined;
  return { target: parts[0], cmd: parts[2] };
}

/** A request, as published on a command topic. */
export interface CommandRequest {
  /** Chosen by the sender, unique per request (a UUID is fine); echoed in every reply. */
  id: string;
  /** Command arguments; see each command. */
  args?: Record<string, unknown>;
  /** Sender's clock, ms since epoch; required when signed. */
  ts?: number;
  /** Key id (as `outpost release keygen` prints it) of the signing operator key. */
  keyid?: string;
  /** Base64 Ed25519 signature over {@linkcode signedBytes}. */
  sig?: string;
}

/** Reply states: `accepted` (work started), `progress`, `page` (part of a paged result), `done`, `error`. */
export type ReplyStatus = "accepted" | "progress" | "page" | "done" | "error";

/** A reply, as published on the gateway's reply topic. */
export interface CommandReply {
  /** The request's id; `null` when the request was too malformed to read one. */
  id: string | null;
  gatewayId: string;
  cmd: string;
  status: ReplyStatus;
  /** True on the last reply to a request. */
  final: boolean;
  ts: number;
  result?: unknown;
  /** On `error`: a stable code (`malformed`, `unknown-command`, `bad-signature`, `unsigned`, `replayed`, `bad-args`, `busy`, `failed`) and a message for people. */
  error?: { code: string; message: string };
  /** On `page`: 0-based page number and whether more follow. */
  page?: number;
  /** On `progress`: how far, in the command's own unit. */
  progress?: { done: number; total?: number; note?: string };
}

/** The bytes an operator signs for a request. */
export function signedBytes(
  cmd: string,
  target: string,
  req: Pick<CommandRequest, "id" | "ts" | "args">,
): Uint8Array {
  return new TextEncoder().encode(
    canonicalJson({ cmd, target, id: req.id, ts: req.ts, args: req.args ?? {} }),
  );
}

/** Signs a request in place (sets `ts` when missing, `keyid` and `sig`). */
export async function signRequest(
  key: SigningKey,
  cmd: string,
  target: string,
  req: CommandRequest,
): Promise<CommandRequest> {
  req.ts ??= Date.now();
  req.keyid = key.keyid;
  req.sig = await sign(key, signedBytes(cmd, target, req));
  return req;
}

/** Imports operator public keys (`ed25519:` + base64) for {@linkcode verifyRequest}. */
export function importOperatorKeys(
  keys: readonly PublicKeyText[],
): Promise<Map<string, TrustedKey>> {
  return importTrustedKeys(keys);
}

/** Checks a request's signature; returns an error code and message, or undefined when valid. */
export async function verifyRequest(
  keys: Map<string, TrustedKey>,
  cmd: string,
  target: string,
  req: CommandRequest,
): Promise<{ code: string; message: string } | undefined> {
  if (!req.sig || !req.keyid) {
    return {
      code: "unsigned",
      message: "this gateway requires commands signed by an operator key",
    };
  }
  if (typeof req.ts !== "number") {
    return { code: "malformed", message: "a signed request needs ts (ms since epoch)" };
  }
  const key = keys.get(req.keyid);
  if (!key) return { code: "bad-signature", message: `unknown operator key ${req.keyid}` };
  let sig: Uint8Array;
  try {
    sig = fromBase64(req.sig, "sig");
  } catch (e) {
    return { code: "bad-signature", message: (e as Error).message };
  }
  const ok = await crypto.subtle.verify(
    "Ed25519",
    key.key,
    sig as Uint8Array<ArrayBuffer>,
    signedBytes(cmd, target, req) as Uint8Array<ArrayBuffer>,
  );
  return ok ? undefined : { code: "bad-signature", message: "signature does not verify" };
}
