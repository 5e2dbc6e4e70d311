import { DatabaseSync } from "node:sqlite";
import type { GatewayStatus, Health } from "./gateway.ts";
import { isDiskFull } from "./buffer/mod.ts";
import type { Logger } from "./log.ts";

/** Environment variables systemd hands a `Type=notify` service. */
const ENV_KEYS = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;

/** Read access to the environment (`Deno.env`, or a map in tests). */
export interface EnvReader {
  get(key: string): string | undefined;
}

/**
 * Turns a `NOTIFY_SOCKET` value into a socket path: `@name` is an abstract socket (leading NUL
 * byte), anything else must be an absolute path.
 */
export function notifySocketPath(value: string): string {
  if (value.startsWith("@")) return `\0${value.slice(1)}`;
  if (!value.startsWith("/")) {
    throw new TypeError(
      `Cannot use NOTIFY_SOCKET "${value}": expected an absolute path or an @abstract name`,
    );
  }
  return value;
}

const encoder = new TextEncoder();

function bindSender(): Deno.DatagramConn {
  // An abstract address for our end: nothing on disk to clean up, gone with the process.
  return Deno.listenDatagram({
    transport: "unixpacket",
    path: `\0outpost-notify-${Deno.pid}-${crypto.randomUUID()}`,
  });
}

/**
 * Sends one notification (`READY=1`, `WATCHDOG=1`, `STATUS=...`, several joined by newlines) to
 * `$NOTIFY_SOCKET`, like `sd_notify(3)`. Resolves `false` without sending when the variable is
 * unset (not started by systemd); rejects when the socket cannot be reached. Needs
 * `--unstable-net`.
 *
 * @example
 * ```ts
 * await notify("READY=1\nSTATUS=serving");
 * ```
 */
export async function notify(
  state: string,
  options: { env?: EnvReader } = {},
): Promise<boolean> {
  const value = (options.env ?? Deno.env).get("NOTIFY_SOCKET");
  if (!value) return false;
  const conn = bindSender();
  try {
    await conn.send(encoder.encode(state), {
      transport: "unixpacket",
      path: notifySocketPath(value),
    });
  } finally {
    conn.close();
  }
  return true;
}

/** A notification socket kept open for the life of the process. */
export class SystemdNotifier {
  readonly #path: string;
  readonly #log: Logger;
  #conn: Deno.DatagramConn | undefined;
  #failing = false;

  /** `socket` is a `NOTIFY_SOCKET` value: an absolute path or an `@abstract` name. */
  constructor(socket: string, log: Logger) {
    this.#path = notifySocketPath(socket);
    this.#log = log;
  }

  /**
   * The notifier `$NOTIFY_SOCKET` asks for, or `undefined` when it is unset. With `unset`, the
   * systemd variables are removed from the environment afterwards so that child processes
   * (the exec adapter's) do not inherit them.
   */
  static fromEnv(log: Logger, options: { unset?: boolean } = {}): SystemdNotifier | undefined {
    const value = Deno.env.get("NOTIFY_SOCKET");
    if (options.unset) { for (const k of ENV_KEYS) Deno.env.delete(k); }
    return value ? new SystemdNotifier(value, log) : undefined;
  }

  /**
   * Sends `state`; resolves `true` once sent. A failure is logged (once until it recovers) and
   * resolves `false`: a missing notification must not take the gateway down.
   */
  async notify(state: string): Promise<boolean> {
    try {
      this.#conn ??= bindSender();
      await this.#conn.send(encoder.encode(state), { transport: "unixpacket", path: this.#path });
      if (this.#failing) this.#log.info("systemd notification socket reachable again");
      this.#failing = false;
      return true;
    } catch (e) {
      if (!this.#failing) {
        this.#log.warn("cannot notify systemd", {
          socket: this.#path.replace("\0", "@"),
          state: state.split("\n")[0],
          error: (e as Error).message,
        });
      }
      this.#failing = true;
      return false;
    }
  }

  /** Closes the socket. */
  close(): void {
    this.#conn?.close();
    this.#conn = undefined;
  }
}

/**
 * How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, in ms, as `sd_watchdog_enabled(3)`
 * advises. `undefined` when no watchdog is set, or when `$WATCHDOG_PID` names another process.
 */
