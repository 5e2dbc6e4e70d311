/**
 * What the gateway's HTTP server answers under `/devices/`: artifact downloads for field devices
 * with their own tokens, resumable with Range (206, Content-Range, If-Range against a strong
 * ETag, the way ESP-IDF's `esp_https_ota` resumes a partial image), device state reports, and
 * the operator's rollout resume (page token).
 *
 * @module
 */
import { BASE_HEADERS, json, readJson, RequestError } from "../common/http/mod.ts";
import type { Logger } from "../log.ts";
import type { DeviceReport } from "./rollout.ts";

/** A file the gateway serves to one device. */
export interface ServedArtifact {
  path: string;
  size: number;
  sha256: string;
}

/** What the routes ask of the device service. */
export interface DeviceRoutesOptions {
  /** The device a token belongs to. */
  deviceOf(token: string): string | undefined;
  /** The artifact `name` `version` for device `id`; undefined when it is not one of its own. */
  artifact(id: string, name: string, version: string): ServedArtifact | undefined;
  /** Bytes of an artifact about to be sent to a device (`from` is the first byte's offset). */
  serving(id: string, name: string, version: string, from: number, bytes: number): void;
  report(id: string, report: DeviceReport): void;
  /** What is offered to device `id` now (for devices that poll instead of using MQTT). */
  offer(id: string): unknown;
  /** Resumes a stopped rollout; false when the class has none. */
  resume(cls: string): boolean;
  log: Logger;
}

/** A route handler mounted under `/devices/`; `pageAuthorized` checks the page's token. */
export type DeviceRoutes = (req: Request, pageAuthorized: () => boolean) => Promise<Response>;

/** A byte range of a file of `size` bytes: inclusive `start`..`end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a Range header against a file size: the range to send, `"unsatisfiable"` (416), or
 * undefined for the whole file (no header, a unit other than bytes, or several ranges, which a
 * server may answer with the whole file).
 */
export function parseRange(
  header: string | null,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

function fileBody(path: string, start: number, length: number): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  let left = length;
  return new ReadableStream<Uint8Array>({
    async start() {
      file = await Deno.open(path, { read: true });
      await file.seek(start, Deno.SeekMode.Start);
    },
    async pull(c) {
      const buf = new Uint8Array(Math.min(64 * 1024, left));
      const n = await file!.read(buf);
      if (n === null || n === 0) {
        file!.close();
        c.error(new Error(`"${path}" ended ${left} bytes early`));
        return;
      }
      left -= n;
      c.enqueue(buf.subarray(0, n));
      if (left === 0) {
        file!.close();
        c.close();
      }
    },
    cancel() {
      file?.close();
    },
  }, { highWaterMark: 0 });
}

const REPORT_STATES = new Set([
  "",
  "running",
  "idle",
  "downloading",
  "installed",
  "failed",
  "rolled-back",
  "rolled_back",
  "rollback",
]);

/** Checks a report's shape; throws a 400 {@linkcode RequestError} naming the bad field. */
export function parseReport(body: Record<string, unknown>): DeviceReport {
  const { version, state, error } = body;
  if (typeof version !== "string" || !/^[0-9A-Za-z.+-]{1,64}$/.test(version)) {
    throw new RequestError(
      400,
      `version: expected the version the device runs, got ${JSON.stringify(version)?.slice(0, 70)}`,
    );
  }
  if (state !== undefined && (typeof state !== "string" || !REPORT_STATES.has(state))) {
    throw new RequestError(
      400,
      `state: expected one of running, downloading, installed, failed, rolled-back, got ${
        JSON.stringify(state)?.slice(0, 70)
      }`,
    );
  }
  if (error !== undefined && typeof error !== "string") {
    throw new RequestError(400, "error: expected a string");
  }
  return {
    version,
    state: state as string | undefined,
    error: (error as string | undefined)?.slice(0, 200),
  };
}

/** The `/devices/` routes. */
export function deviceRoutes(o: DeviceRoutesOptions): DeviceRoutes {
  let refusedLoggedAt = 0;
  let refused = 0;
  const deny = (req: Request): Response => {
    refused++;
    const now = Date.now();
    if (now - refusedLoggedAt > 60_000) {
      refusedLoggedAt = now;
      o.log.warn("device request without a valid device token refused", {
        path: new URL(req.url).pathname,
        refused,
      });
    }
    return json({ error: "device token required: Authorization: Bearer <token>" }, 401, {
      "www-authenticate": 'Bearer realm="outpost-devices"',
    });
  };
  const device = (req: Request): string | undefined => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
    return m ? o.deviceOf(m[1]) : undefined;
  };

  const download = (req: Request, id: string, name: string, version: string): Response => {
    const a = o.artifact(id, name, version);
    if (!a) return json({ error: `no artifact ${name} ${version} for device ${id}` }, 404);
    const etag = `"${a.sha256}"`;
    const headers: Record<string, string> = {
      ...BASE_HEADERS,
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      etag,
      "cache-control": "no-store",
    };
    const ifRange = req.headers.get("if-range");
    const range = ifRange && ifRange !== etag
      ? undefined
      : parseRange(req.headers.get("range"), a.size);
    if (range === "unsatisfiable") {
      return new Response(null, {
        status: 416,
        headers: { ...headers, "content-range": `bytes */${a.size}` },
      });
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? a.size - 1;
    const length = end - start + 1;
    headers["content-length"] = String(length);
    if (range) headers["content-range"] = `bytes ${start}-${end}/${a.size}`;
    const status = range ? 206 : 200;
    if (req.method === "HEAD") return new Response(null, { status, headers });
    o.serving(id, name, version, start, length);
    return new Response(fileBody(a.path, start, length), { status, headers });
  };

  return async (req, pageAuthorized) => {
    const path = new URL(req.url).pathname;
    try {
      const art = /^\/devices\/artifacts\/([a-z0-9][a-z0-9._-]{0,63})\/([0-9A-Za-z.+-]{1,64})$/
        .exec(path);
      if (art) {
        if (req.method !== "GET" && req.method !== "HEAD") {
          return json({ error: `${req.method} not allowed here` }, 405, { allow: "GET, HEAD" });
        }
        const id = device(req);
        return id ? download(req, id, art[1], art[2]) : deny(req);
      }
      if (path === "/devices/offer") {
        if (req.method !== "GET") return json({ error: "GET here" }, 405, { allow: "GET" });
        const id = device(req);
        if (!id) return deny(req);
        const offer = o.offer(id);
        return offer ? json(offer) : new Response(null, { status: 204, headers: BASE_HEADERS });
      }
      if (path === "/devices/state") {
        if (req.method !== "POST") {
          return json({ error: "POST a report here" }, 405, { allow: "POST" });
        }
        const id = device(req);
        if (!id) return deny(req);
        o.report(id, parseReport(await readJson(req, 4096)));
        return json({ ok: true, device: id });
      }
      if (path === "/devices/resume") {
        if (req.method !== "POST") return json({ error: "POST here" }, 405, { allow: "POST" });
        if (!pageAuthorized()) {
          return json({ error: "the gateway's access token is required" }, 401, {
            "www-authenticate": 'Bearer realm="outpost"',
          });
        }
        const cls = new URL(req.url).searchParams.get("class") ?? "";
        return o.resume(cls)
          ? json({ ok: true, class: cls })
          : json({ error: `class "${cls}" has no stopped rollout` }, 409);
      }
      return json({ error: `no such path ${path}` }, 404);
    } catch (e) {
      if (e instanceof RequestError) return json({ error: e.message }, e.status);
      throw e;
    }
  };
}
