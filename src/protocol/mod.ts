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
 * Signatures (required unless a gateway sets `commands.insecureUnsigned`; only `ping` is open):
 * Ed25519 over the UTF-8 bytes of {@linkcode signedBytes}, i.e. canonical JSON of
 * `{cmd, target, id, ts, args}` where `target` is the gateway id or `fleet` as in the topic — so a
 * request cannot be replayed to another command, another gateway or, after the gateway's replay
 * window, at all. Each operator key carries scopes ({@linkcode COMMAND_SCOPES}).
 */
import {
  canonicalJson,
  fromBase64,
  importTrustedKeys,
  type PublicKeyText,
  sign,
  type SigningKey,
  type TrustedKey,
} from "../update/mod.ts";

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
  "alarm-ack",
  "alarm-clear",
  "devices-resume",
] as const;

/** One of {@linkcode COMMAND_NAMES}. */
export type CommandName = typeof COMMAND_NAMES[number];

/** Scopes an operator key can carry; each grants the commands {@linkcode COMMAND_SCOPES} lists. */
export const SCOPES = ["read", "operate", "admin"] as const;

/** One of {@linkcode SCOPES}. */
export type Scope = typeof SCOPES[number];

/** The scope a key needs for each command (scopes do not include one another). */
export const COMMAND_SCOPES: Readonly<Record<CommandName, Scope>> = {
  ping: "read",
  status: "read",
  query: "read",
  logs: "read",
  "config-get": "read",
  restart: "operate",
  "update-check": "operate",
  "update-apply": "operate",
  rollback: "operate",
  "alarm-ack": "operate",
  "alarm-clear": "operate",
  "devices-resume": "operate",
  "config-set": "admin",
};

/** Commands a gateway answers without a signature (nothing in the reply is not in its status). */
export const OPEN_COMMANDS: readonly CommandName[] = ["ping"];

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
  /** On `error`: a stable code (see {@linkcode ERROR_CODES}) and a message for people. */
  error?: { code: string; message: string };
  /** On `page`: 0-based page number and whether more follow. */
  page?: number;
  /** On `progress`: how far, in the command's own unit. */
  progress?: { done: number; total?: number; note?: string };
}

/** Stable error codes of `error` replies. */
export const ERROR_CODES = {
  /** Not JSON, not an object, no id, or a field of the wrong type. */
  malformed: "malformed",
  /** No command of that name. */
  unknownCommand: "unknown-command",
  /** The signature does not verify (another command, target, id, ts or args; or corrupt). */
  badSignature: "bad-signature",
  /** The request is not signed, and this gateway requires signatures (the default). */
  unsigned: "unsigned",
  /** Signed by a key that is not in this gateway's `commands.operatorKeys`. */
  unknownKey: "unknown-key",
  /** `ts` lies outside the gateway's replay window (too old, or too far ahead). */
  expired: "expired",
  /** The id was received before. */
  replayed: "replayed",
  /** The arguments are wrong (message says which). */
  badArgs: "bad-args",
  /** Another command of this kind is running. */
  busy: "busy",
  /** The command ran and failed. */
  failed: "failed",
  /** The key lacks the command's scope, or the command is not in `commands.allow`. */
  forbidden: "forbidden",
  /** config-set: the new config changes a trust anchor (message names the key path). */
  protectedConfig: "protected",
  /** The command needs something this gateway does not have (e.g. self-update configured). */
  unavailable: "unavailable",
  /** config-set: `expectSha256` does not match the config on disk (result has the current one). */
  conflict: "conflict",
  /** config-set: the YAML does not validate; result.problems lists line:col of each problem. */
  invalidConfig: "invalid-config",
  /** config-set: applied but not healthy within the deadline, so the previous config is back. */
  reverted: "reverted",
  /** update-apply/rollback: the new version did not become healthy; the previous one runs. */
  rolledBack: "rolled-back",
  /** The command was cut short (the gateway stopped or restarted meanwhile). */
  interrupted: "interrupted",
  /** devices-resume: no device of that class on this gateway (the message lists its classes). */
  unknownClass: "unknown-class",
  /** devices-resume: the class's rollout is running, done or not begun: nothing to resume. */
  notStopped: "not-stopped",
} as const;

/** `args` of `devices-resume`: resume the stopped rollout of this device class. */
export interface DevicesResumeArgs {
  class: string;
}

