/**
 * A small stand-in for systemd running `config/systemd/outpost.service`, for the self-update
 * tests: `Type=notify` with `NotifyAccess=main` (a notify socket that accepts READY=, WATCHDOG=,
 * MAINPID= only from the main process), `ExecStartPre=` (the guard) before every start,
 * `Restart=always`, `WatchdogSec=`, `TimeoutStartSec=` and `KillMode=control-group` (each start
 * runs in a process group of its own; whatever is left of it is killed when the main process
 * exits). `powerCut()` SIGKILLs the whole group and stops restarting, as a power loss would.
 */

/** One thing the fake systemd saw or did, in order. */
export interface UnitEvent {
  at: number;
  kind:
    | "pre"
    | "start"
    | "ready"
    | "watchdog"
    | "mainpid"
    | "status"
    | "rejected"
    | "exit"
    | "watchdog-timeout"
    | "start-timeout"
    | "power-cut";
  pid?: number;
  detail?: string;
}

/** Options of {@linkcode FakeSystemd}. */
export interface UnitOptions {
  /** ExecStart=, resolved at each start (a symlink in the path is followed then, as by exec). */
  execStart: string[];
  /** ExecStartPre=, run to completion before every start. */
  execStartPre?: string[];
  /** File that gets the service's stdout and stderr (journald). */
  log: string;
  /** WatchdogSec=, ms; off when absent. */
  watchdogMs?: number;
  /** TimeoutStartSec=, ms. */
  startTimeoutMs?: number;
  /** RestartSec=, ms. */
  restartMs?: number;
  env?: Record<string, string>;
}

const dec = new TextDecoder();

/** Whether a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Live (non-zombie) pids whose process group is `pgid`. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (f[0] !== "Z" && Number(f[2]) === pgid) out.push(Number(e.name));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** The fake service manager for one unit. Call `close()` when done. */
export class FakeSystemd {
  readonly events: UnitEvent[] = [];
  readonly socketName = `outpost-fake-systemd-${crypto.randomUUID()}`;
  #o: UnitOptions;
  #sock: Deno.DatagramConn;
  #marker: Deno.DatagramConn;
  #markers = new Map<string, () => void>();
  #main = 0;
  #pgid = 0;
  #startedAt = 0;
  #lastPing = 0;
  #readyAt = 0;
  #ready = false;
  #running = false;
  #closed = false;
  #timer: ReturnType<typeof setInterval>;
  #handlingExit = false;
  #child: Deno.ChildProcess | undefined;
  #bootEnv: Record<string, string> = {};

