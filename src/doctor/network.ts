/**
 * Network checks: IP forwarding off (the gateway must not route between the OT and IT networks),
 * and no listening socket on a wildcard address that is not the gateway's own (vendor telnet,
 * FTP, embedded web servers).
 */
import type { Check, DoctorContext } from "./types.ts";

const FORWARD_FIX = "set net.ipv4.ip_forward = 0 and net.ipv6.conf.all.forwarding = 0 in " +
  "/etc/sysctl.d/90-outpost.conf, then sysctl --system; and drop forwarding in nftables " +
  "(forward chain with policy drop)";

function forwarding(ctx: DoctorContext, id: string, family: string, file: string): Check {
  const title = `${family} forwarding off`;
  const raw = ctx.host.read(file);
  if (raw === undefined) {
    return {
      id,
      title,
      verdict: family === "IPv6" ? "pass" : "skip",
      reason: `${file} does not exist (${family} not enabled in this kernel)`,
    };
  }
  const v = raw.trim();
  if (v === "0") return { id, title, verdict: "pass", reason: `${file} is 0` };
  return {
    id,
    title,
    verdict: "fail",
    reason: `${file} is ${v}: this host routes ${family} packets between its interfaces`,
    fix: FORWARD_FIX,
  };
}

/** `forwarding.ipv4`: /proc/sys/net/ipv4/ip_forward is 0. */
export function ipv4Forwarding(ctx: DoctorContext): Check {
  return forwarding(ctx, "forwarding.ipv4", "IPv4", "/proc/sys/net/ipv4/ip_forward");
}

/** `forwarding.ipv6`: /proc/sys/net/ipv6/conf/all/forwarding is 0 (or IPv6 is absent). */
export function ipv6Forwarding(ctx: DoctorContext): Check {
  return forwarding(ctx, "forwarding.ipv6", "IPv6", "/proc/sys/net/ipv6/conf/all/forwarding");
}

/** A listening TCP socket from /proc/net/tcp or tcp6. */
export interface Listener {
  /** Address as text: `0.0.0.0`, `::`, `127.0.0.1`, `::ffff:10.0.0.2`. */
  address: string;
  port: number;
  /** Any address of its family (0.0.0.0 or ::). */
  wildcard: boolean;
  loopback: boolean;
}

function ipv4(hex: string): string {
  // Little-endian 32-bit word, as the kernel prints it.
  const b = hex.match(/../g)!.map((h) => parseInt(h, 16)).reverse();
  return b.join(".");
}

function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    bytes.push(...hex.slice(w * 8, w * 8 + 8).match(/../g)!.map((h) => parseInt(h, 16)).reverse());
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255) {
    return `::ffff:${bytes.slice(12).join(".")}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // Compress the longest run of two or more zero groups, as RFC 5952 writes it.
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j > i ? j : i + 1;
  }
  if (best.at < 0) return groups.join(":");
  return `${groups.slice(0, best.at).join(":")}::${groups.slice(best.at + best.len).join(":")}`;
}

/** Parses /proc/net/tcp or tcp6 text into its listening sockets (state 0A). */
export function parseProcNetTcp(text: string, v6: boolean): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== "0A") continue;
    const [addrHex, portHex] = f[1].split(":");
    if (!portHex || !/^[0-9A-Fa-f]+$/.test(addrHex) || addrHex.length !== (v6 ? 32 : 8)) continue;
    const address = v6 ? ipv6(addrHex) : ipv4(addrHex);
    out.push({
      address,
      port: parseInt(portHex, 16),
      wildcard: /^0+$/.test(addrHex),
      loopback: address.startsWith("127.") || address === "::1" ||
        address.startsWith("::ffff:127."),
    });
  }
  return out;
}

/** Well-known services, for the messages. */
const SERVICES: Record<number, string> = {
  21: "ftp",
  22: "ssh",
  23: "telnet",
  69: "tftp",
  80: "http",
  111: "rpcbind",
  139: "netbios",
  443: "https",
  445: "smb",
  502: "modbus",
  1883: "mqtt",
  3389: "rdp",
  5900: "vnc",
  8080: "http",
  8883: "mqtts",
};

function named(port: number): string {
  return SERVICES[port] ? `${port} (${SERVICES[port]})` : `${port}`;
}

/** The `host:port` addresses this gateway's config listens on (HTTP server, adapters). */
export function ownListenAddresses(ctx: DoctorContext): string[] {
  const c = ctx.config;
  if (!c) return [];
  const out: string[] = [];
  if (c.http.enabled) {
    out.push(c.http.listen);
    if (c.http.healthListen) out.push(c.http.healthListen);
  }
  for (const a of c.adapters) {
    if (!a.enabled) continue;
    for (const l of ctx.adapters[a.type]?.claims?.(a.config)?.listen ?? []) out.push(l.address);
  }
  return out;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  return {
    host: listen.slice(0, i).replace(/^\[|\]$/g, "").toLowerCase(),
    port: +listen.slice(i + 1),
  };
}

function isOwn(l: Listener, own: { host: string; port: number }[]): boolean {
  return own.some((o) =>
    o.port === l.port &&
    (l.wildcard ? o.host === "0.0.0.0" || o.host === "::" || o.host === "" : true)
  );
}

/**
 * `network.listeners`: telnet or FTP listening anywhere but loopback, HTTP (80/8080) on a
 * wildcard address, or any other wildcard listener that is neither the gateway's own (its config's
 * listen addresses) nor sshd (22, audited by the ssh checks).
 */
export function listeners(ctx: DoctorContext): Check {
  const id = "network.listeners";
  const title = "no stray listening services";
  const all: Listener[] = [];
  const files: string[] = [];
  for (const [file, v6] of [["/proc/net/tcp", false], ["/proc/net/tcp6", true]] as const) {
    const text = ctx.host.read(file);
    if (text === undefined) continue;
    files.push(file);
    all.push(...parseProcNetTcp(text, v6));
  }
  if (!files.length) {
    return { id, title, verdict: "skip", reason: "no /proc/net/tcp (not Linux, or /proc absent)" };
  }
  const own = ownListenAddresses(ctx).map(splitListen);
  const bad = new Set<string>();
  const odd = new Set<string>();
  for (const l of all) {
    if (l.loopback || isOwn(l, own)) continue;
    const where = `${l.address.includes(":") ? `[${l.address}]` : l.address}:${named(l.port)}`;
    if (l.port === 23 || l.port === 21) bad.add(where);
    else if (l.wildcard && (l.port === 80 || l.port === 8080)) bad.add(where);
    else if (l.wildcard && l.port !== 22) odd.add(where);
  }
  const count = `${all.length} listening socket(s) in ${files.join(", ")}`;
  if (bad.size) {
    return {
      id,
      title,
      verdict: "fail",
      reason: `vendor service(s) listening: ${[...bad].join(", ")}` +
        (odd.size ? `; also on every address: ${[...odd].join(", ")}` : ""),
      fix:
        "find the service (ss -ltnp), then systemctl disable --now it (or remove its package); " +
        "services a site needs listen on the OT interface's address, not 0.0.0.0",
    };
  }
  if (odd.size) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `listening on every address, not Outpost's: ${[...odd].join(", ")}`,
      fix: "find each service (ss -ltnp); disable it, or bind it to the one interface that needs " +
        "it (and let nftables drop the rest)",
    };
  }
  return {
    id,
    title,
    verdict: "pass",
    reason: `${count}; none on a wildcard address but Outpost's own and sshd`,
  };
}
