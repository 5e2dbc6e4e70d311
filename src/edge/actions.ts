import mqtt from "mqtt";
import { sleep, type WriteRequest } from "../adapter.ts";
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
}

/**
 * Runs the actions of a rule transition: adapter writes (retried a few times, since an adapter
 * may be between restarts), local MQTT publishes (one client per URL, kept open), webhooks and
 * log lines. Actions run concurrently and never throw into the pipeline; failures are logged and
 * counted.
 */
export class ActionRunner {
  readonly #o: ActionRunnerOptions;
  readonly #clients = new Map<string, mqtt.MqttClient>();
  readonly #running = new Set<Promise<void>>();
  readonly #stats: ActionStats = { run: 0, failed: 0 };

  constructor(opts: ActionRunnerOptions) {
    this.#o = opts;
    opts.signal.addEventListener("abort", () => {
      for (const c of this.#clients.values()) c.end(true);
    }, { once: true });
  }

  /** Starts the actions of `rule` that apply to `event`'s transition. */
  run(rule: RuleConfig, event: AlarmEvent): void {
    for (const a of rule.actions) {
      if (a.on !== "both" && (a.on === "raise") !== (event.state === "raised")) continue;
      this.#stats.run++;
      const p = this.#one(a, event).catch((e) => {
        this.#stats.failed++;
        this.#o.log.error("rule action failed", {
          rule: rule.name,
          state: event.state,
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
    return { ...this.#stats };
  }

  async #one(a: ActionConfig, event: AlarmEvent): Promise<void> {
    const { log, signal } = this.#o;
    if (a.log) {
      log[a.log.level](
        a.log.message ? fill(a.log.message, event) : `alarm ${event.state}: ${event.message}`,
        { rule: event.rule, severity: event.severity },
      );
    } else if (a.write) {
      const w = a.write;
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
      let client = this.#clients.get(m.url);
      if (!client) {
        client = mqtt.connect(m.url, { reconnectPeriod: 1000, connectTimeout: 5000 });
        client.on(
          "error",
          (e) => log.debug("local MQTT action client error", { url: m.url, error: e.message }),
        );
        this.#clients.set(m.url, client);
      }
      const payload = m.payload !== undefined ? fill(m.payload, event) : JSON.stringify(event);
      await client.publishAsync(m.topic, payload, { qos: 1, retain: m.retain });
    } else if (a.webhook) {
      const h = a.webhook;
      const res = await fetch(h.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(event),
        signal: AbortSignal.any([signal, AbortSignal.timeout(h.timeout)]),
      });
      await res.body?.cancel();
      if (!res.ok) throw new ActionError(`Webhook "${h.url}" answered ${res.status}`);
    }
  }
}
