import type { MqttClient } from "mqtt";
import { sleep, type WriteRequest } from "../adapter.ts";
import { connectMqtt, DEFAULT_RECONNECT } from "../common/mqtt.ts";
import type { Logger } from "../log.ts";
import type { AlarmEvent } from "./alarm_store.ts";
import type { ActionConfig, RuleConfig } from "./config.ts";
import { fill } from "./_template.ts";

/** A rule action failed (after its retries). */
export class ActionError extends Error {
  override name = "ActionError";
}

/** Options of {@linkcode ActionRunner}. */
export interface ActionRunnerOptions {
  /** Performs a write through the named adapter instance (the gateway's supervisors). */
  write: (adapter: string, request: WriteRequest) => Promise<void>;
  log: Logger;
  signal: AbortSignal;
  /** Attempts of a write before it counts as failed, `retryMs` apart. */
  writeAttempts?: number;
  retryMs?: number;
}

/** Counters of rule actions. */
export interface ActionStats {
  run: number;
  failed: number;
  /** Started and not finished: writes between attempts, publishes waiting for a local broker. */
  pending: number;
}

/** Publishes that may wait for one unreachable local broker; more fail at once. */
const MAX_WAITING = 1000;

/** A local broker of `mqtt:` actions: one client per URL, kept open, reconnecting. */
interface LocalBroker {
  client: MqttClient;
  /** Publishes handed to the client and not yet acknowledged (queued while it is away). */
  waiting: number;
  /** Unreachable since the last connection error (logged once per outage). */
  down: boolean;
}

/**
 * Runs the actions of a rule transition: adapter writes (retried a few times, since an adapter
 * may be between restarts), local MQTT publishes (one client per URL, kept open; while the broker
 * is away they wait for it, in order, up to 1,000 per broker), webhooks (one attempt) and log
 * lines. Actions run concurrently and never throw into the pipeline; failures are logged and
 * counted.
 */
export class ActionRunner {
  readonly #o: ActionRunnerOptions;
  readonly #brokers = new Map<string, LocalBroker>();
  readonly #running = new Set<Promise<void>>();
  readonly #stats = { run: 0, failed: 0 };

