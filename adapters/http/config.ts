import { type Infer, s } from "../../src/config/schema.ts";
import { isLoopbackListen } from "../../src/adapter.ts";

const token = s.object({
  token: s.string({ min: 16, max: 4096 })
    .describe("Bearer token, at least 16 characters; use ${ENV} or ${file:...}"),
  devices: s.array(s.id(), { min: 1 }).optional()
    .describe("Devices this token may post for; absent: any device"),
  name: s.string({ min: 1, max: 64 }).optional().describe("Label of the token in logs and errors"),
});

/** Config schema of the `http` adapter. */
export const httpIngestSchema = s.object({
  listen: s.string({
    pattern: /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/,
    patternName: "host:port such as 127.0.0.1:8788",
  }).default("127.0.0.1:8788").describe(
    "Address to listen on; 0.0.0.0:<port> for the network, which needs tls (or allowInsecure)",
  ),
  tls: s.object({
    cert: s.string({ min: 1 }).describe("PEM certificate (chain) file"),
    key: s.string({ min: 1 }).describe("PEM private key file"),
  }).optional().describe("Serve HTTPS with this certificate and key"),
  allowInsecure: s.boolean().default(false).describe(
    "Allow a listen address other than loopback without tls: tokens and readings travel in " +
      "clear (trusted networks, devices that cannot do TLS)",
  ),
  path: s.string({
    pattern: /^\/[A-Za-z0-9._~\-\/]*$/,
    patternName: "a URL path such as /ingest",
  }).default("/ingest").describe("Path readings are POSTed to"),
  tokens: s.array(token, { min: 1 }).describe("Accepted bearer tokens"),
  maxBody: s.bytes({ min: 64, max: 256 * 1024 ** 2 }).default(1024 ** 2)
    .describe("Largest request body"),
  maxReadings: s.integer({ min: 1, max: 1_000_000 }).default(10_000)
    .describe("Most readings in one request"),
  bodyTimeout: s.duration({ min: 100, max: 600_000 }).default(10_000)
    .describe("Time allowed to receive a request body"),
  rate: s.object({
    perSecond: s.number({ min: 0.001 }).describe("Readings per second a device may sustain"),
    burst: s.integer({ min: 1 }).describe("Readings a device may send at once (bucket size)"),
  }).default({ perSecond: 100, burst: 1000 }).describe("Token bucket per device"),
}, {
  refine: (c, ctx, path) => {
    const seen = new Map<string, number>();
    c.tokens.forEach((t, i) => {
      const prev = seen.get(t.token);
      if (prev !== undefined) {
        ctx.fail([...path, "tokens", i, "token"], `same token as tokens[${prev}]`);
      }
      seen.set(t.token, i);
    });
    const port = Number(c.listen.slice(c.listen.lastIndexOf(":") + 1));
    if (port < 1 || port > 65535) {
      ctx.fail([...path, "listen"], `expected a port 1–65535, got ${port}`);
    } else if (!isLoopbackListen(c.listen) && !c.tls && !c.allowInsecure) {
      ctx.fail(
        [...path, "listen"],
        `"${c.listen}" accepts connections from other machines, and without tls the devices' ` +
          `tokens and readings would cross the network in clear: add ` +
          `tls: { cert: FILE, key: FILE }, listen on 127.0.0.1, or set allowInsecure: true ` +
          `(trusted networks only)`,
      );
    }
  },
});

/** Validated config of the `http` adapter. */
export type HttpIngestConfig = Infer<typeof httpIngestSchema>;
