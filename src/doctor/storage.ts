/**
 * Storage checks: the buffer and the key files lie on an encrypted block device (dm-crypt, e.g.
 * LUKS), and the eMMC's own wear indicators where the kernel exposes them.
 */
import { resolvePath } from "./host.ts";
import type { Host } from "./host.ts";
import { secretFiles } from "./files.ts";
import type { Check, DoctorContext } from "./types.ts";

/** A mount from /proc/self/mountinfo. */
export interface Mount {
  /** `MAJ:MIN` of the device (major 0: no block device, e.g. tmpfs, overlay, btrfs subvolume). */
  dev: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo. */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-", 6);
    if (f.length < 10 || dash < 0) continue;
    out.push({
      dev: f[2],
      mountPoint: unescape(f[4]),
      fsType: f[dash + 1],
      source: unescape(f[dash + 2] ?? ""),
    });
  }
  return out;
}

/** The mount holding `path` (canonical): the last of the longest matching mount points. */
export function mountOf(mounts: Mount[], path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const mp = m.mountPoint;
    const inside = mp === "/" || path === mp || path.startsWith(mp + "/");
    if (inside && (!best || mp.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** How a block device is encrypted, as found in /sys. */
export interface Encryption {
  encrypted: boolean;
  /** The chain, e.g. `dm-1 (LVM) ← dm-0 (CRYPT-LUKS2 data) ← mmcblk0p3`. */
  chain: string;
}

/**
 * Whether device `dev` (`MAJ:MIN`) is dm-crypt or built only on dm-crypt devices: its
 * /sys/dev/block/MAJ:MIN/dm/uuid starts with CRYPT-, or every device under its `slaves/` is
 * (LVM or a partition mapping on top of LUKS).
 */
export function encryptionOf(host: Host, dev: string, depth = 0): Encryption {
  const dir = `/sys/dev/block/${dev}`;
  if (depth > 8 || !host.exists(dir)) return { encrypted: false, chain: `${dev} (not in /sys)` };
  const uuid = host.read(`${dir}/dm/uuid`)?.trim();
  const name = host.read(`${dir}/dm/name`)?.trim();
  const devName = /^DEVNAME=(.+)$/m.exec(host.read(`${dir}/uevent`) ?? "")?.[1];
  const label = `${name ?? devName ?? dev}`;
  if (uuid?.startsWith("CRYPT-")) {
    return { encrypted: true, chain: `${label} (${uuid.split("-").slice(0, 2).join("-")})` };
  }
  const slaves = host.list(`${dir}/slaves`) ?? [];
  if (!slaves.length) {
    return {
      encrypted: false,
      chain: `${label} (${uuid ? uuid.split("-")[0] : dev}, not dm-crypt)`,
    };
  }
  const below = slaves.map((s) => {
    const d = host.read(`/sys/class/block/${s}/dev`)?.trim();
    return d ? encryptionOf(host, d, depth + 1) : { encrypted: false, chain: `${s} (no dev)` };
  });
  return {
    encrypted: below.every((b) => b.encrypted),
    chain: `${label}${uuid ? ` (${uuid.split("-")[0]})` : ""} on ${
      below.map((b) => b.chain).join(" + ")
    }`,
  };
}

const MEMORY_FS = new Set(["tmpfs", "ramfs"]);

type State = "encrypted" | "plain" | "memory" | "unknown";

/** Where `path` is stored: the mount and device chain, and whether it is encrypted. */
function placeOf(host: Host, mounts: Mount[], path: string): { state: State; where: string } {
  const real = host.realpath(path);
  const m = mountOf(mounts, real);
  if (!m) return { state: "unknown", where: "no mount found" };
  const on = `${m.mountPoint} (${m.fsType} ${m.source})`;
  if (MEMORY_FS.has(m.fsType)) return { state: "memory", where: `${on}: in memory` };
  let dev = m.dev;
  if (dev.startsWith("0:") && m.source.startsWith("/dev/")) {
    // btrfs and others report an anonymous device: follow the mount's source instead.
    const base = host.realpath(m.source).split("/").pop()!;
    dev = host.read(`/sys/class/block/${base}/dev`)?.trim() ?? dev;
  }
  if (dev.startsWith("0:")) return { state: "unknown", where: `${on}: not a block device` };
  const e = encryptionOf(host, dev);
  return { state: e.encrypted ? "encrypted" : "plain", where: `${on}: ${e.chain}` };
}

/** `on MOUNT (fs source): chain: a, b; on …` for the places in `state`. */
function describe(places: { path: string; state: State; where: string }[], state?: State): string {
  const byMount = new Map<string, string[]>();
  for (const p of places) {
    if (state && p.state !== state) continue;
    byMount.set(p.where, [...byMount.get(p.where) ?? [], p.path]);
  }
  return [...byMount].map(([where, paths]) => `${paths.join(", ")} on ${where}`).join("; ");
}

/** `storage.encryption`: the buffer and every secret file are on dm-crypt (LUKS). */
export function storageEncryption(ctx: DoctorContext): Check {
  const id = "storage.encryption";
  const title = "buffer and keys on an encrypted disk";
  const info = ctx.host.read("/proc/self/mountinfo");
  if (info === undefined) return { id, title, verdict: "skip", reason: "no /proc/self/mountinfo" };
  const mounts = parseMountinfo(info);
  const paths: string[] = [];
  if (ctx.config) paths.push(resolvePath(ctx.config.buffer.path, ctx.workdir));
  else if (ctx.host.exists("/var/lib/outpost")) paths.push("/var/lib/outpost");
  for (const f of secretFiles(ctx)) {
    if (ctx.host.exists(f.path) && f.what !== "config file") paths.push(f.path);
  }
  if (!paths.length) {
    return { id, title, verdict: "skip", reason: "no config and no /var/lib/outpost to look at" };
  }
  const places = [...new Set(paths)].map((path) => ({
    path,
    ...placeOf(ctx.host, mounts, path),
  }));
  const fix = "put /var/lib/outpost (buffer, token) and /etc/outpost (keys) on a LUKS partition: " +
    "cryptsetup luksFormat, crypttab and fstab entries (docs/install-cm4.md)";
  if (places.some((p) => p.state === "plain")) {
    return {
      id,
      title,
      verdict: "fail",
      reason: `not encrypted: ${describe(places, "plain")}`,
      fix,
    };
  }
  if (places.some((p) => p.state === "unknown")) {
    return {
      id,
      title,
      verdict: "warn",
      reason: `cannot tell: ${describe(places, "unknown")}`,
      fix,
    };
  }
  return { id, title, verdict: "pass", reason: describe(places) };
}

/** eMMC life-time estimate codes (JEDEC EXT_CSD DEVICE_LIFE_TIME_EST): 0x01 is 0–10 % used. */
function lifeText(code: number): string {
  if (code === 0x0b) return "exceeded its rated life";
  if (code >= 0x01 && code <= 0x0a) return `${(code - 1) * 10}–${code * 10} % of its life used`;
  return "not defined";
}

const PRE_EOL: Record<number, string> = {
  1: "normal",
  2: "warning (80 % of reserved blocks used)",
  3: "urgent",
};

/**
 * `storage.wear`: each eMMC's `life_time` (type A and B estimates) and `pre_eol_info` from
 * /sys/block/mmcblk*\/device. Warn at 80 % used or pre-EOL warning, fail at 90 % or urgent.
 */
export function storageWear(ctx: DoctorContext): Check {
  const id = "storage.wear";
  const title = "storage wear (eMMC)";
  const devices = (ctx.host.list("/sys/block") ?? []).filter((n) => /^mmcblk\d+$/.test(n));
  const found: { name: string; life: number[]; eol: number | undefined }[] = [];
  for (const name of devices) {
    const life = ctx.host.read(`/sys/block/${name}/device/life_time`);
    const eol = ctx.host.read(`/sys/block/${name}/device/pre_eol_info`);
    if (life === undefined && eol === undefined) continue;
    found.push({
      name,
      life: (life ?? "").trim().split(/\s+/).filter(Boolean).map((v) => parseInt(v, 16)),
      eol: eol === undefined ? undefined : parseInt(eol.trim(), 16),
    });
  }
  if (!found.length) {
    return {
      id,
      title,
      verdict: "skip",
      reason: "no eMMC wear indicators in /sys/block/mmcblk*/device (SD cards and other disks " +
        "expose none; see buffer bytes written per day in /status)",
    };
  }
  let verdict: "pass" | "warn" | "fail" = "pass";
  const texts = found.map((d) => {
    const worst = Math.max(0, ...d.life.filter((v) => v <= 0x0b));
    if (worst >= 0x0a || d.eol === 3) verdict = "fail";
    else if ((worst === 0x09 || d.eol === 2) && verdict === "pass") verdict = "warn";
    const life = d.life.length
      ? `life_time ${d.life.map((v) => `0x${v.toString(16).padStart(2, "0")}`).join(" ")} (${
        lifeText(worst)
      })`
      : "no life_time";
    const eol = d.eol === undefined
      ? ""
      : `, pre_eol_info 0x0${d.eol} (${PRE_EOL[d.eol] ?? "not defined"})`;
    return `${d.name}: ${life}${eol}`;
  });
  return {
    id,
    title,
    verdict,
    reason: texts.join("; "),
    ...(verdict === "pass" ? {} : {
      fix: "plan the replacement of the module; meanwhile keep the buffer's write rate low " +
        "(buffer.commitWindow, /status storage.bytesPerDay)",
    }),
  };
}
