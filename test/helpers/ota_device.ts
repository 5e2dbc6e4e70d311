/**
 * A simulated field device that updates itself the way an ESP32 with ESP-IDF's `esp_https_ota`
 * does: told of a new image (MQTT `<prefix>/<id>/update/available`), it downloads it over HTTP
 * with its device token into the inactive OTA partition (a file), resumes an interrupted
 * download with `Range: bytes=<written>-` and `If-Range: <ETag>`, checks the SHA-256, sets the
 * boot partition and "reboots" into the new version, which either marks itself valid or — when
 * its self-test fails, or when told over `<prefix>/<id>/update/rollback` — rolls back to the
 * previous partition. It reports its running version and state on `<prefix>/<id>/update/state`.
 * Used by the device artifact tests and the demo.
 */
import mqtt, { type MqttClient } from "mqtt";
import { createHash } from "node:crypto";

/** Options of {@linkcode OtaDevice.start}. */
export interface OtaDeviceOptions {
  id: string;
  token: string;
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. */
  broker: string;
  /** Topic prefix (devices.mqtt.topicPrefix). */
  prefix?: string;
  /** Holds ota_0.bin, ota_1.bin and otadata.json (kept across "power cycles"). */
  dir: string;
  /** The version in ota_0 at the first start. */
  version: string;
  /** The new image's self-test fails after the reboot: the device rolls back. */
  failAfterInstall?: boolean;
  /** Breaks the first download off after this many bytes (a Wi-Fi drop); it then resumes. */
  cutAfterBytes?: number;
  /** Wait between a broken download and the retry, ms (200). */
  retryMs?: number;
  /** Extra `fetch` options (a TLS client for https). */
  client?: Deno.HttpClient;
}

/** One HTTP request the device made for an image. */
export interface OtaRequest {
  range: string | null;
  ifRange: string | null;
  status: number;
  /** Body bytes it received. */
  bytes: number;
}

interface OtaData {
  boot: "ota_0" | "ota_1";
  versions: Partial<Record<"ota_0" | "ota_1", string>>;
  /** A download in progress: what, into which partition, how far (ESP-IDF keeps this in NVS). */
  /** Versions it rolled back from: offered again, they are ignored. */
  bad?: string[];
  pending?: {
    url: string;
    version: string;
    sha256: string;
    size: number;
    etag?: string;
    written: number;
  };
}

const other = (p: "ota_0" | "ota_1") => p === "ota_0" ? "ota_1" : "ota_0";

