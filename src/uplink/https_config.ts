import { type Ctx, type Infer, type Path, s } from "../config/schema.ts";
import { tlsSchema } from "../common/tls.ts";

/** Headers the uplink sets itself; a configured header may not replace them. */
const RESERVED_HEADERS = [
  "content-type",
  "content-encoding",
  "content-length",
  "transfer-encoding",
  "idempotency-key",
  "host",
  "connection",
];

// RFC 9110 token characters.
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * TLS settings of the HTTPS uplink: the shared {@linkcode tlsSchema}, minus what Deno's fetch
 * cannot do (a different server name to verify, or no verification at all).
 */
const httpsTlsSchema = s.object(tlsSchema.shape, {
  refine: (t, ctx, path) => {
    tlsSchema.o.refine?.(t, ctx, path);
    if (t.servername !== undefined) {
      ctx.fail(
        [...path, "servername"],
        "not supported by the https uplink: the certificate is verified against the URL host",
      );
    }
    if (t.rejectUnauthorized === false) {
      ctx.fail(
        [...path, "rejectUnauthorized"],
        "not supported by the https uplink: add the server's CA as tls.ca instead",
      );
    }
  },
});

function checkUrl(
  key: string,
  url: URL,
  allowInsecure: boolean,
  ctx: Ctx,
  path: Path,
): void {
  if (url.protocol === "http:" && !allowInsecure) {
    ctx.fail(
      [...path, key],
      `expected an https:// URL, got "${url.href}" (plain http:// needs allowInsecure: true)`,
    );
  } else if (url.protocol !== "https:" && url.protocol !== "http:") {
    ctx.fail([...path, key], `expected an https:// URL, got "${url.href}"`);
  }
  if (url.username || url.password) {
    ctx.fail(
      [...path, key],
      "credentials in the URL are not allowed; use token or headers with ${ENV}",
    );
  }
}

/**
 * Config schema of the HTTPS uplink. It lists `type` as passthrough and carries cross-field
 * checks (URL scheme, headers), so use it as is in a tagged union rather than re-wrapping
 * its `shape`.
 */
export const httpsUplinkSchema = s.object({
  url: s.string({
    pattern: /^https?:\/\/[^\s\/?#]+(?:[\/?#]\S*)?$/,
    patternName: "an endpoint URL such as https://ingest.example.com/telemetry",
  }).describe("Endpoint that receives batches by POST; https:// unless allowInsecure is set"),
  allowInsecure: s.boolean().default(false)
    .describe("Allow a plain http:// URL (test benches only: readings and token travel in clear)"),
  token: s.string({ min: 1 }).optional()
    .describe("Bearer token sent as Authorization; use ${ENV} or ${file:...}"),
  headers: s.record(s.string()).default({})
    .describe("Extra request headers, e.g. an API key; values may use ${ENV}"),
  tls: httpsTlsSchema.optional()
    .describe("CA to trust and client certificate for mutual TLS (PEM files)"),
  gzip: s.boolean().default(false).describe("Compress request bodies (Content-Encoding: gzip)"),
  alarmPath: s.string({ min: 1 }).default("/alarms")
    .describe("Where alarm events are POSTed, resolved against url like a link"),
  maxMessageBytes: s.bytes({ min: 1024, max: 256 * 1024 * 1024 }).default(1024 * 1024)
    .describe("Upper bound of one batch body before compression"),
  targetMessageBytes: s.bytes({ min: 512 }).optional()
    .describe("Close a batch once it reaches this size"),
  maxInflight: s.integer({ min: 1, max: 64 }).default(4)
    .describe("Requests sent and not yet answered"),
  timeout: s.duration({ min: 100, max: 600_000 }).default(30_000)
    .describe("A request without a response after this long fails and is retried"),
  retry: s.object({
    min: s.duration({ min: 10 }).default(1000).describe("First retry delay"),
    max: s.duration({ min: 10 }).default(60_000).describe("Largest retry delay"),
  }, {
    refine: (r, ctx, path) => {
      if (r.min > r.max) {
        ctx.fail([...path, "min"], `expected min ≤ max (${r.max}ms), got ${r.min}ms`);
      }
    },
  }).default({ min: 1000, max: 60_000 })
    .describe("Exponential backoff with jitter, used when the server sends no Retry-After"),
}, {
  passthrough: ["type"],
  refine: (c, ctx, path) => {
    const before = ctx.issues.length;
    let base: URL | undefined;
    try {
      base = new URL(c.url);
      checkUrl("url", base, c.allowInsecure, ctx, path);
    } catch {
      ctx.fail([...path, "url"], `expected an endpoint URL, got "${c.url}"`);
    }
    // An alarm URL resolved from a bad url would only repeat its problem.
    if (base && ctx.issues.length === before) {
      try {
        checkUrl("alarmPath", new URL(c.alarmPath, base), c.allowInsecure, ctx, path);
      } catch {
        ctx.fail([...path, "alarmPath"], `expected a path or URL, got "${c.alarmPath}"`);
      }
    }
    for (const [name, value] of Object.entries(c.headers)) {
      const at = [...path, "headers", name];
      const lower = name.toLowerCase();
      if (!HEADER_NAME_RE.test(name)) {
        ctx.fail(at, `expected a header name of letters, digits and -, got "${name}"`, true);
      } else if (RESERVED_HEADERS.includes(lower)) {
        ctx.fail(at, `header "${name}" is set by the uplink and cannot be configured`, true);
      } else if (lower === "authorization" && c.token !== undefined) {
        ctx.fail(at, `header "${name}" conflicts with token; set one of them`, true);
      }
      if (/[\r\n\0]/.test(value)) {
        ctx.fail(at, `header "${name}" must not contain line breaks`);
      }
    }
    if (
      c.targetMessageBytes !== undefined && c.targetMessageBytes > c.maxMessageBytes
    ) {
      ctx.fail(
        [...path, "targetMessageBytes"],
        `expected at most maxMessageBytes (${c.maxMessageBytes}), got ${c.targetMessageBytes}`,
      );
    }
  },
});

/** Validated config of the HTTPS uplink. */
export type HttpsUplinkConfig = Infer<typeof httpsUplinkSchema>;
