/**
 * The secrets and keys a config references (access token, TLS private keys, `${file:…}`
 * secrets, the unit's environment file, the config itself) and the check that no group or other
 * user can read them.
 */
import { tokenPath } from "../http/token.ts";
import { resolvePath } from "./host.ts";
import type { Check, DoctorContext } from "./types.ts";

/** A file that holds a secret. */
export interface SecretFile {
  /** Absolute path on the host. */
  path: string;
  /** What it is, e.g. `uplink.tls.key`. */
  what: string;
  /** May not exist yet (the token before the first start). */
  optional?: boolean;
}

/** The environment file the unit reads secrets from (docs/install.md). */
export const ENV_FILE = "/etc/outpost/outpost.env";

function tlsKeys(value: unknown, path: string, out: [string, string][], depth = 0): void {
  if (depth > 16 || value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const at = Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
    if (k === "tls" && v && typeof v === "object") {
      const key = (v as { key?: unknown }).key;
      if (typeof key === "string") out.push([`${at}.key`, key]);
    } else {
      tlsKeys(v, at, out, depth + 1);
    }
  }
}

/** The `${file:/path}` references in a config file's text. */
export function fileRefs(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{file:([^}]+)\}/g)].map((m) => m[1].trim()))];
}

/** Every secret file the config references, plus the config and the unit's environment file. */
export function secretFiles(ctx: DoctorContext): SecretFile[] {
  const out: SecretFile[] = [];
  const abs = (p: string) => resolvePath(p, ctx.workdir);
  if (ctx.configPath) out.push({ path: ctx.configPath, what: "config file" });
  out.push({ path: ENV_FILE, what: "unit environment file", optional: true });
  const c = ctx.config;
  if (c) {
    if (c.http.enabled) {
      out.push({ path: abs(tokenPath(c)), what: "access token (http.tokenFile)", optional: true });
    }
    const keys: [string, string][] = [];
    tlsKeys(c, "", keys);
    for (const [what, p] of keys) out.push({ path: abs(p), what });
  }
  for (const p of fileRefs(ctx.configText ?? "")) {
    out.push({ path: abs(p), what: "${file:} secret" });
  }
  const seen = new Set<string>();
  return out.filter((f) => !seen.has(f.path) && (seen.add(f.path), true));
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** `files.secrets`: secrets and keys are readable by their owner only (no group/other bits). */
export function secretModes(ctx: DoctorContext): Check {
  const id = "files.secrets";
  const title = "secrets readable by their owner only";
  const files = secretFiles(ctx);
  const open: string[] = [];
  const missing: string[] = [];
  const fine: string[] = [];
  for (const f of files) {
    const st = ctx.host.stat(f.path);
    if (!st) {
      if (!f.optional) missing.push(`${f.what} ${f.path}`);
      continue;
    }
    const mode = st.mode ?? 0;
    if (mode & 0o077) {
      const who = [mode & 0o070 ? "group" : "", mode & 0o007 ? "others" : ""].filter(Boolean);
      open.push(`${f.what} ${f.path} is mode ${octal(mode)} (${who.join(" and ")} may use it)`);
    } else {
      fine.push(`${f.path} ${octal(mode)}`);
    }
  }
  if (open.length) {
    return {
      id,
      title,
      verdict: "fail",
      reason: open.join("; "),
      fix: `chmod 600 ${
        open.map((o) => o.split(" is mode")[0].split(" ").pop()).join(" ")
      } (owned by the gateway's user, or root for ${ENV_FILE})`,
    };
  }
  if (missing.length) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `referenced but missing: ${missing.join("; ")}`,
      fix: "create the file (mode 0600) or fix the path in the config",
    };
  }
  if (!fine.length) {
    return { id, title, verdict: "skip", reason: "no config and no secret files found" };
  }
  return { id, title, verdict: "pass", reason: fine.join(", ") };
}
