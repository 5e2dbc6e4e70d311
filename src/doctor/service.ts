/**
 * The gateway's systemd unit, read from its unit file and drop-ins (as systemd merges them:
 * the first directory that has the unit, then every `<unit>.d/*.conf` in name order, a later
 * assignment overriding an earlier one), so it works on a fake tree and without D-Bus.
 */
import type { Check, DoctorContext } from "./types.ts";

/** Unit directories, in systemd's order of precedence. */
const UNIT_DIRS = [
  "/etc/systemd/system",
  "/run/systemd/system",
  "/usr/local/lib/systemd/system",
  "/usr/lib/systemd/system",
  "/lib/systemd/system",
];

/** The merged `[Service]` settings of a unit, and the files they came from. */
export interface UnitFile {
  files: string[];
  service: Map<string, string>;
}

function parseInto(text: string, into: Map<string, string>): void {
  let section = "";
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1];
      continue;
    }
    const eq = line.indexOf("=");
    if (section !== "Service" || eq < 0) continue;
    into.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
}

/** Reads `unit` and its drop-ins; undefined when no unit file exists. */
export function readUnit(ctx: DoctorContext, unit = ctx.unit): UnitFile | undefined {
  const main = UNIT_DIRS.map((d) => `${d}/${unit}`).find((f) => ctx.host.read(f) !== undefined);
  if (!main) return undefined;
  const service = new Map<string, string>();
  parseInto(ctx.host.read(main)!, service);
  const dropIns = new Map<string, string>();
  for (const d of [...UNIT_DIRS].reverse()) {
    for (const n of ctx.host.list(`${d}/${unit}.d`) ?? []) {
      if (n.endsWith(".conf")) dropIns.set(n, `${d}/${unit}.d/${n}`);
    }
  }
  const files = [main];
  for (const n of [...dropIns.keys()].sort()) {
    const f = dropIns.get(n)!;
    parseInto(ctx.host.read(f) ?? "", service);
    files.push(f);
  }
  return { files, service };
}

function yes(v: string | undefined): boolean {
  return v !== undefined && /^(yes|true|on|1)$/i.test(v);
}

/**
 * `service.sandbox`: the unit runs as its own user with no way to gain privileges and a
 * read-only system (fail otherwise), and keeps the rest of docs/install.md's sandbox (warn).
 */
export function serviceSandbox(ctx: DoctorContext): Check {
  const id = "service.sandbox";
  const title = `${ctx.unit} sandboxed`;
  const u = readUnit(ctx);
  if (!u) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `no ${ctx.unit} in ${UNIT_DIRS.join(", ")}: the gateway does not run under systemd`,
      fix: "install config/systemd/outpost.service to /etc/systemd/system/ (docs/install.md)",
    };
  }
  const s = u.service;
  const fails: string[] = [];
  const warns: string[] = [];
  const user = s.get("User");
  if (!yes(s.get("DynamicUser")) && (!user || user === "root" || user === "0")) {
    fails.push(user ? `User=${user}` : "no User= (runs as root)");
  }
  if (!yes(s.get("NoNewPrivileges"))) fails.push("NoNewPrivileges= not yes");
  const ps = s.get("ProtectSystem");
  if (ps === "strict") {
    // as it should be
  } else if (ps === "full" || yes(ps)) warns.push(`ProtectSystem=${ps} (strict expected)`);
  else fails.push("ProtectSystem= not set");
  if (s.get("CapabilityBoundingSet") !== "") warns.push("CapabilityBoundingSet= not empty");
  if (!s.get("MemoryMax")) warns.push("no MemoryMax=");
  for (const k of ["PrivateTmp", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules"]) {
    const v = s.get(k);
    if (!yes(v) && !(k === "ProtectHome" && (v === "read-only" || v === "tmpfs"))) {
      warns.push(`${k}= not yes`);
    }
  }
  for (const k of ["RestrictAddressFamilies", "SystemCallFilter"]) {
    if (!s.get(k)) warns.push(`no ${k}=`);
  }
  const from = u.files.join(", ");
  const fix = `restore the shipped unit (config/systemd/outpost.service) and keep site changes ` +
    `in a drop-in (systemctl edit outpost) that does not loosen the sandbox; then ` +
    `systemctl daemon-reload && systemctl restart outpost`;
  if (fails.length) {
    return {
      id,
      title,
      verdict: "fail",
      reason: `${[...fails, ...warns].join("; ")} (${from})`,
      fix,
    };
  }
  if (warns.length) {
    return { id, title, verdict: "warn", reason: `${warns.join("; ")} (${from})`, fix };
  }
  return {
    id,
    title,
    verdict: "pass",
    reason: `User=${s.get("DynamicUser") && !user ? "(dynamic)" : user}, NoNewPrivileges=yes, ` +
      `ProtectSystem=strict, no capabilities, MemoryMax=${s.get("MemoryMax")} (${from})`,
  };
}
