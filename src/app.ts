/**
 * The composition root: builds one gateway process from its config — the gateway, the HTTP
 * server, systemd's notifications and watchdog, the command service and the self-update
 * supervision — and passes each part what it needs. The CLI (`src/cli/`) parses arguments and
 * calls {@linkcode runWithUpdates}; nothing here reads the command line.
 */
import type { AdapterModule } from "./adapter.ts";
import { ConfigError, formatProblem, loadConfigFile } from "./config/load.ts";
import { type GatewayConfig, gatewaySchema } from "./config/gateway.ts";
import { Gateway } from "./gateway.ts";
import { startHttpServer } from "./http/server.ts";
import { restartOnly } from "./config/restart.ts";
import { openHttpAccess } from "./http/local.ts";
import {
  auditPath,
  createCommandService,
  type ExtraHandlers,
  readAuditFile,
  updateCommands,
} from "./commands/mod.ts";
import { createLogger, type LogLevel } from "./log.ts";
import { DoctorMonitor } from "./doctor/mod.ts";
import { startDevices } from "./devices/mod.ts";
import {
  BufferWriteProbe,
  readyMessage,
  startWatchdog,
  statusLine,
  SystemdNotifier,
  watchdogIntervalMs,
  watchdogProblem,
} from "./systemd.ts";
import { VERSION } from "./version.ts";
import { checkExec, execInto, stopChild, UpdateAgent, type UpdateConfig } from "./update/mod.ts";

/** Exit status: success. */
export const EXIT_OK = 0;
/** Exit status: runtime failure. */
export const EXIT_FAILURE = 1;

/** What one gateway process is built from. */
export interface AppOptions {
  configPath: string;
  /** The adapters the binary embeds. */
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>;
  /** Overrides the config's log.format. */
  logFormat?: "text" | "json";
  /** Overrides the config's log.level. */
  logLevel?: LogLevel;
  /** The arguments of `run`, for starting a newly installed version the same way. */
  argv: readonly string[];
}

/** Options of {@linkcode runGateway}. */
export interface GatewayRunOptions extends AppOptions {
  /** More commands the command service answers (the update commands). */
  commands?: ExtraHandlers;
  /** More sections of /status (the self-updater's `update`). */
  statusSections?: () => Record<string, unknown>;
}

/** Loads and validates a config file with every adapter the binary embeds. */
export function loadGatewayConfig(
  path: string,
  // deno-lint-ignore no-explicit-any
  adapters: Record<string, AdapterModule<any>>,
): GatewayConfig {
  return loadConfigFile(path, gatewaySchema(adapters));
}

/**
 * Runs one gateway process until SIGTERM/SIGINT: the gateway, its HTTP server, systemd's
 * notifications and watchdog, the command service and SIGHUP reloads, each built here from the
 * config and handed what it needs. A restart command stops the gateway and starts it again with
 * the config it validated, in this process. Returns the exit status.
 */
