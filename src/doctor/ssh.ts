/**
 * sshd checks, read from /etc/ssh/sshd_config and what it includes (Debian:
 * `Include /etc/ssh/sshd_config.d/*.conf`) the way sshd reads them: keywords are case-insensitive,
 * the first value obtained wins, and a `Match` line opens a block that lasts to the next `Match`
 * or the end of its file.
 */
import type { Host } from "./host.ts";
import type { Check, DoctorContext } from "./types.ts";

/** One directive of the sshd configuration. */
export interface SshdEntry {
  /** Keyword, lowercased. */
  key: string;
  value: string;
  /** File and line it came from. */
  at: string;
  /** The criteria of the Match block it is in (`Address 10.0.0.5`); absent when global. */
  match?: string;
}

const MAIN = "/etc/ssh/sshd_config";
const DROP_IN = "/etc/ssh/sshd_config.d/";

function globFiles(host: Host, pattern: string): string[] {
  const path = pattern.startsWith("/") ? pattern : `/etc/ssh/${pattern}`;
  if (!/[*?[]/.test(path)) return host.exists(path) ? [path] : [];
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const base = path.slice(path.lastIndexOf("/") + 1);
  const re = new RegExp(
    `^${base.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`,
  );
  return (host.list(dir) ?? []).filter((n) => re.test(n)).map((n) => `${dir}/${n}`);
}

/** Reads the sshd configuration with its includes; undefined when sshd_config does not exist. */
export function readSshdConfig(host: Host): SshdEntry[] | undefined {
  if (host.read(MAIN) === undefined) return undefined;
  const out: SshdEntry[] = [];
  const visit = (file: string, inherited: string | undefined, depth: number) => {
    const text = host.read(file);
    if (text === undefined || depth > 16) return;
    let match = inherited;
    text.split("\n").forEach((raw, i) => {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) return;
      const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
      if (!m) return;
      const key = m[1].toLowerCase();
      const value = m[2].trim().replace(/^"(.*)"$/, "$1");
      if (key === "match") {
        match = /^all$/i.test(value) ? undefined : value;
        return;
      }
      if (key === "include") {
        for (const p of value.split(/\s+/)) {
          for (const f of globFiles(host, p)) visit(f, match, depth + 1);
        }
        return;
      }
      out.push({ key, value, at: `${file}:${i + 1}`, ...(match ? { match } : {}) });
    });
  };
  visit(MAIN, undefined, 0);
  return out;
}

/** The value sshd uses outside any Match block: the first one given. */
function globalValue(entries: SshdEntry[], ...keys: string[]): SshdEntry | undefined {
  return entries.find((e) => !e.match && keys.includes(e.key));
}

function noSshd(id: string, title: string): Check {
  return { id, title, verdict: "skip", reason: `no ${MAIN}: sshd is not installed` };
}

const DROP_IN_FIX = `in ${DROP_IN}10-outpost.conf (read before the distribution's defaults; ` +
  "the first value wins):";

/** `ssh.passwords`: PasswordAuthentication no (and keyboard-interactive off with PAM). */
export function sshPasswords(ctx: DoctorContext): Check {
  const id = "ssh.passwords";
  const title = "SSH public keys only";
  const entries = readSshdConfig(ctx.host);
  if (!entries) return noSshd(id, title);
  const fix = `${DROP_IN_FIX} PasswordAuthentication no, KbdInteractiveAuthentication no; ` +
    "then systemctl reload ssh";
  const pw = globalValue(entries, "passwordauthentication");
  if ((pw?.value.toLowerCase() ?? "yes") !== "no") {
    return {
      id,
      title,
      verdict: "fail",
      reason: pw
        ? `PasswordAuthentication ${pw.value} (${pw.at})`
        : "PasswordAuthentication is not set: sshd's default is yes",
      fix,
    };
  }
  const kbd = globalValue(
    entries,
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
  );
  const pam = globalValue(entries, "usepam");
  if (pam?.value.toLowerCase() === "yes" && (kbd?.value.toLowerCase() ?? "yes") !== "no") {
    return {
      id,
      title,
      verdict: "fail",
      reason: `UsePAM yes (${pam.at}) with keyboard-interactive authentication ${
        kbd ? `${kbd.value} (${kbd.at})` : "not set (default yes)"
      }: PAM asks for the password instead`,
      fix,
    };
  }
  const reopened = entries.filter((e) =>
    e.match && e.key === "passwordauthentication" && e.value.toLowerCase() !== "no"
  );
  if (reopened.length) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `PasswordAuthentication no (${pw!.at}), but yes inside ${
        reopened.map((e) => `Match ${e.match} (${e.at})`).join(", ")
      }`,
      fix: "remove PasswordAuthentication yes from the Match block",
    };
  }
  return { id, title, verdict: "pass", reason: `PasswordAuthentication no (${pw!.at})` };
}