/** `result` of `devices-resume`: the rollout it resumed, with its status before and after. */
export interface DevicesResumeResult {
  class: string;
  /** The artifact and version the rollout offers. */
  name: string;
  version: string;
  was: "stopped";
  /** `running`: the next batch is offered by the gateway's next planning round. */
  status: string;
  /** Devices that failed this version; `forgiven` of them no longer count to the threshold. */
  failures: number;
  forgiven: number;
}

/** `args` of `logs`. */
export interface LogsArgs {
  /** How many of the most recent lines (default 100, at most what the gateway keeps, 500). */
  lines?: number;
  /** Only lines at this level or above. */
  level?: "debug" | "info" | "warn" | "error";
  /** Instead of log lines: the most recent entries of the audit trail of remote commands. */
  audit?: boolean;
}

/** `args` of `query`: readings of one device, oldest first, in `page` replies. */
export interface QueryArgs {
  device: string;
  metric?: string;
  /** Inclusive lower bound of the reading's timestamp: ms since epoch or ISO 8601. */
  from?: number | string;
  /** Exclusive upper bound. */
  to?: number | string;
  /** Resume after this sequence number (the `lastSeq` of the last page received). */
  afterSeq?: number;
  /** Stop after this many rows in all. */
  limit?: number;
  /** Rows per page, at most the gateway's `commands.query.pageRows`. */
  pageRows?: number;
}

/** Columns of {@linkcode QueryRow}, as named in {@linkcode QueryPage}. */
export const QUERY_COLUMNS = [
  "seq",
  "ts",
  "device",
  "metric",
  "value",
  "unit",
  "forwarded",
] as const;

/** One reading in a query page (an array, to keep pages small). */
export type QueryRow = [
  seq: number,
  ts: number,
  device: string,
  metric: string,
  value: number | boolean | string,
  unit: string | null,
  forwarded: boolean,
];

/** `result` of a `page` reply to `query`. Pages come in sequence order, numbered from 0. */
export interface QueryPage {
  columns: typeof QUERY_COLUMNS;
  rows: QueryRow[];
  /** Sequence number of the last row: pass it as `afterSeq` to resume after this page. */
  lastSeq: number;
}

/** `result` of the final `done` reply to `query`. */
export interface QueryDone {
  /** Rows sent in all pages. */
  rows: number;
  pages: number;
  /** Sequence number of the last row sent, or null when none matched. */
  lastSeq: number | null;
  /** False when `limit` stopped the query before the end of the matching rows. */
  complete: boolean;
}

/** A query row as a reading (the shape `outpost export` writes). */
export function queryRowReading(row: QueryRow): {
  seq: number;
  ts: number;
  device: string;
  metric: string;
  value: number | boolean | string;
  unit?: string;
  forwarded: boolean;
} {
  const [seq, ts, device, metric, value, unit, forwarded] = row;
  return { seq, ts, device, metric, value, ...(unit ? { unit } : {}), forwarded };
}

/** `args` of `config-set`. */
export interface ConfigSetArgs {
  /** The whole new config file. */
  yaml: string;
  /** Apply only if the config on disk still has this SHA-256 (hex), as config-get returned it. */
  expectSha256?: string;
  /** How long the gateway has to be healthy with it before it is reverted (ms or "90s"). */
  deadline?: number | string;
}

/** `result` of `config-get`. */
export interface ConfigGetResult {
  path: string;
  yaml: string;
  /** SHA-256 (hex) of the file's bytes. */
  sha256: string;
  /** SHA-256 of `<config>.prev`, the config before the last config-set, when there is one. */
  prevSha256: string | null;
}

/** `args` of `update-apply`: apply only when the channel offers this version. */
export interface UpdateApplyArgs {
  version?: string;
}

/** SHA-256 of a text's UTF-8 bytes, hex (as config-get reports and config-set expects). */
export async function sha256Hex(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
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
      message:
        "missing signature: this gateway requires commands signed by an operator key (commands.operatorKeys)",
    };
  }
  if (typeof req.ts !== "number") {
    return { code: "malformed", message: "a signed request needs ts (ms since epoch)" };
  }
  const key = keys.get(req.keyid);
  if (!key) {
    return {
      code: "unknown-key",
      message: `unknown operator key ${req.keyid} (not in this gateway's commands.operatorKeys)`,
    };
  }
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