  constructor(opts: UnitOptions) {
    this.#o = opts;
    this.#sock = Deno.listenDatagram({ transport: "unixpacket", path: `\0${this.socketName}` });
    this.#marker = Deno.listenDatagram({
      transport: "unixpacket",
      path: `\0${this.socketName}-marker`,
    });
    void this.#receive();
    this.#timer = setInterval(() => this.#tick(), 50);
  }

  /** The current main pid (0 when stopped). */
  get mainPid(): number {
    return this.#main;
  }
  /** Process group of the current start. */
  get pgid(): number {
    return this.#pgid;
  }

  #event(kind: UnitEvent["kind"], pid?: number, detail?: string) {
    this.events.push({ at: Date.now(), kind, pid, detail });
  }

  async #receive() {
    for (;;) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await this.#sock.receive();
      } catch {
        return;
      }
      const text = dec.decode(data);
      const from = (addr as Deno.UnixAddr).path ?? "";
      const marker = this.#markers.get(text);
      if (marker) {
        this.#markers.delete(text);
        marker();
        continue;
      }
      // The gateway's notifier binds `\0outpost-notify-<pid>-<uuid>`: that names the sender.
      const pid = Number(/^\0outpost-notify-(\d+)-/.exec(from)?.[1] ?? 0);
      if (pid !== this.#main) {
        this.#event("rejected", pid, text.replace(/\n/g, " "));
        continue;
      }
      for (const line of text.split("\n")) {
        const [k, v] = [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)];
        if (k === "READY" && v === "1") {
          if (!this.#ready) this.#readyAt = Date.now();
          this.#ready = true;
          this.#event("ready", pid);
        } else if (k === "WATCHDOG" && v === "1") {
          this.#lastPing = Date.now();
          this.#event("watchdog", pid);
        } else if (k === "MAINPID") {
          this.#main = Number(v);
          this.#event("mainpid", pid, v);
        } else if (k === "STATUS") {
          this.#event("status", pid, v);
        }
      }
    }
  }

  /** Resolves once every notification sent before this call has been handled (FIFO socket). */
  async #drain(): Promise<void> {
    const id = `marker-${crypto.randomUUID()}`;
    const done = new Promise<void>((r) => this.#markers.set(id, r));
    await this.#marker.send(new TextEncoder().encode(id), {
      transport: "unixpacket",
      path: `\0${this.socketName}`,
    });
    await done;
  }

  #tick() {
    if (!this.#running || this.#handlingExit || !this.#main) return;
    const now = Date.now();
    if (!alive(this.#main)) {
      void this.#onExit("exit");
      return;
    }
    // "The watchdog is activated when the start-up is completed" (systemd.service(5)): READY=1.
    if (
      this.#o.watchdogMs && this.#ready &&
      now - Math.max(this.#lastPing, this.#readyAt) > this.#o.watchdogMs
    ) {
      void this.#onExit("watchdog-timeout");
      return;
    }
    if (!this.#ready && this.#o.startTimeoutMs && now - this.#startedAt > this.#o.startTimeoutMs) {
      void this.#onExit("start-timeout");
    }
  }

  async #onExit(kind: "exit" | "watchdog-timeout" | "start-timeout") {
    this.#handlingExit = true;
    try {
      // A MAINPID= sent just before the old main process exited must count first, as it does
      // in systemd (the notify socket is served before SIGCHLD).
      await this.#drain();
      if (kind === "exit" && alive(this.#main)) return;
      const pid = this.#main;
      this.#event(kind, pid);
      await this.#killGroup();
      if (!this.#running || this.#closed) return;
      await new Promise((r) => setTimeout(r, this.#o.restartMs ?? 200));
      if (!this.#running || this.#closed) return;
      await this.#spawn();
    } finally {
      this.#handlingExit = false;
    }
  }

  async #killGroup() {
    const pgid = this.#pgid;
    const main = this.#main;
    this.#main = 0;
    if (!pgid) return;
    for (const pid of [-pgid, main]) {
      try {
        if (pid) Deno.kill(pid, "SIGKILL");
      } catch { /* none left */ }
    }
    const deadline = Date.now() + 10_000;
    while (groupMembers(pgid).length) {
      if (Date.now() > deadline) throw new Error(`process group ${pgid} survived SIGKILL`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#child?.status;
  }

  async #spawn() {
    if (this.#o.execStartPre) {
      const pre = await new Deno.Command(this.#o.execStartPre[0], {
        args: this.#o.execStartPre.slice(1),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (dec.decode(pre.stdout) + dec.decode(pre.stderr)).trim();
      if (text) await Deno.writeTextFile(this.#o.log, `[ExecStartPre] ${text}\n`, { append: true });
      this.#event("pre", undefined, `${pre.code} ${text}`);
    }
    this.#ready = false;
    this.#readyAt = 0;
    this.#lastPing = 0;
    this.#startedAt = Date.now();
    const watchdog = this.#o.watchdogMs
      ? `WATCHDOG_USEC=${this.#o.watchdogMs * 1000} WATCHDOG_PID=$$ `
      : "";
    // sh's pid survives both execs: it becomes the session (and group) leader, then the gateway.
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `${watchdog}exec setsid "$@" >>"$0" 2>&1`,
        this.#o.log,
        ...this.#o.execStart,
      ],
      stdin: "null",
      env: {
        NO_COLOR: "1",
        ...this.#o.env,
        ...this.#bootEnv,
        NOTIFY_SOCKET: `@${this.socketName}`,
      },
    }).spawn();
    child.status.then(() => {});
    this.#child = child;
    this.#main = child.pid;
    this.#pgid = child.pid;
    // Started means in its own process group (the cgroup stand-in), so a kill reaches it all.
    const deadline = Date.now() + 10_000;
    while (alive(child.pid) && !groupMembers(child.pid).includes(child.pid)) {
      if (Date.now() > deadline) throw new Error(`pid ${child.pid} never became a group leader`);
      await new Promise((r) => setTimeout(r, 5));
    }
    this.#event("start", child.pid);
  }

  /** Starts the unit (ExecStartPre, then ExecStart), as at boot; `env` only until the next boot. */
  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.#running) throw new Error("already running");
    this.#running = true;
    this.#bootEnv = env;
    await this.#spawn();
  }

  /** SIGKILL of every process of the unit at once; no restart until `start()`. */
  async powerCut(): Promise<void> {
    this.#running = false;
    while (this.#handlingExit) await new Promise((r) => setTimeout(r, 20));
    this.#event("power-cut", this.#main);
    await this.#killGroup();
  }

  /** The times the watchdog fired (no accepted WATCHDOG=1 from the main process in time). */
  watchdogTimeouts(): UnitEvent[] {
    return this.events.filter((e) => e.kind === "watchdog-timeout");
  }

  /** Kills what is left and closes the socket. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.powerCut().catch(() => {});
    clearInterval(this.#timer);
    this.#sock.close();
    this.#marker.close();
  }
}
