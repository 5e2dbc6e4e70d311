/**
 * Replies of remote commands: published on the uplink of whichever gateway the service serves
 * now, waiting for a connection across reconnects, reloads and restarts, in order per request.
 */
import type { Gateway } from "../gateway.ts";
import type { Logger } from "../log.ts";
import { type CommandReply, replyTopic } from "../protocol/mod.ts";

/** Replies of one request, sent in order. */
export interface ReplyChain {
  last: Promise<void>;
}

/** How long a reply waits for a broker connection before it is given up. */
export const REPLY_WAIT_MS = 5 * 60_000;

/** What {@linkcode Replies} publishes through. */
export interface RepliesOptions {
  /** The gateway served now, if any. */
  gateway(): Gateway | undefined;
  /** The id of the gateway the replies come from. */
  gatewayId(): string | undefined;
  log(): Logger | undefined;
  /** Aborted when the service closes for good: waiting replies are dropped. */
  closed: AbortSignal;
}

/** Sends the replies of the command service. */
export class Replies {
  readonly #gateway: () => Gateway | undefined;
  readonly #gatewayId: () => string | undefined;
  readonly #log: () => Logger | undefined;
  readonly #closed: AbortSignal;
  #connWaiters = new Set<() => void>();
  #watched: unknown;

  constructor(opts: RepliesOptions) {
    this.#gateway = opts.gateway;
    this.#gatewayId = opts.gatewayId;
    this.#log = opts.log;
    this.#closed = opts.closed;
  }

  /** Hears the connection changes of the current uplink (a reload replaces it). */
  watchUplink(): void {
    const u = this.#gateway()?.uplink;
    if (!u || u === this.#watched) return;
    this.#watched = u;
    u.onStateChange(() => this.wakeConnWaiters());
  }

  /** Sends a reply; a reply that cannot be delivered is logged, not thrown. */
  async sendQuietly(
    prefix: string,
    reply: Omit<CommandReply, "gatewayId" | "ts">,
    chain: ReplyChain = { last: Promise.resolve() },
  ): Promise<void> {
    try {
      await this.send(prefix, reply, { waitMs: REPLY_WAIT_MS, chain });
    } catch (e) {
      this.#log()?.warn("reply not delivered", {
        id: reply.id ?? undefined,
        cmd: reply.cmd,
        status: reply.status,
        error: (e as Error).message,
      });
    }
  }

  /**
   * Publishes a reply on the current gateway's uplink, waiting up to `waitMs` for a connection
   * (across reconnects, reloads and restarts); resolves on PUBACK. Replies on one `chain` go out
   * in order, but several may wait for their PUBACK at once (query pages).
   */
  send(
    prefix: string,
    reply: Omit<CommandReply, "gatewayId" | "ts">,
    opts: { waitMs: number; chain: ReplyChain },
  ): Promise<void> {
    const started = opts.chain.last.then(() => this.#startSend(prefix, reply, opts.waitMs));
    opts.chain.last = started.then(() => {}, () => {});
    const acked = started.then((s) => s.acked);
    // A caller that does not wait for the PUBACK must not turn a lost reply into a crash.
    acked.catch(() => {});
    return acked;
  }

  async #startSend(
    prefix: string,
    reply: Omit<CommandReply, "gatewayId" | "ts">,
    waitMs: number,
  ): Promise<{ acked: Promise<void> }> {
    const gatewayId = this.#gatewayId();
    if (!gatewayId) throw new Error("no gateway");
    const { id, cmd, status, final, ...rest } = reply;
    const full: CommandReply = { id, gatewayId, cmd, status, final, ts: Date.now(), ...rest };
    const text = JSON.stringify(full);
    const topic = replyTopic(prefix, gatewayId);
    const deadline = Date.now() + waitMs;
    let lastError = "not connected to the broker";
    // Wrapped: an async function returning the PUBACK promise would wait for it.
    const publish = async (): Promise<{ puback: Promise<void> }> => {
      for (;;) {
        if (this.#closed.aborted) throw new Error("command service closed");
        const u = this.#gateway()?.uplink;
        if (u?.connected && u.publish) return { puback: u.publish(topic, text) };
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`reply not sent within ${waitMs}ms: ${lastError}`);
        await this.#waitForConnection(Math.min(left, 1000));
      }
    };
    const first = await publish();
    const acked = (async () => {
      let pending = first;
      for (;;) {
        try {
          return await pending.puback;
        } catch (e) {
          // The connection dropped under it: publish again on the next one (at-least-once).
          lastError = (e as Error).message;
          pending = await publish();
        }
      }
    })();
    return { acked };
  }

  #waitForConnection(ms: number): Promise<void> {
    this.watchUplink();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#connWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#connWaiters.add(done);
    });
  }

  /** Wakes the replies waiting for a connection (it changed, or the gateway went away). */
  wakeConnWaiters(): void {
    for (const w of [...this.#connWaiters]) w();
  }
}