export async function runGateway(opts: GatewayRunOptions): Promise<number> {
  const { configPath, adapters, logFormat: format, logLevel: level } = opts;
  let config = loadGatewayConfig(configPath, adapters);
  const log = createLogger({
    level: level ?? config.log.level as LogLevel,
    format: format ?? config.log.format as "text" | "json",
  });
  const sdLog = log.child("systemd");
  // A reload applies adapters, edge logic, the uplink and commands; it says what it did not.
  const warnRestartOnly = (was: GatewayConfig, next: GatewayConfig) => {
    const later = restartOnly(was, next);
    if (later.length === 0) return;
    log.warn(
      `${later.join(", ")} changed: applied at the next start of the process ` +
        "(systemctl restart outpost), not by a reload",
      { sections: later.join(",") },
    );
  };
  // Before the gateway starts: a bad token file or certificate stops us with nothing running.
  // The first-run token goes to stdout once, through a logger whose ring nobody reads.
  const access = config.http.enabled
    ? openHttpAccess(config, {
      log: log.child("http"),
      announce:
        createLogger({ format: format ?? config.log.format as "text" | "json", ringSize: 0 })
          .child("http").info,
    })
    : undefined;
  // Read before anything spawns children, then unset so they do not inherit it.
  const watchdogMs = watchdogIntervalMs();
  const systemd = SystemdNotifier.fromEnv(sdLog, { unset: true });
  // Resolves with the signal that stops the gateway, or "restart" (a remote command).
  let stopping = Promise.withResolvers<string>();
  // Listening before the gateway starts: a SIGTERM during start-up (systemctl stop while it comes
  // up) still stops it in order, with the buffer flushed, instead of killing it.
  const onSignal = (sig: Deno.Signal) => () => stopping.resolve(sig);
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", onSignal("SIGTERM")],
    ["SIGINT", onSignal("SIGINT")],
  ];
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  // Serves each gateway this process starts (attached below), so that a command spanning a
  // restart still gets its reply.
  let restartWith: GatewayConfig | undefined;
  const service = createCommandService({
    configPath,
    version: VERSION,
    adapters,
    handlers: opts.commands,
    // Started below, before the first command can arrive.
    devices: () => devices?.service,
    apply: async (next) => {
      await systemd?.notify("RELOADING=1\nSTATUS=reloading config (remote command)");
      try {
        await gateway.reload(next);
        warnRestartOnly(config, next);
        config = next;
        service.reconfigure(next);
      } finally {
        await systemd?.notify(readyMessage(() => gateway.status()));
      }
    },
    restart: (next) => {
      restartWith = next;
      stopping.resolve("restart");
    },
  });
  // The host checklist (outpost doctor), at start and every 6 h: in /status and the retained status.
  const doctor = new DoctorMonitor({
    configPath,
    config: () => config,
    adapters,
    log: log.child("doctor"),
  });
  const devices = config.devices ? await startDevices(config, log.child("devices")) : undefined;
  const statusSections = () => ({
    commands: service.status(),
    doctor: doctor.report(),
    ...devices?.statusSections(),
    ...opts.statusSections?.(),
  });
  const startGateway = () =>
    Gateway.start({
      config,
      adapters,
      log,
      version: VERSION,
      statusSections,
      announce: () => ({ doctor: doctor.summary(), ...devices?.announce() }),
    });
  let gateway = startGateway();
  const startHttp = async () =>
    access
      ? await startHttpServer({
        ...access,
        gateway,
        log: log.child("http"),
        recentLogs: (n) => log.recent(n),
        audit: (n) => readAuditFile(auditPath(config.buffer.path), n),
        devices: devices?.service.routes,
        moreMetrics: devices?.metrics,
      })
      : undefined;
  let http = await startHttp();
  const lifetime = new AbortController();
  let probe = new BufferWriteProbe(config.buffer.path);
  if (systemd) {
    await systemd.notify(readyMessage(() => gateway.status()));
    sdLog.info("notified systemd: ready", {
      watchdog: watchdogMs ? `${watchdogMs}ms` : "off",
    });
    startWatchdog({
      notifier: systemd,
      intervalMs: watchdogMs ?? 10_000,
      ping: watchdogMs !== undefined,
      check: () => watchdogProblem(gateway.health(), probe),
      status: () => statusLine(gateway.status()),
      log: sdLog,
      signal: lifetime.signal,
    });
  }
  service.attach(gateway, config, log);
  const reload = async () => {
    await systemd?.notify("RELOADING=1\nSTATUS=reloading config");
    try {
      const next = loadGatewayConfig(configPath, adapters);
      await gateway.reload(next);
      warnRestartOnly(config, next);
      config = next;
      service.reconfigure(next);
    } catch (e) {
      const msg = e instanceof ConfigError
        ? e.problems.map(formatProblem).join("; ")
        : (e as Error).message;
      log.error("config reload refused; keeping the running config", { error: msg });
    }
    await systemd?.notify(readyMessage(() => gateway.status()));
  };
  const onHup = () => void reload();
  Deno.addSignalListener("SIGHUP", onHup);
  let sig = await stopping.promise;
  // A restart command: stop in order, start again with the config it validated, same process.
  while (sig === "restart" && restartWith) {
    const next: GatewayConfig = restartWith;
    restartWith = undefined;
    stopping = Promise.withResolvers<string>();
    log.info("restarting the gateway (remote command)");
    await systemd?.notify("RELOADING=1\nSTATUS=restarting (remote command)");
    service.detach();
    await http?.close();
    await gateway.stop({ reason: "restarting" });
    probe.close();
    config = next;
    gateway = startGateway();
    http = await startHttp();
    probe = new BufferWriteProbe(config.buffer.path);
    service.attach(gateway, config, log);
    await systemd?.notify(readyMessage(() => gateway.status()));
    sig = await stopping.promise;
  }
  log.info(`received ${sig}; shutting down`);
  await systemd?.notify(`STOPPING=1\nSTATUS=stopping (${sig})`);
  lifetime.abort();
  doctor.close();
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  Deno.removeSignalListener("SIGHUP", onHup);
  service.close();
  await http?.close();
  await devices?.stop();
  await gateway.stop();
  probe.close();
  systemd?.close();
  return EXIT_OK;
}

