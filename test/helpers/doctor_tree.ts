/**
 * A prepared host tree for `outpost doctor` tests: files under a temporary root that make every
 * check pass, which a test then changes to make one check fail.
 */
import { doctorContext } from "../../src/doctor/mod.ts";
import type { DoctorContext, DoctorReport } from "../../src/doctor/mod.ts";
import { runChecks } from "../../src/doctor/mod.ts";

const UNIT = new URL("../../config/systemd/outpost.service", import.meta.url).pathname;

/** A line of /proc/net/tcp for a listening socket (address and port in the kernel's hex). */
export function tcpLine(addrHex: string, port: number): string {
  const p = port.toString(16).toUpperCase().padStart(4, "0");
  return `   0: ${addrHex}:${p} ${
    "0".repeat(addrHex.length)
  }:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0`;
}

const TCP_HEADER =
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

/** 127.0.0.1 as /proc/net/tcp writes it. */
export const V4_LOOPBACK = "0100007F";
/** 0.0.0.0. */
export const V4_ANY = "00000000";
/** :: as /proc/net/tcp6 writes it. */
export const V6_ANY = "0".repeat(32);
/** ::1. */
export const V6_LOOPBACK = "000000000000000000000000" + "01000000";

/** The /proc/net/tcp text of these listeners. */
export function procNetTcp(...lines: string[]): string {
  return [TCP_HEADER, ...lines].join("\n") + "\n";
}

/** The config of the passing tree. */
export const SITE_YAML = `gateway: { id: cm4-line-3 }
buffer: { path: /var/lib/outpost/buffer.db }
http: { listen: 127.0.0.1:8787 }
uplink:
  type: mqtt
  url: mqtts://broker.example.com:8883
  username: line-3
  password: \${MQTT_PASSWORD}
  tls:
    ca: /etc/outpost/tls/ca.pem
    cert: /etc/outpost/tls/client.pem
    key: /etc/outpost/tls/client.key
`;

/** Every file of a host on which each check passes (path → text, or text and mode). */
export function passingFiles(): Record<string, string | { text: string; mode: number }> {
  return {
    "/proc/sys/net/ipv4/ip_forward": "0\n",
    "/proc/sys/net/ipv6/conf/all/forwarding": "0\n",
    "/etc/ssh/sshd_config":
      "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n" +
      "UsePAM yes\nPasswordAuthentication yes\nX11Forwarding yes\n",
    // The files docs/install-cm4.md's steps write.
    "/etc/ssh/sshd_config.d/10-outpost.conf": "PasswordAuthentication no\n" +
      "KbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers admin@10.20.0.5\n",
    "/proc/net/tcp": procNetTcp(tcpLine(V4_LOOPBACK, 8787), tcpLine(V4_ANY, 22)),
    "/proc/net/tcp6": procNetTcp(tcpLine(V6_ANY, 22), tcpLine(V6_LOOPBACK, 631)),
    "/proc/self/mountinfo": [
      "21 1 179:2 / / rw,noatime - ext4 /dev/mmcblk0p2 rw",
      "22 21 0:5 / /proc rw - proc proc rw",
      "29 21 254:0 / /srv/outpost-data rw,noatime - ext4 /dev/mapper/outpost-data rw",
      "30 21 254:0 /lib /var/lib/outpost rw,noatime - ext4 /dev/mapper/outpost-data rw",
      "31 21 254:0 /etc /etc/outpost rw,noatime - ext4 /dev/mapper/outpost-data rw",
    ].join("\n") + "\n",
    "/sys/dev/block/179:2/uevent": "MAJOR=179\nMINOR=2\nDEVNAME=mmcblk0p2\nDEVTYPE=partition\n",
    "/sys/dev/block/254:0/uevent": "MAJOR=254\nMINOR=0\nDEVNAME=dm-0\n",
    "/sys/dev/block/254:0/dm/uuid": "CRYPT-LUKS2-3f1c9a0e2b7d4c5f8a6e1d2c3b4a5f6e-outpost-data\n",
    "/sys/dev/block/254:0/dm/name": "outpost-data\n",
    "/sys/dev/block/254:0/slaves/mmcblk0p3": "",
    "/sys/class/block/mmcblk0p3/dev": "179:3\n",
    "/sys/dev/block/179:3/uevent": "MAJOR=179\nMINOR=3\nDEVNAME=mmcblk0p3\nDEVTYPE=partition\n",
    "/sys/block/mmcblk0/device/life_time": "0x01 0x02\n",
    "/sys/block/mmcblk0/device/pre_eol_info": "0x01\n",
    "/etc/outpost/site.yaml": { text: SITE_YAML, mode: 0o600 },
    "/etc/outpost/outpost.env": { text: "MQTT_PASSWORD=Zq3v9LrT2pX8wY4k\n", mode: 0o600 },
    "/etc/outpost/tls/ca.pem": { text: "-----BEGIN CERTIFICATE-----\n", mode: 0o644 },
    "/etc/outpost/tls/client.pem": { text: "-----BEGIN CERTIFICATE-----\n", mode: 0o644 },
    "/etc/outpost/tls/client.key": { text: "-----BEGIN PRIVATE KEY-----\n", mode: 0o600 },
    "/var/lib/outpost/http-token": {
      text: "kY3w9q2ZxP0vB7nR4tL8mC1sD6fH5jG2aE9uW3oI0yQ\n",
      mode: 0o600,
    },
    "/run/systemd/timesync/synchronized": "",
    "/etc/systemd/system/outpost.service": Deno.readTextFileSync(UNIT),
    "/etc/systemd/system/outpost.service.d/10-encrypted.conf":
      "[Unit]\nRequiresMountsFor=/var/lib/outpost /etc/outpost\n",
    "/etc/sysctl.d/90-outpost.conf": "net.ipv4.ip_forward = 0\nnet.ipv6.conf.all.forwarding = 0\n",
  };
}