  constructor(opts: ActionRunnerOptions) {
    this.#o = opts;
    opts.signal.addEventListener("abort", () => {
      if (this.#running.size) {
        opts.log.warn("rule actions unfinished at stop are dropped", {
          actions: this.#running.size,
        });
      }
      for (const b of this.#brokers.values()) b.client.end(true);
    }, { once: true });
  }

  /** Starts the actions of `rule` that apply to `event`'s transition. */
  run(rule: RuleConfig, event: AlarmEvent): void {
    for (const a of rule.actions) {
      if (a.on !== "both" && (a.on === "raise") !== (event.state === "raised")) continue;
      this.#stats.run++;
      const p = this.#one(a, event).catch((e) => {
        this.#stats.failed++;
        if (this.#o.signal.aborted) return; // counted in the one line logged at stop
        this.#o.log.error("rule action failed", {
          rule: rule.name,
          ...(event.instance !== undefined ? { instance: event.instance } : {}),
          state: event.state,
          action: a.write ? "write" : a.mqtt ? "mqtt" : a.webhook ? "webhook" : "log",
          error: (e as Error).message,
        });
      }).finally(() => this.#running.delete(p));
      this.#running.add(p);
    }
  }

  /** Resolves once every started action has finished. */
  async idle(): Promise<void> {
    while (this.#running.size) await Promise.all(this.#running);
  }

  /** Counters since start. */
  stats(): ActionStats {
    return { ...this.#stats, pending: this.#running.size };
  }

  async #one(a: ActionConfig, event: AlarmEvent): Promise<void> {
    const { log, signal } = this.#o;
    if (a.log) {
      log[a.log.level](
        a.log.message ? fill(a.log.message, event) : `alarm ${event.state}: ${event.message}`,
        { rule: event.rule, severity: event.severity },
      );
    } else if (a.write) {
      const w = { ...a.write, device: fillDevice(a.write.device, event) };
      const attempts = this.#o.writeAttempts ?? 3;
      for (let i = 1;; i++) {
        try {
          await this.#o.write(w.adapter, { device: w.device, point: w.point, value: w.value });
          log.info("rule write done", {
            rule: event.rule,
            adapter: w.adapter,
            device: w.device,
            point: w.point,
            value: w.value,
          });
          return;
        } catch (e) {
          if (i >= attempts || signal.aborted) {
            throw new ActionError(
              `Cannot write ${
                JSON.stringify(w.value)
              } to "${w.point}" of "${w.device}" through "${w.adapter}": ${(e as Error).message}`,
              { cause: e },
            );
          }
          await sleep(this.#o.retryMs ?? 1000, signal);
        }
      }
    } else if (a.mqtt) {
      const m = a.mqtt;
      const b = this.#broker(m.url);
      if (b.waiting >= MAX_WAITING) {
        throw new ActionError(
          `Cannot publish to "${m.topic}" on "${m.url}": ${b.waiting} publishes already wait for the broker`,
        );
      }
      const payload = m.payload !== undefined ? fill(m.payload, event) : JSON.stringify(event);
      b.waiting++;
      try {
        // Ending a client leaves its queued publishes unsettled; stopping settles them here.
        await new Promise<void>((resolve, reject) => {
          const stop = () => reject(new Error("the gateway is stopping"));
          signal.addEventListener("abort", stop, { once: true });
          b.client.publish(m.topic, payload, { qos: 1, retain: m.retain }, (e) => {
            signal.removeEventListener("abort", stop);
            if (e) reject(e);
            else resolve();
          });
        });
      } catch (e) {
        throw new ActionError(
          `Cannot publish to "${m.topic}" on "${m.url}": ${(e as Error).message}`,
          { cause: e },
        );
      } finally {
        b.waiting--;
      }
    } else if (a.webhook) {
      const h = a.webhook;
      let res: Response;
      try {
        res = await fetch(h.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(event),
          signal: AbortSignal.any([signal, AbortSignal.timeout(h.timeout)]),
        });
      } catch (e) {
        const why = signal.aborted
          ? "the gateway is stopping"
          : (e as Error).name === "TimeoutError"
          ? `no answer within ${h.timeout} ms`
          : (e as Error).message;
        throw new ActionError(`Cannot POST the alarm to webhook "${h.url}": ${why}`, { cause: e });
      }
      await res.body?.cancel();
      if (!res.ok) throw new ActionError(`Webhook "${h.url}" answered ${res.status}`);
    }
  }

  /** The client of a local broker, connected on first use; outages are logged once each. */
  #broker(url: string): LocalBroker {
    const known = this.#brokers.get(url);
    if (known) return known;
    const { log } = this.#o;
    const client = connectMqtt({ url, connectTimeout: 5000 }, { reconnect: DEFAULT_RECONNECT });
    const broker: LocalBroker = { client, waiting: 0, down: false };
    client.on("error", (e) => {
      if (broker.down) {
        log.debug("local MQTT broker of rule actions still unreachable", { url, error: e.message });
        return;
      }
      broker.down = true;
      log.warn("local MQTT broker of rule actions unreachable; publishes wait for it", {
        url,
        error: e.message,
        waiting: broker.waiting,
      });
    });
    client.on("connect", () => {
      if (!broker.down) return;
      broker.down = false;
      log.info("local MQTT broker of rule actions reachable again", {
        url,
        waiting: broker.waiting,
      });
    });
    this.#brokers.set(url, broker);
    return broker;
  }
}

/** The write target: `{device}` becomes the alarm's device; an alarm without one cannot write. */
function fillDevice(device: string, event: AlarmEvent): string {
  if (!device.includes("{device}")) return device;
  if (event.device === undefined) {
    throw new ActionError(
      `write device "${device}" names {device}, but alarm ${event.rule} is not about one device`,
    );
  }
  return device.replaceAll("{device}", event.device);
}