/** Where a gateway of `config` answers /healthz, as seen from this machine. */
export function healthUrl(config: GatewayConfig): string {
  if (config.http.healthListen) return `http://${config.http.healthListen}`;
  const host = config.http.listen.replace(/^0\.0\.0\.0:/, "127.0.0.1:").replace(
    /^\[::\]:/,
    "[::1]:",
  );
  return `http://${host}`;
}

const SYSTEMD_ENV = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/**
 * {@linkcode runGateway}, with the self-updater around it when the config has an `update:` section. A staged
 * release stops the gateway the way systemd would (SIGTERM to itself), runs the new version on
 * trial as a child, and either hands over to it (MAINPID= under systemd, then exits 0; without
 * systemd it stays the new version's parent and passes signals on) or rolls back and runs the
 * gateway again in this process. While it supervises a trial it keeps systemd's watchdog fed.
 */
export async function runWithUpdates(opts: AppOptions): Promise<number> {
  const config = loadGatewayConfig(opts.configPath, opts.adapters);
  const uc = config.update as UpdateConfig | undefined;
  if (!uc) return await runGateway(opts);
  const log = createLogger({
    level: config.log.level as "info",
    format: config.log.format as "text",
  }).child("update");
  // runGateway() unsets these for its children; keep them for re-runs after a rollback and the handover.
  const sdEnv = new Map(
    SYSTEMD_ENV.flatMap((k) => Deno.env.get(k) !== undefined ? [[k, Deno.env.get(k)!]] : []),
  );
  const agent = new UpdateAgent({
    config: uc,
    configPath: opts.configPath,
    gatewayId: config.gateway.id,
    healthUrl: healthUrl(config),
    version: VERSION,
    log,
  });
  const isTrialChild = Deno.env.get("OUTPOST_TRIAL_CHILD") === "1";
  Deno.env.delete("OUTPOST_TRIAL_CHILD");
  let boot: "run" | "self-trial" | "exit" = "run";
  if (!isTrialChild) boot = await agent.boot();
  // The version on trial shows its own trial, then the verdict, in /status.
  const following = new AbortController();
  if (isTrialChild) void agent.followTrial(following.signal);
  if (boot === "exit") return EXIT_FAILURE;
  const statusSections = () => ({ update: agent.status() });
  try {
    for (;;) {
      const lifetime = new AbortController();
      let trialWanted = false;
      let selfTrialFailed = false;
      const stopSelf = () => Deno.kill(Deno.pid, "SIGTERM");
      agent.schedule(lifetime.signal, () => {
        trialWanted = true;
        log.info("stopping this gateway to run the new version on trial");
        stopSelf();
      });
      const onUsr2 = () => {
        log.info("SIGUSR2: checking for an update now");
        void agent.checkAndStage(lifetime.signal).then((staged) => {
          if (staged && !lifetime.signal.aborted) {
            trialWanted = true;
            stopSelf();
          }
        });
      };
      Deno.addSignalListener("SIGUSR2", onUsr2);
      const commands = updateCommands({
        agent,
        config: uc,
        version: VERSION,
        startTrial: () => {
          trialWanted = true;
          stopSelf();
        },
      });
      if (boot === "self-trial") {
        boot = "run";
        void agent.selfTrial(lifetime.signal, () => {
          selfTrialFailed = true;
          stopSelf();
        });
      }
      for (const [k, v] of sdEnv) Deno.env.set(k, v);
      const code = await runGateway({ ...opts, commands, statusSections });
      lifetime.abort();
      Deno.removeSignalListener("SIGUSR2", onUsr2);
      if (selfTrialFailed) return EXIT_FAILURE;
      if (!trialWanted) return code;
      if (sdEnv.has("NOTIFY_SOCKET")) {
        // Under systemd the trial begins with a restart: this process exits, systemd (guard
        // first) starts the version on trial, which judges itself. One gateway process at a
        // time, so the trial stays within the unit's MemoryMax=.
        const t = await agent.restartTrial();
        log.info("exiting so that systemd starts the version on trial", { version: t?.version });
        return EXIT_OK;
      }
      const stop = new AbortController();
      const onStop = () => stop.abort();
      Deno.addSignalListener("SIGTERM", onStop);
      Deno.addSignalListener("SIGINT", onStop);
      // Not WATCHDOG_PID: it names this process, and the new version has to feed the watchdog
      // itself once it is the main process.
      const childEnv: Record<string, string> = {
        ...Deno.env.toObject(),
        ...Object.fromEntries([...sdEnv].filter(([k]) => k !== "WATCHDOG_PID")),
      };
      const sdSocket = sdEnv.get("NOTIFY_SOCKET");
      const notifier = sdSocket ? new SystemdNotifier(sdSocket, log) : undefined;
      const trialWatchdog = new AbortController();
      const pingMs = watchdogIntervalMs({ get: (k) => sdEnv.get(k) });
      if (notifier) {
        const trialOf = agent.status().staged?.version ?? "another version";
        // At once: stopping the gateway took time since its last ping.
        await notifier.notify(
          `${pingMs ? "WATCHDOG=1\n" : ""}STATUS=supervising the trial of ${trialOf}`,
        );
        startWatchdog({
          notifier,
          intervalMs: pingMs ?? 10_000,
          ping: pingMs !== undefined,
          status: () => `supervising the trial of ${trialOf}`,
          log,
          signal: trialWatchdog.signal,
        });
      }
      // What the agent staged: a release, or the previous slot for a rollback command.
      const r = await agent.trial({ env: childEnv, signal: stop.signal });
      trialWatchdog.abort();
      Deno.removeSignalListener("SIGTERM", onStop);
      Deno.removeSignalListener("SIGINT", onStop);
      if (r.ok) {
        const child = r.child;
        const handed = notifier
          ? await notifier.notify(`${pingMs ? "WATCHDOG=1\n" : ""}MAINPID=${child.pid}`)
          : false;
        notifier?.close();
        log.info("handing over to the new version", { pid: child.pid, systemd: handed });
        if (handed) return EXIT_OK;
        // No systemd: become the new version (execve: same pid, same parent) once its trial
        // process is stopped, so that updates do not pile up a chain of supervisors.
        let canExec = true;
        try {
          checkExec();
        } catch (e) {
          canExec = false;
          log.warn("cannot exec the new version; staying its parent", {
            error: (e as Error).message,
          });
        }
        if (canExec) {
          const gone = { v: false };
          child.status.then(() => gone.v = true);
          await stopChild(child, () => gone.v);
          const path = `${agent.slots.root}/current/outpost`;
          log.info("no systemd: restarting as the new version in this process", { path });
          try {
            execInto(path, ["run", ...opts.argv], Deno.env.toObject());
          } catch (e) {
            log.error("exec of the new version failed; exiting for a restart", {
              path,
              error: (e as Error).message,
            });
            return EXIT_FAILURE;
          }
        }
        // Stay its parent so that it is not orphaned (a container would end with this process)
        // and pass signals on.
        const pass: [Deno.Signal, () => void][] = (
          ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR2"] as Deno.Signal[]
        ).map((sig) => [sig, () => {
          try {
            child.kill(sig);
          } catch { /* already gone */ }
        }]);
        for (const [sig, h] of pass) Deno.addSignalListener(sig, h);
        const st = await child.status;
        for (const [sig, h] of pass) Deno.removeSignalListener(sig, h);
        return st.signal ? EXIT_FAILURE : st.code;
      }
      notifier?.close();
      if (stop.signal.aborted) return EXIT_OK;
      log.warn("the previous version keeps running");
    }
  } finally {
    following.abort();
  }
}
