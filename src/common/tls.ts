import { type Infer, s } from "../config/schema.ts";

/**
 * TLS material of a client connection: files on disk (PEM). Shared by the MQTT clients (uplink,
 * adapters, fleet console) and, narrowed, by the HTTPS uplink.
 */
export const tlsSchema = s.object({
  ca: s.string({ min: 1 }).optional().describe("CA certificate file (PEM) that signs the server"),
  cert: s.string({ min: 1 }).optional().describe("Client certificate file (PEM), for mutual TLS"),
  key: s.string({ min: 1 }).optional().describe("Client private key file (PEM), for mutual TLS"),
  servername: s.string().optional().describe(
    "Server name to verify, when it differs from the URL host",
  ),
  rejectUnauthorized: s.boolean().default(true)
    .describe("Verify the server certificate (never turn off in production)"),
}, {
  refine: (t, ctx, path) => {
    if ((t.cert === undefined) !== (t.key === undefined)) {
      ctx.fail(path, "expected both cert and key for mutual TLS, got only one");
    }
  },
});

/** Validated TLS settings. */
export type TlsConfig = Infer<typeof tlsSchema>;
