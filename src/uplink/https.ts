import { backoffDelay, sleep } from "../common/timing.ts";
import type { Logger } from "../log.ts";
import type { StoredReading } from "../reading.ts";
import { encodeBatches } from "./encode.ts";
import type { HttpsUplinkConfig } from "./https_config.ts";
import {
  type OutMessage,
  PermanentUplinkError,
  type Uplink,
  UplinkError,
  type UplinkState,
} from "./uplink.ts";

/** Longest Retry-After honoured; a larger value from a confused server is cut to this. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** A retryable HTTPS failure (network error, timeout, 408, 429, 5xx), with when to retry. */
export class HttpsUplinkError extends UplinkError {
  override name = "HttpsUplinkError";
  /** How long to wait before retrying: the server's Retry-After, else the uplink's backoff. */
  readonly retryAfterMs: number;
  /** HTTP status, when the server answered. */
  readonly status?: number;

  /** Creates the error; `status` is absent for network errors and timeouts. */
  constructor(
    message: string,
    options: { retryAfterMs: number; status?: number; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

/** The receiver refused a batch for good (3xx, 4xx other than 408/429): set it aside. */
export class HttpsRejectedError extends PermanentUplinkError {
  override name = "HttpsRejectedError";
  /** HTTP status of the refusal. */
  readonly status: number;

  /** Creates the error for a response with `status`. */
  constructor(message: string, options: { status: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

/** The uplink could not be set up from its config (unreadable or invalid PEM files). */
export class HttpsUplinkSetupError extends Error {
  override name = "HttpsUplinkSetupError";
}

/** What {@linkcode HttpsUplink} is built from. */
export interface HttpsUplinkOptions {
  config: HttpsUplinkConfig;
  gatewayId: string;
  /** Buffer epoch, part of every payload and Idempotency-Key. */
  epoch: string;
  /** Gateway version, sent in User-Agent. */
  version: string;
  log: Logger;
}

/**
 * Parses a Retry-After header (delay in seconds or an HTTP-date) into milliseconds from `now`,
 * at most {@linkcode MAX_RETRY_AFTER_MS}; undefined when absent or malformed.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    // An HTTP-date names a weekday and month; this keeps "-5" from parsing as a year.
    if (!/^[A-Za-z]{3}, /.test(text)) return undefined;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** Turns a fetch failure into a short reason: "certificate rejected: UnknownIssuer". */
function describeNetworkError(e: unknown): string {
  const texts: string[] = [];
  for (let c: unknown = e; c instanceof Error && texts.length < 5; c = c.cause) {
    texts.push(c.message);
  }
  const all = texts.join(" | ");
  let m: RegExpExecArray | null;
  if ((m = /invalid peer certificate: ([^|]+)/.exec(all))) {
    return `certificate rejected: ${m[1].trim()}`;
  }
  if ((m = /received fatal alert: (\w+)/.exec(all))) {
    return m[1] === "CertificateRequired"
      ? "TLS handshake refused by the server: client certificate required"
      : `TLS handshake refused by the server: ${m[1]}`;
  }
  if (/close_notify|handshake/i.test(all)) {
    return "connection closed during the TLS handshake (server refused the client certificate?)";
  }
  if (/Connection refused/i.test(all)) return "connection refused";
  if (/dns error|failed to lookup/i.test(all)) {
    return `host not found (${all.replace(/^.*dns error: /, "")})`;
  }
  // Deno wraps the reason as "error sending request for url (…): client error (Connect): why".
  const last = texts[texts.length - 1] ?? String(e);
  return last.replace(/^error sending request for url \([^)]*\): /, "").replace(
    / \(os error \d+\)/,
    "",
  );
}

/** The URL as shown in status and errors: no credentials, query or fragment. */
function display(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function excerpt(body: string): string {
  const flat = body.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}

async function readExcerpt(res: Response): Promise<string> {
  try {
    return excerpt(await res.text());
  } catch {
    return "";
  }
}

const CERT_PEM = /-----BEGIN CERTIFICATE-----/;
const KEY_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

function readPem(what: string, path: string, kind: "certificate" | "private key"): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new HttpsUplinkSetupError(
      `Cannot read ${what} "${path}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  // Deno's client ignores a CA file without certificates, which would only show as
  // "certificate rejected" later; say what is wrong now.
  const marker = kind === "certificate" ? CERT_PEM : KEY_PEM;
  if (!marker.test(text)) {
    throw new HttpsUplinkSetupError(`Cannot use ${what} "${path}": expected a PEM ${kind}`);
  }
  return text;
}

const RETRYABLE = new Set([408, 429]);

/**
 * Delivers batches by HTTPS POST. `send` resolves on a 2xx answer and never re-sends by itself;
 * 408, 429, 5xx, timeouts and network errors reject with {@linkcode HttpsUplinkError} (carrying
 * `retryAfterMs`); other answers reject with {@linkcode HttpsRejectedError}, a
 * `PermanentUplinkError`, so the forwarder sets the batch aside.
 *
 * @example
 * ```ts
 * const uplink = new HttpsUplink({ config, gatewayId: "gw-1", epoch, version, log });
 * uplink.start();
 * for (const m of uplink.encode(readings)) await uplink.send(m);
 * await uplink.close();
 * ```
 */
export class HttpsUplink implements Uplink {
  /** Always "https". */
  readonly type = "https";
  /** Requests the forwarder may have in flight at once. */
  readonly maxInflight: number;

  #config: HttpsUplinkConfig;
  #gatewayId: string;
  #epoch: string;
  #log: Logger;
  #url: URL;
  #alarmUrl: URL;
  #target: string;
  #topic: string;
  #headers: Record<string, string>;
  #client: Deno.HttpClient;
  #closing = new AbortController();
  #started = false;
  /** The running probe loop, if any; close() waits for it. */
  #probing: Promise<void> | undefined;
  #inflight = new Set<Promise<unknown>>();
  #listeners = new Set<(connected: boolean) => void>();
  #connected = false;
  #since = Date.now();
  #lastError: string | null = null;
  #acked = 0;
  #failed = 0;
  #rejected = 0;
  /** Failures in a row, for the backoff when the server gives no Retry-After. */
  #streak = 0;

  /** Builds the uplink; reads the TLS files now, so a bad path fails at startup. */
  constructor(options: HttpsUplinkOptions) {
    const { config, gatewayId, epoch, version, log } = options;
    this.#config = config;
    this.#gatewayId = gatewayId;
    this.#epoch = epoch;
    this.#log = log;
    this.maxInflight = config.maxInflight;
    this.#url = new URL(config.url);
    this.#alarmUrl = new URL(config.alarmPath, this.#url);
    this.#target = display(this.#url);
    this.#topic = this.#url.pathname.split("/").filter(Boolean).pop() ?? "telemetry";
    this.#headers = {
      "user-agent": `outpost/${version}`,
      ...Object.fromEntries(
        Object.entries(config.headers).map(([k, v]) => [k.toLowerCase(), v]),
      ),
      ...(config.token !== undefined ? { authorization: `Bearer ${config.token}` } : {}),
    };
    const tls = config.tls;
    const clientOptions: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
    if (tls?.ca) clientOptions.caCerts = [readPem("tls.ca file", tls.ca, "certificate")];
    if (tls?.cert && tls.key) {
      clientOptions.cert = readPem("tls.cert file", tls.cert, "certificate");
      clientOptions.key = readPem("tls.key file", tls.key, "private key");
    }
    try {
      this.#client = Deno.createHttpClient(
        clientOptions as Deno.CreateHttpClientOptions & Deno.TlsCertifiedKeyPem,
      );
    } catch (e) {
      throw new HttpsUplinkSetupError(
        `Cannot set up TLS for "${this.#target}": ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  /** True once the endpoint last answered (any HTTP status); false after a network error. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Packs readings into JSON batch bodies (format v1) within the configured sizes. */
  encode(readings: StoredReading[]): OutMessage[] {
    const batches = encodeBatches(readings, { gatewayId: this.#gatewayId, epoch: this.#epoch }, {
      maxBytes: this.#config.maxMessageBytes,
      targetBytes: this.#config.targetMessageBytes,
    });
    return batches.map((b) => ({ topic: this.#topic, ...b }));
  }

  /** POSTs one batch; resolves on 2xx. One attempt only: retrying is the forwarder's call. */
  send(message: OutMessage): Promise<void> {
    const key = `${this.#gatewayId}-${this.#epoch}-${message.first}-${message.last}`;
    const p = this.#post(this.#url, message.payload, key).then(
      () => {
        this.#acked++;
      },
      (e) => {
        if (e instanceof PermanentUplinkError) this.#rejected++;
        else this.#failed++;
        throw e;
      },
    );
    return this.#track(p);
  }

  /** POSTs an alarm event to `alarmPath` at once, outside the batch flow. */
  sendAlarm(event: Record<string, unknown>): Promise<void> {
    const body = JSON.stringify({ gw: this.#gatewayId, epoch: this.#epoch, ...event });
    const id = event.id;
    const key = typeof id === "string" || typeof id === "number"
      ? `${this.#gatewayId}-alarm-${id}`
      : undefined;
    return this.#track(this.#post(this.#alarmUrl, body, key));
  }

  /** Connection state and counters, as shown in status. */
  state(): UplinkState {
    return {
      type: this.type,
      target: this.#target,
      connected: this.#connected,
      since: this.#since,
      lastError: this.#lastError,
      acked: this.#acked,
      failed: this.#failed,
      rejected: this.#rejected,
      inflight: this.#inflight.size,
    };
  }

  /** Calls `listener` whenever `connected` changes; returns the unsubscribe function. */
  onStateChange(listener: (connected: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Probes the endpoint (HEAD) until it answers, and again whenever it becomes unreachable. */
  start(): void {
    if (this.#started || this.#closing.signal.aborted) return;
    this.#started = true;
    this.#probe();
  }

  /** Aborts in-flight requests (they reject with an UplinkError), stops probing, frees the pool. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    await Promise.allSettled([...this.#inflight, this.#probing]);
    this.#client.close();
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  #setConnected(connected: boolean): void {
    if (connected === this.#connected) return;
    this.#connected = connected;
    this.#since = Date.now();
    this.#log.info(connected ? "endpoint reachable" : "endpoint unreachable", {
      target: this.#target,
      ...(connected ? {} : { error: this.#lastError ?? undefined }),
    });
    for (const listener of this.#listeners) {
      try {
        listener(connected);
      } catch (e) {
        this.#log.error("uplink state listener failed", { error: e });
      }
    }
    if (!connected) this.#probe();
  }

  /** Starts the probe loop unless it runs already, the uplink is not started, or closed. */
  #probe(): void {
    if (!this.#started || this.#probing || this.#closing.signal.aborted) return;
    this.#probing = this.#probeLoop().finally(() => {
      this.#probing = undefined;
      // A request may have failed between the loop's last check and now.
      if (!this.#connected) this.#probe();
    });
  }

  /**
   * One request with the uplink's headers and timeout. Any HTTP answer marks the endpoint
   * reachable; 2xx resolves, the rest reject as described on the class.
   */
  async #post(url: URL, payload: string, idempotencyKey?: string): Promise<void> {
    const where = `Cannot POST to "${display(url)}"`;
    const headers: Record<string, string> = {
      ...this.#headers,
      "content-type": "application/json",
    };
    if (this.#config.gzip) headers["content-encoding"] = "gzip";
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    const body = this.#config.gzip ? await gzip(payload) : payload;
    let answer: { res: Response; text: string };
    try {
      answer = await this.#request(url, { method: "POST", headers, body }, async (res) => {
        if (!res.ok) return { res, text: await readExcerpt(res) };
        await res.body?.cancel();
        return { res, text: "" };
      });
    } catch (e) {
      const closed = this.#closing.signal.aborted;
      if (!closed) this.#streak++;
      const err = new HttpsUplinkError(`${where}: ${this.#requestFailure(e)}`, {
        retryAfterMs: closed ? 0 : backoffDelay(this.#streak - 1, this.#config.retry),
        cause: e,
      });
      this.#lastError = err.message;
      if (!closed) this.#setConnected(false);
      throw err;
    }
    const { res, text } = answer;
    this.#setConnected(true);
    if (res.ok) {
      this.#streak = 0;
      return;
    }
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
    const detail = text ? `: ${text}` : "";
    if (RETRYABLE.has(res.status) || res.status >= 500) {
      this.#streak++;
      const retryAfterMs = parseRetryAfter(res.headers.get("retry-after")) ??
        backoffDelay(this.#streak - 1, this.#config.retry);
      const err = new HttpsUplinkError(`${where}: ${status}${detail}`, {
        retryAfterMs,
        status: res.status,
      });
      this.#lastError = err.message;
      throw err;
    }
    const hint = res.status >= 300 && res.status < 400
      ? ` (redirect to ${res.headers.get("location") ?? "nowhere"} not followed; set url to it)`
      : res.status === 413
      ? ` (${payload.length} bytes; lower maxMessageBytes)`
      : "";
    const err = new HttpsRejectedError(`${where}: ${status}${hint}${detail}`, {
      status: res.status,
    });
    this.#lastError = err.message;
    this.#log.warn("request rejected by the endpoint", { status: res.status, error: err.message });
    throw err;
  }

  /**
   * fetch with this uplink's client, then `use` the response, all within the timeout and
   * cancelled on close. The timer and listeners go with the request's own signal.
   */
  async #request<T>(url: URL, init: RequestInit, use: (res: Response) => Promise<T>): Promise<T> {
    if (this.#closing.signal.aborted) throw new DOMException("uplink closed", "AbortError");
    const ac = new AbortController();
    const timer = setTimeout(() => {
      ac.abort(new DOMException(`no response within ${this.#config.timeout}ms`, "TimeoutError"));
    }, this.#config.timeout);
    ac.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
    this.#closing.signal.addEventListener(
      "abort",
      () => ac.abort(new DOMException("uplink closed", "AbortError")),
      { signal: ac.signal },
    );
    try {
      const res = await fetch(url, {
        ...init,
        client: this.#client,
        signal: ac.signal,
        redirect: "manual",
      });
      return await use(res);
    } finally {
      ac.abort();
    }
  }

  #requestFailure(e: unknown): string {
    if (e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError")) {
      return e.message;
    }
    return describeNetworkError(e);
  }

  /** HEAD the endpoint with backoff until it answers or the uplink closes. Never rejects. */
  async #probeLoop(): Promise<void> {
    for (let attempt = 0; !this.#connected && !this.#closing.signal.aborted; attempt++) {
      if (attempt > 0) {
        await sleep(backoffDelay(attempt - 1, this.#config.retry), this.#closing.signal);
        if (this.#connected || this.#closing.signal.aborted) break;
      }
      try {
        await this.#request(
          this.#url,
          { method: "HEAD", headers: this.#headers },
          (res) => res.body?.cancel() ?? Promise.resolve(),
        );
        this.#setConnected(true);
      } catch (e) {
        if (this.#closing.signal.aborted) break;
        this.#lastError = `Cannot reach "${this.#target}": ${this.#requestFailure(e)}`;
        this.#log.debug("probe failed", { error: this.#lastError, attempt });
      }
    }
  }
}

async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
