/**
 * No default or weak credentials: the page's access token, secrets in the config, credentials in
 * URLs (the config's own check, applied to every URL), the page served in clear.
 */
import { checkUrlCredentials } from "../config/credentials.ts";
import { isLoopbackListen } from "../config/gateway.ts";
import { Ctx } from "../config/schema.ts";
import { readTokenFile, tokenPath } from "../http/token.ts";
import { isSecretKey, redactUrl } from "../redact.ts";
import { resolvePath } from "./host.ts";
import { type Check, type DoctorContext, noConfig } from "./types.ts";

/** Passwords found in vendor defaults and the top of every leaked-password list. */
const WEAK = new Set([
  "admin",
  "password",
  "changeme",
  "change-me",
  "default",
  "secret",
  "public",
  "private",
  "root",
  "toor",
  "raspberry",
  "outpost",
  "guest",
  "test",
  "1234",
  "12345",
  "123456",
  "12345678",
  "123456789",
  "qwerty",
  "letmein",
]);

/** Shorter secrets are weak whatever they are. */
const MIN_SECRET = 8;

const USERINFO_RE = /^[a-z][a-z0-9+.-]*:\/\/[^\/?#\s@]*:[^\/?#\s@]*@/i;

function walk(
  value: unknown,
  path: string,
  visit: (path: string, key: string, v: string) => void,
  depth = 0,
): void {
  if (depth > 16 || value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const at = Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
    if (typeof v === "string") visit(at, k, v);
    else walk(v, at, visit, depth + 1);
  }
}

/** `credentials.defaults`: no default, weak or URL-embedded secret, and a usable page token. */
export function defaultCredentials(ctx: DoctorContext): Check {
  const id = "credentials.defaults";
  const title = "no default passwords";
  const c = ctx.config;
  if (!c) return { id, title, verdict: "skip", reason: noConfig(ctx) };
  const fails: string[] = [];
  const notes: string[] = [];
  if (c.http.enabled) {
    const path = resolvePath(tokenPath(c), ctx.workdir);
    if (!ctx.host.exists(path)) {
      notes.push(
        `no access token yet at ${path}: the gateway generates a random one on first start`,
      );
    } else {
      try {
        readTokenFile(ctx.host.path(path));
        notes.push(`access token ${path} usable`);
      } catch (e) {
        fails.push((e as Error).message);
      }
    }
    if (!isLoopbackListen(c.http.listen) && !c.http.tls) {
      fails.push(
        `http.listen ${c.http.listen} without tls (allowInsecure): the access token crosses ` +
          "the network in clear",
      );
    }
  }
  const ctxIssues = new Ctx();
  checkUrlCredentials(c, ctxIssues);
  for (const i of ctxIssues.issues) fails.push(`${i.path.join(".")}: ${i.message}`);
  walk(c, "", (path, key, v) => {
    if (USERINFO_RE.test(v) && !fails.some((f) => f.startsWith(`${path}:`))) {
      fails.push(`${path}: credentials in the URL "${redactUrl(v)}"`);
    }
    if (!isSecretKey(key) || v === ctx.placeholder || v === "") return;
    if (WEAK.has(v.toLowerCase())) fails.push(`${path} is a well-known default password`);
    else if (v.length < MIN_SECRET) fails.push(`${path} is shorter than ${MIN_SECRET} characters`);
  });
  if (fails.length) {
    return {
      id,
      title,
      verdict: "fail",
      reason: fails.join("; "),
      fix:
        "use long random secrets (openssl rand -base64 32) as ${ENV} in /etc/outpost/outpost.env " +
        "or ${file:/path}; outpost token rotate --config FILE for the page token",
    };
  }
  return {
    id,
    title,
    verdict: "pass",
    reason: [...notes, "no weak or URL-embedded secret in the config"].join("; "),
  };
}