/** `ssh.root-login`: PermitRootLogin no or prohibit-password. */
export function sshRootLogin(ctx: DoctorContext): Check {
  const id = "ssh.root-login";
  const title = "no root login with a password";
  const entries = readSshdConfig(ctx.host);
  if (!entries) return noSshd(id, title);
  const e = globalValue(entries, "permitrootlogin");
  const v = e?.value.toLowerCase() ?? "prohibit-password";
  const where = e
    ? `PermitRootLogin ${e.value} (${e.at})`
    : "PermitRootLogin not set (default prohibit-password)";
  if (!["no", "prohibit-password", "without-password", "forced-commands-only"].includes(v)) {
    return {
      id,
      title,
      verdict: "fail",
      reason: `${where}: root may log in with a password`,
      fix: `${DROP_IN_FIX} PermitRootLogin no; then systemctl reload ssh`,
    };
  }
  const reopened = entries.filter((x) =>
    x.match && x.key === "permitrootlogin" && x.value.toLowerCase() === "yes"
  );
  if (reopened.length) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `${where}, but yes inside ${
        reopened.map((x) => `Match ${x.match} (${x.at})`).join(", ")
      }`,
      fix: "remove PermitRootLogin yes from the Match block",
    };
  }
  return { id, title, verdict: "pass", reason: where };
}

/**
 * `ssh.source`: who may log in from where. Passes with `AllowUsers user@host` or a
 * `Match Address` block (the jumphost); warns when only users or groups are restricted.
 */
export function sshSource(ctx: DoctorContext): Check {
  const id = "ssh.source";
  const title = "SSH only through the jumphost";
  const entries = readSshdConfig(ctx.host);
  if (!entries) return noSshd(id, title);
  const allow = entries.filter((e) =>
    !e.match && (e.key === "allowusers" || e.key === "allowgroups")
  );
  const fromHost = allow.filter((e) => e.key === "allowusers" && /@/.test(e.value));
  const byAddress = entries.filter((e) => e.match && /\baddress\b/i.test(e.match));
  const matchText = [...new Set(byAddress.map((e) => `Match ${e.match}`))];
  if (fromHost.length || byAddress.length) {
    return {
      id,
      title,
      verdict: "pass",
      reason: [
        ...fromHost.map((e) => `AllowUsers ${e.value} (${e.at})`),
        ...matchText,
      ].join("; "),
    };
  }
  const fix = `${DROP_IN_FIX} AllowUsers admin@JUMPHOST_IP (or a Match Address block for the ` +
    "jumphost); then systemctl reload ssh";
  if (allow.length) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `${
        allow.map((e) =>
          `${e.key === "allowusers" ? "AllowUsers" : "AllowGroups"} ${e.value} (${e.at})`
        )
          .join("; ")
      }: users are restricted, but not the address they come from`,
      fix,
    };
  }
  return {
    id,
    title,
    verdict: "fail",
    reason: "no AllowUsers, AllowGroups or Match Address: any account may log in from anywhere",
    fix,
  };
}