export function watchdogIntervalMs(env: EnvReader = Deno.env, pid = Deno.pid): number | undefined {
  const usec = Number(env.get("WATCHDOG_USEC"));
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  const forPid = env.get("WATCHDOG_PID");
  if (forPid !== undefined && forPid !== "" && Number(forPid) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

/** Options of {@linkcode startWatchdog}. */
export interface WatchdogOptions {
  notifier: Pick<SystemdNotifier, "notify">;
  /** Time between two ticks, ms. */
  intervalMs: number;
  /** Send `WATCHDOG=1` on each tick (false: only `STATUS=`, when no watchdog is configured). */
  ping: boolean;
  /** Returns why the gateway is not healthy enough to be kept alive, or `undefined` if it is. */
  check?: () => string | undefined;
  /** One line for `STATUS=`. */
  status?: () => string;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Sends `WATCHDOG=1` (and `STATUS=`) from a timer on the main event loop. A blocked loop sends
 * nothing, so systemd's `WatchdogSec=` catches a hung process, not only a dead one; a tick that
 * comes late is logged. While `check` reports a problem the ping is withheld, so systemd
 * restarts a gateway that can no longer do its job. Stops when `signal` aborts.
 */
export function startWatchdog(opts: WatchdogOptions): void {
  if (opts.signal.aborted) return;
  let expected = performance.now() + opts.intervalMs;
  let withheld: string | undefined;
  // A status section that throws costs the STATUS= line, never the process (this is a timer).
  let statusFailure: string | undefined;
  const statusLine = (): string | undefined => {
    try {
      const line = opts.status?.();
      statusFailure = undefined;
      return line;
    } catch (e) {
      const message = (e as Error).message;
      if (message !== statusFailure) {
        opts.log.warn("cannot build the status line for systemd", { error: message });
      }
      statusFailure = message;
      return `status unavailable: ${message}`;
    }
  };
  const tick = () => {
    const now = performance.now();
    const late = now - expected;
    expected = now + opts.intervalMs;
    if (late > opts.intervalMs / 2) {
      opts.log.warn("event loop was blocked; watchdog tick came late", {
        lateMs: Math.round(late),
      });
    }
    const lines: string[] = [];
    if (opts.ping) {
      let reason: string | undefined;
      try {
        reason = opts.check?.();
      } catch (e) {
        reason = `health check failed: ${(e as Error).message}`;
      }
      if (reason === undefined) {
        if (withheld !== undefined) opts.log.info("watchdog pings resumed");
        lines.push("WATCHDOG=1");
      } else if (reason !== withheld) {
        opts.log.error("withholding systemd watchdog ping; systemd will restart us", { reason });
      }
      withheld = reason;
    }
    const status = withheld ? `unhealthy: ${withheld}` : statusLine();
    if (status) lines.push(`STATUS=${oneLine(status)}`);
    if (lines.length) void opts.notifier.notify(lines.join("\n"));
  };
  const timer = setInterval(tick, opts.intervalMs);
  opts.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ").slice(0, 200);
}

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

/**
 * `READY=1` with the status line. A status section that throws costs the line, not the start or
 * the reload that sends this.
 */
export function readyMessage(status: () => GatewayStatus): string {
  let line: string;
  try {
    line = statusLine(status());
  } catch (e) {
    line = oneLine(`status unavailable: ${(e as Error).message}`);
  }
  return `READY=1\nSTATUS=${line}`;
}

/** One line for `STATUS=` (shown by `systemctl status`): backlog and uplink state. */
export function statusLine(s: GatewayStatus): string {
  const b = s.buffer;
  const pending = `${b.pending} pending` +
    (b.oldestPendingAgeMs === null ? "" : ` (oldest ${age(b.oldestPendingAgeMs)})`);
  const u = s.uplink;
  const uplink = u
    ? `uplink ${u.type} ${u.connected ? "connected" : "disconnected"} for ${
      age(u.forSeconds * 1000)
    }`
    : "no uplink";
  const running = s.adapters.filter((a) => a.state === "running").length;
  const failing = Object.entries(s.health.checks).filter(([, c]) => !c.ok).map(([k]) => k);
  return oneLine(
    `${
      failing.length ? `UNHEALTHY (${failing.join(", ")}); ` : ""
    }${pending}; ${uplink}; adapters ${running}/${s.adapters.length} running`,
  );
}

/** What a write probe found wrong. */
export interface ProbeFailure {
  error: string;
  /** The write failed for want of disk space (a restart would not help). */
  diskFull: boolean;
}

/**
 * Checks that the buffer file still takes writes: commits one tiny row (`meta.probe`, the time)
 * on a connection of its own. Catches a read-only remount, a failing disk, a file gone or a lock
 * held forever, which `stats()` alone would not.
 */
export class BufferWriteProbe {
  readonly #path: string;
  #db: DatabaseSync | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  /** `undefined` when the write committed, else why not. */
  check(): string | undefined {
    return this.probe()?.error;
  }

  /** `undefined` when the write committed, else why not and whether the disk is full. */
  probe(): ProbeFailure | undefined {
    try {
      if (!this.#db) {
        // Opening would create a missing file; a vanished buffer is a failure, not a fresh start.
        Deno.statSync(this.#path);
        this.#db = new DatabaseSync(this.#path);
        this.#db.exec("PRAGMA busy_timeout = 200");
      }
      this.#db.exec("BEGIN IMMEDIATE");
      this.#db.prepare(
        "INSERT INTO meta(key, value) VALUES ('probe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      ).run(Date.now());
      this.#db.exec("COMMIT");
      return undefined;
    } catch (e) {
      const diskFull = isDiskFull(e);
      try {
        if (this.#db?.isTransaction) this.#db.exec("ROLLBACK");
      } catch { /* connection unusable: closed below */ }
      if (!diskFull) this.close();
      return {
        error: `buffer "${this.#path}" is not writable: ${(e as Error).message}`,
        diskFull,
      };
    }
  }

  /** Closes the probe's connection. */
  close(): void {
    try {
      this.#db?.close();
    } catch { /* already closed */ }
    this.#db = undefined;
  }
}

/**
 * The watchdog's verdict: why systemd should restart the gateway, or `undefined`. Failing
 * commits and a probe write that fails withhold the ping; a full disk, a low disk or a stuck
 * forwarder do not (a restart cures none of them), they show as UNHEALTHY in `STATUS=`.
 */
export function watchdogProblem(
  health: Health,
  probe: Pick<BufferWriteProbe, "probe">,
): string | undefined {
  const buffer = health.checks.buffer;
  if (buffer && !buffer.ok) return `buffer: ${buffer.detail}`;
  const failed = probe.probe();
  return failed && !failed.diskFull ? failed.error : undefined;
}