/** A running simulated device. */
export class OtaDevice {
  readonly o: OtaDeviceOptions;
  readonly requests: OtaRequest[] = [];
  /** States it reported, oldest first. */
  readonly reports: { version: string; state: string; error?: string; at: number }[] = [];
  /** Offers it received. */
  readonly offers: { version: string; url: string; sha256: string; size: number; at: number }[] =
    [];
  #client!: MqttClient;
  #data!: OtaData;
  #cut: number | undefined;
  #busy: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(o: OtaDeviceOptions) {
    this.o = o;
    this.#cut = o.cutAfterBytes;
  }

  /** Boots the device: reads its partitions, connects, reports its version. */
  static async start(o: OtaDeviceOptions): Promise<OtaDevice> {
    const d = new OtaDevice(o);
    await Deno.mkdir(o.dir, { recursive: true });
    d.#data = await Deno.readTextFile(`${o.dir}/otadata.json`).then(
      (t) => JSON.parse(t),
      () => ({ boot: "ota_0", versions: { ota_0: o.version } }),
    );
    await d.#saveData();
    const prefix = o.prefix ?? "outpost/devices";
    d.#client = mqtt.connect(o.broker, {
      clientId: `ota-${o.id}-${Deno.pid}`,
      reconnectPeriod: 200,
    });
    await new Promise<void>((resolve, reject) => {
      d.#client.once("connect", () => resolve());
      d.#client.once("error", reject);
    });
    d.#client.on("message", (topic, payload) => {
      if (topic.endsWith("/update/available")) {
        const offer = JSON.parse(new TextDecoder().decode(payload));
        d.offers.push({ ...offer, at: Date.now() });
        d.#busy = d.#busy.then(() => d.#update(offer)).catch(() => {});
      } else if (topic.endsWith("/update/rollback")) {
        d.#busy = d.#busy.then(() => d.#rollback("told the running version is bad"));
      }
    });
    await d.#client.subscribeAsync([
      `${prefix}/${o.id}/update/available`,
      `${prefix}/${o.id}/update/rollback`,
    ], {
      qos: 1,
    });
    // Resumes a download a power cut interrupted.
    if (d.#data.pending) d.#busy = d.#busy.then(() => d.#download()).catch(() => {});
    await d.#report("running");
    return d;
  }

  /** The version it runs. */
  get version(): string {
    return this.#data.versions[this.#data.boot]!;
  }

  /** Bytes received over every request of the download of `version`'s image. */
  get totalBytes(): number {
    return this.requests.reduce((n, r) => n + r.bytes, 0);
  }

  async #saveData(): Promise<void> {
    await Deno.writeTextFile(`${this.o.dir}/otadata.json`, JSON.stringify(this.#data));
  }

  async #report(state: string, error?: string): Promise<void> {
    const body = { version: this.version, state, ...(error ? { error } : {}) };
    this.reports.push({ ...body, at: Date.now() });
    if (this.#closed) return;
    const prefix = this.o.prefix ?? "outpost/devices";
    await this.#client.publishAsync(`${prefix}/${this.o.id}/update/state`, JSON.stringify(body), {
      qos: 1,
    });
  }

  async #update(
    offer: { version: string; url: string; sha256: string; size: number },
  ): Promise<void> {
    if (offer.version === this.version || this.#data.bad?.includes(offer.version)) return;
    this.#data.pending = {
      url: offer.url,
      version: offer.version,
      sha256: offer.sha256,
      size: offer.size,
      written: 0,
    };
    await this.#saveData();
    await this.#download();
  }

  async #download(): Promise<void> {
    const p = this.#data.pending!;
    const part = other(this.#data.boot);
    const file = `${this.o.dir}/${part}.bin`;
    for (let attempt = 0; !this.#closed; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, this.o.retryMs ?? 200));
      await this.#report("downloading");
      const headers: Record<string, string> = { authorization: `Bearer ${this.o.token}` };
      if (p.written > 0) {
        headers.range = `bytes=${p.written}-`;
        if (p.etag) headers["if-range"] = p.etag;
      }
      const ac = new AbortController();
      const req: OtaRequest = {
        range: headers.range ?? null,
        ifRange: headers["if-range"] ?? null,
        status: 0,
        bytes: 0,
      };
      this.requests.push(req);
      let res: Response;
      try {
        res = await fetch(p.url, {
          headers,
          signal: ac.signal,
          ...(this.o.client ? { client: this.o.client } : {}),
        });
      } catch {
        continue;
      }
      req.status = res.status;
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        await this.#report("failed", `HTTP ${res.status}`);
        delete this.#data.pending;
        await this.#saveData();
        return;
      }
      p.etag = res.headers.get("etag") ?? undefined;
      // A 200 answer to a Range request starts the image over (the server ignored the range).
      const f = await Deno.open(file, { write: true, create: true, truncate: res.status === 200 });
      if (res.status === 200) p.written = 0;
      await f.seek(p.written, Deno.SeekMode.Start);
      let broken = false;
      try {
        for await (let chunk of res.body!) {
          if (this.#cut !== undefined && p.written + chunk.length > this.#cut) {
            chunk = chunk.subarray(0, this.#cut - p.written);
            broken = true;
          }
          let off = 0;
          while (off < chunk.length) off += await f.write(chunk.subarray(off));
          p.written += chunk.length;
          req.bytes += chunk.length;
          if (broken) {
            this.#cut = undefined;
            ac.abort();
            break;
          }
        }
      } catch {
        broken = true;
      } finally {
        f.close();
        await this.#saveData();
      }
      if (broken || p.written < p.size) continue;
      break;
    }
    if (this.#closed) return;
    const digest = createHash("sha256").update(await Deno.readFile(file)).digest("hex");
    if (digest !== p.sha256 || p.written !== p.size) {
      delete this.#data.pending;
      await this.#saveData();
      await this.#report("failed", `image check failed: sha256 ${digest}`);
      return;
    }
    // esp_https_ota_finish(): the new partition boots next; report, then reboot into it.
    this.#data.versions[part] = p.version;
    const from = this.#data.boot;
    this.#data.boot = part;
    delete this.#data.pending;
    await this.#saveData();
    await this.#report("installed");
    await new Promise((r) => setTimeout(r, 100));
    if (this.o.failAfterInstall) {
      // The new image's self-test fails: esp_ota_mark_app_invalid_rollback_and_reboot().
      this.#data.boot = from;
      this.#data.bad = [...this.#data.bad ?? [], p.version];
      await this.#saveData();
      await this.#report("rolled-back", `self-test of ${p.version} failed`);
      return;
    }
    // esp_ota_mark_app_valid_cancel_rollback().
    await this.#report("running");
  }

  async #rollback(why: string): Promise<void> {
    const prev = other(this.#data.boot);
    if (!this.#data.versions[prev]) return;
    this.#data.bad = [...this.#data.bad ?? [], this.version];
    this.#data.boot = prev;
    await this.#saveData();
    await this.#report("rolled-back", why);
  }

  /** Waits until `pred` holds, polling. */
  async waitFor(what: string, pred: (d: OtaDevice) => boolean, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred(this)) {
      if (Date.now() > end) {
        throw new Error(
          `${this.o.id}: timed out waiting for ${what}; reports ${JSON.stringify(this.reports)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The bytes of the partition it boots from. */
  async image(): Promise<Uint8Array> {
    return await Deno.readFile(`${this.o.dir}/${this.#data.boot}.bin`);
  }

  /** Powers the device off (disconnects). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#client.endAsync(true).catch(() => {});
  }
}