/** A temporary host root holding `files`. */
export class FakeHost {
  /** The root directory. */
  readonly root: string = Deno.makeTempDirSync({ prefix: "outpost-doctor-" });

  /** Writes the passing tree, changed by `changes` (undefined removes a file). */
  constructor(changes: Record<string, string | { text: string; mode: number } | undefined> = {}) {
    const files: Record<string, string | { text: string; mode: number } | undefined> = {
      ...passingFiles(),
      ...changes,
    };
    for (const [path, f] of Object.entries(files)) if (f !== undefined) this.write(path, f);
  }

  /** Writes one file (mode 0644 unless given). */
  write(path: string, f: string | { text: string; mode: number }): void {
    const full = this.root + path;
    Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    const { text, mode } = typeof f === "string" ? { text: f, mode: 0o644 } : f;
    Deno.writeTextFileSync(full, text);
    Deno.chmodSync(full, mode);
  }

  /** Removes a file or directory. */
  remove(path: string): void {
    Deno.removeSync(this.root + path, { recursive: true });
  }

  /** The doctor's context on this tree. */
  context(opts: { now?: number; config?: string | false } = {}): {
    ctx: DoctorContext;
    report: DoctorReport;
  } {
    const { ctx, checks } = doctorContext({
      root: this.root,
      adapters: {},
      now: opts.now ?? Date.UTC(2026, 11, 3),
      ...(opts.config === false ? { configPath: undefined } : { configPath: opts.config }),
    });
    if (opts.config === false) {
      delete ctx.config;
      delete ctx.configPath;
      delete ctx.configText;
    }
    return { ctx, report: runChecks(ctx, checks) };
  }

  /** Removes the tree. */
  [Symbol.dispose](): void {
    Deno.removeSync(this.root, { recursive: true });
  }
}

/** The result of check `id` in `report` (throws when it is missing). */
export function checkOf(report: DoctorReport, id: string): DoctorReport["checks"][number] {
  const c = report.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check "${id}" in the report`);
  return c;
}

/** Runs the doctor on a passing tree changed by `changes`; returns check `id`. */
export function verdictWith(
  id: string,
  changes: Record<string, string | { text: string; mode: number } | undefined> = {},
  opts: { now?: number } = {},
): DoctorReport["checks"][number] {
  using h = new FakeHost(changes);
  return checkOf(h.context(opts).report, id);
}
