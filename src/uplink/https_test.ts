import assert from "node:assert/strict";
import { createServer } from "node:https";
import { Ctx, INVALID } from "../config/schema.ts";
import { silentLogger } from "../log.ts";
import type { StoredReading } from "../reading.ts";
import { freePort, waitFor } from "../../test/helpers/ports.ts";
import { testCerts } from "../../test/helpers/certs.ts";
import { decodeBatch } from "./encode.ts";
import {
  HttpsRejectedError,
  HttpsUplink,
  HttpsUplinkError,
  HttpsUplinkSetupError,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
} from "./https.ts";
import { type HttpsUplinkConfig, httpsUplinkSchema } from "./https_config.ts";
import { PermanentUplinkError, UplinkError } from "./uplink.ts";

/** Validates a raw config through the schema, as the gateway would. */
function parse(raw: Record<string, unknown>): HttpsUplinkConfig {
  const ctx = new Ctx();
  const out = httpsUplinkSchema.check(raw, ctx, ["uplink"]);
  assert.deepEqual(ctx.issues, []);
  assert.notEqual(out, INVALID);
  return out as HttpsUplinkConfig;
}

/** The validation messages for a raw config. */
function problems(raw: Record<string, unknown>): string[] {
  const ctx = new Ctx();
  httpsUplinkSchema.check(raw, ctx, ["uplink"]);
  return ctx.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

function readings(n: number, start = 1): StoredReading[] {
  return Array.from({ length: n }, (_, i) => ({
    seq: start + i,
    device: `pump-${i % 3}`,
    metric: "pressure",
    value: 1.5 + i,
    unit: "bar",
    ts: 1_700_000_000_000 + i * 1000,
  }));
}

interface Received {
  method: string;
  path: string;
  /** Lower-case names; copied, since a served request's headers die with its response. */
  headers: Record<string, string>;
  body: string;
}

type Handler = (req: Request, body: string) => Response | Promise<Response>;

/** A TLS server on 127.0.0.1 that records every request and answers with `handler`. */
async function tlsServer(port: number, handler: Handler = () => new Response("ok")) {
  const certs = await testCerts();
  const received: Received[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    cert: await Deno.readTextFile(certs.serverCert),
    key: await Deno.readTextFile(certs.serverKey),
    onListen() {},
  }, async (req) => {
    const raw = new Uint8Array(await req.arrayBuffer());
    const gz = req.headers.get("content-encoding") === "gzip";
    const body = gz
      ? await new Response(new Blob([raw]).stream().pipeThrough(new DecompressionStream("gzip")))
        .text()
      : new TextDecoder().decode(raw);
    received.push({
      method: req.method,
      path: new URL(req.url).pathname,
      headers: Object.fromEntries(req.headers),
      body,
    });
    return handler(req, body);
  });
  return {
    received,
    posts: () => received.filter((r) => r.method === "POST"),
    stop: () => server.shutdown(),
  };
}

async function uplinkFor(port: number, extra: Record<string, unknown> = {}) {
  const certs = await testCerts();
  return new HttpsUplink({
    config: parse({
      url: `https://127.0.0.1:${port}/ingest`,
      tls: { ca: certs.ca },
      retry: { min: "10ms", max: "50ms" },
      ...extra,
    }),
    gatewayId: "gw-1",
    epoch: "e1",
    version: "0.1.0",
    log: silentLogger(),
  });
}

/** Resolves the next time the uplink's `connected` becomes `want`. */
function nextState(uplink: HttpsUplink, want: boolean): Promise<void> {
  return new Promise((resolve) => {
    const off = uplink.onStateChange((c) => {
      if (c === want) {
        off();
        resolve();
      }
    });
  });
}

Deno.test("send() resolves on 2xx and each acknowledged batch is sent exactly once", async () => {
  const port = freePort();
  const server = await tlsServer(port);
  const uplink = await uplinkFor(port, { token: "s3cret", targetMessageBytes: "600B" });
  try {
    const input = readings(100);
    const messages = uplink.encode(input);
    assert.ok(messages.length > 2, `expected several batches, got ${messages.length}`);
    assert.ok(messages.every((m) => m.topic === "ingest"));
    for (const m of messages) await uplink.send(m);
    await uplink.close();

    const posts = server.posts();
    assert.equal(posts.length, messages.length);
    assert.deepEqual(posts.flatMap((p) => decodeBatch(p.body).readings), input);
    posts.forEach((p, i) => {
      const m = messages[i];
      assert.equal(p.path, "/ingest");
      assert.equal(p.body, m.payload);
      assert.equal(p.headers["content-type"], "application/json");
      assert.equal(p.headers["idempotency-key"], `gw-1-e1-${m.first}-${m.last}`);
      assert.equal(p.headers["authorization"], "Bearer s3cret");
      assert.equal(p.headers["user-agent"], "outpost/0.1.0");
    });
    const st = uplink.state();
    assert.equal(st.type, "https");
    assert.equal(st.target, `https://127.0.0.1:${port}/ingest`);
    assert.equal(st.acked, messages.length);
    assert.equal(st.failed, 0);
    assert.equal(st.rejected, 0);
    assert.equal(st.inflight, 0);
    assert.equal(st.connected, true);
  } finally {
    await uplink.close();
    await server.stop();
  }
});

Deno.test("send() rejects with UplinkError while the server is down and succeeds once it is up", async () => {
  const port = freePort();
  const uplink = await uplinkFor(port);
  let server: Awaited<ReturnType<typeof tlsServer>> | undefined;
  try {
    const [m] = uplink.encode(readings(3));
    uplink.start();
    const err = await uplink.send(m).then(() => assert.fail("send resolved"), (e) => e);
    assert.ok(err instanceof UplinkError);
    assert.ok(err instanceof HttpsUplinkError);
    assert.ok(!(err instanceof PermanentUplinkError));
    assert.match(
      err.message,
      new RegExp(`^Cannot POST to "https://127\\.0\\.0\\.1:${port}/ingest": connection refused`),
    );
    assert.ok(err.retryAfterMs >= 10 && err.retryAfterMs <= 50, `got ${err.retryAfterMs}`);
    assert.equal(uplink.connected, false);
    assert.equal(uplink.state().failed, 1);
    assert.match(uplink.state().lastError ?? "", /connection refused/);

    const up = nextState(uplink, true);
    server = await tlsServer(port);
    await up; // the probe found the server again
    assert.equal(uplink.connected, true);
    await uplink.send(m);
    assert.equal(server.posts().length, 1);
    assert.equal(server.posts()[0].body, m.payload);
    assert.equal(uplink.state().acked, 1);
  } finally {
    await uplink.close();
    await server?.stop();
  }
});

Deno.test("connected turns false after a network error and listeners hear both changes", async () => {
  const port = freePort();
  let server = await tlsServer(port);
  const uplink = await uplinkFor(port);
  const seen: boolean[] = [];
  uplink.onStateChange((c) => seen.push(c));
  try {
    const up = nextState(uplink, true);
    uplink.start();
    await up;
    await server.stop();
    const [m] = uplink.encode(readings(1));
    await assert.rejects(uplink.send(m), UplinkError);
    assert.equal(uplink.connected, false);
    const again = nextState(uplink, true);
    server = await tlsServer(port);
    await again;
    assert.deepEqual(seen, [true, false, true]);
  } finally {
    await uplink.close();
    await server.stop();
  }
});

Deno.test("a 503 with Retry-After gives retryAfterMs; 429 without it falls back to backoff", async () => {
  const port = freePort();
  const answers = [
    new Response("busy", { status: 503, headers: { "retry-after": "7" } }),
    new Response("later", {
      status: 503,
      headers: { "retry-after": new Date(Date.now() + 120_000).toUTCString() },
    }),
    new Response("slow down", { status: 429 }),
    new Response(null, { status: 408 }),
  ];
  const server = await tlsServer(port, () => answers.shift() ?? new Response("ok"));
  const uplink = await uplinkFor(port);
  try {
    const [m] = uplink.encode(readings(2));
    const e1 = await uplink.send(m).catch((e) => e);
    assert.ok(e1 instanceof HttpsUplinkError);
    assert.equal(e1.status, 503);
    assert.equal(e1.retryAfterMs, 7000);
    assert.match(
      e1.message,
      new RegExp(`^Cannot POST to "https://127\\.0\\.0\\.1:${port}/ingest": HTTP 503.*: busy$`),
    );

    const e2 = await uplink.send(m).catch((e) => e);
    assert.ok(e2 instanceof HttpsUplinkError);
    assert.ok(e2.retryAfterMs > 100_000 && e2.retryAfterMs <= 120_000, `got ${e2.retryAfterMs}`);

    const e3 = await uplink.send(m).catch((e) => e);
    assert.ok(e3 instanceof HttpsUplinkError);
    assert.equal(e3.status, 429);
    assert.ok(e3.retryAfterMs >= 10 && e3.retryAfterMs <= 50, `got ${e3.retryAfterMs}`);

    const e4 = await uplink.send(m).catch((e) => e);
    assert.ok(e4 instanceof HttpsUplinkError);
    assert.equal(e4.status, 408);

    await uplink.send(m);
    const st = uplink.state();
    assert.equal(st.failed, 4);
    assert.equal(st.acked, 1);
    assert.equal(st.connected, true, "an HTTP answer means the endpoint is reachable");
    assert.equal(server.posts().length, 5);
  } finally {
    await uplink.close();
    await server.stop();
  }
});

Deno.test("a 400 rejects with PermanentUplinkError and counts as rejected", async () => {
  const port = freePort();
  const server = await tlsServer(
    port,
    (req) =>
      new URL(req.url).pathname === "/moved"
        ? new Response(null, { status: 302, headers: { location: "/elsewhere" } })
        : new Response('{"error":"bad batch"}', { status: 400 }),
  );
  const uplink = await uplinkFor(port);
  const moved = await uplinkFor(port, { url: `https://127.0.0.1:${port}/moved` });
  try {
    const [m] = uplink.encode(readings(2));
    const err = await uplink.send(m).catch((e) => e);
    assert.ok(err instanceof PermanentUplinkError);
    assert.ok(err instanceof HttpsRejectedError);
    assert.ok(!(err instanceof UplinkError));
    assert.equal(err.status, 400);
    assert.equal(
      err.message,
      `Cannot POST to "https://127.0.0.1:${port}/ingest": HTTP 400 Bad Request: {"error":"bad batch"}`,
    );
    assert.equal(uplink.state().rejected, 1);
    assert.equal(uplink.state().failed, 0);

    const redirect = await moved.send(m).catch((e) => e);
    assert.ok(redirect instanceof PermanentUplinkError);
    assert.match(redirect.message, /HTTP 302 .*redirect to \/elsewhere not followed/);
    assert.equal(server.received.filter((r) => r.path === "/elsewhere").length, 0);
  } finally {
    await uplink.close();
    await moved.close();
    await server.stop();
  }
});

Deno.test("gzip bodies decode on the server to the same batch", async () => {
  const port = freePort();
  const server = await tlsServer(port);
  const uplink = await uplinkFor(port, { gzip: true });
  try {
    const input = readings(200);
    const [m] = uplink.encode(input);
    await uplink.send(m);
    const [p] = server.posts();
    assert.equal(p.headers["content-encoding"], "gzip");
    assert.ok(Number(p.headers["content-length"]) < m.payload.length / 2);
    assert.equal(p.body, m.payload);
    assert.deepEqual(decodeBatch(p.body).readings, input);
  } finally {
    await uplink.close();
    await server.stop();
  }
});

Deno.test("a server certificate from another CA fails with the URL and the TLS reason", async () => {
  const port = freePort();
  const certs = await testCerts();
  const server = await tlsServer(port);
  const uplink = await uplinkFor(port, { tls: { ca: certs.rogueCa } });
  try {
    const [m] = uplink.encode(readings(1));
    const err = await uplink.send(m).catch((e) => e);
    assert.ok(err instanceof UplinkError);
    assert.equal(
      err.message,
      `Cannot POST to "https://127.0.0.1:${port}/ingest": certificate rejected: UnknownIssuer`,
    );
    assert.ok(err.cause instanceof Error);
    assert.equal(server.received.length, 0);
  } finally {
    await uplink.close();
    await server.stop();
  }
});

Deno.test("mutual TLS: the client certificate is presented, and its absence is reported", async () => {
  const certs = await testCerts();
  const pem = (p: string) => Deno.readTextFileSync(p);
  const port = freePort();
  const subjects: string[] = [];
  const server = createServer({
    cert: pem(certs.serverCert),
    key: pem(certs.serverKey),
    ca: pem(certs.ca),
    requestCert: true,
    rejectUnauthorized: true,
  }, (req, res) => {
    // deno-lint-ignore no-explicit-any
    subjects.push((req.socket as any).getPeerCertificate().subject?.CN);
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const withCert = await uplinkFor(port, {
    tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
  });
  const without = await uplinkFor(port);
  const rogue = await uplinkFor(port, {
    tls: { ca: certs.ca, cert: certs.rogueCert, key: certs.rogueKey },
  });
  try {
    const [m] = withCert.encode(readings(1));
    await withCert.send(m);
    assert.deepEqual(subjects, ["gateway-client"]);

    const err = await without.send(m).catch((e) => e);
    assert.ok(err instanceof UplinkError);
    assert.match(
      err.message,
      new RegExp(`^Cannot POST to "https://127\\.0\\.0\\.1:${port}/ingest": .*client certificate`),
    );

    const refused = await rogue.send(m).catch((e) => e);
    assert.ok(refused instanceof UplinkError);
    assert.match(refused.message, /: (TLS handshake|connection closed during the TLS handshake)/);
    assert.equal(subjects.length, 1);
  } finally {
    await withCert.close();
    await without.close();
    await rogue.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("close() aborts in-flight requests and a stalled request times out", async () => {
  const port = freePort();
  const { promise: release, resolve: releaseAll } = Promise.withResolvers<void>();
  let arrived = 0;
  const server = await tlsServer(port, async () => {
    arrived++;
    await release;
    return new Response("late");
  });
  const closing = await uplinkFor(port);
  const timing = await uplinkFor(port, { timeout: "200ms" });
  try {
    const [m] = closing.encode(readings(1));
    const pending = closing.send(m);
    await waitFor("the request to reach the server", () => arrived === 1);
    assert.equal(closing.state().inflight, 1);
    await closing.close();
    const err = await pending.catch((e) => e);
    assert.ok(err instanceof UplinkError);
    assert.match(err.message, /: uplink closed$/);
    assert.equal(closing.state().inflight, 0);
    assert.equal(closing.state().acked, 0);

    const late = await timing.send(m).catch((e) => e);
    assert.ok(late instanceof HttpsUplinkError);
    assert.equal(
      late.message,
      `Cannot POST to "https://127.0.0.1:${port}/ingest": no response within 200ms`,
    );
  } finally {
    releaseAll();
    await closing.close();
    await timing.close();
    await server.stop();
  }
});

Deno.test("sendAlarm() POSTs the event to alarmPath at once", async () => {
  const port = freePort();
  const server = await tlsServer(port);
  const uplink = await uplinkFor(port, { url: `https://127.0.0.1:${port}/v1/telemetry` });
  const sibling = await uplinkFor(port, {
    url: `https://127.0.0.1:${port}/v1/telemetry`,
    alarmPath: "alarms",
  });
  try {
    await uplink.sendAlarm({ id: "a-7", rule: "high-pressure", device: "pump-1", value: 9.5 });
    await sibling.sendAlarm({ rule: "low-level" });
    const [a, b] = server.posts();
    assert.equal(a.path, "/alarms");
    assert.deepEqual(JSON.parse(a.body), {
      gw: "gw-1",
      epoch: "e1",
      id: "a-7",
      rule: "high-pressure",
      device: "pump-1",
      value: 9.5,
    });
    assert.equal(a.headers["idempotency-key"], "gw-1-alarm-a-7");
    assert.equal(b.path, "/v1/alarms");
    assert.equal(b.headers["idempotency-key"], undefined);
    assert.equal(uplink.encode(readings(1))[0].topic, "telemetry");
  } finally {
    await uplink.close();
    await sibling.close();
    await server.stop();
  }
});

Deno.test("the constructor names a missing or non-PEM TLS file", async () => {
  const certs = await testCerts();
  const make = (tls: Record<string, string>) => () =>
    new HttpsUplink({
      config: parse({ url: "https://127.0.0.1:1/ingest", tls }),
      gatewayId: "gw-1",
      epoch: "e1",
      version: "0.1.0",
      log: silentLogger(),
    });
  const missing = `${certs.dir}/nope.crt`;
  assert.throws(make({ ca: missing }), (e: Error) => {
    assert.ok(e instanceof HttpsUplinkSetupError);
    assert.match(e.message, new RegExp(`^Cannot read tls\\.ca file "${missing}": `));
    assert.ok(e.cause instanceof Deno.errors.NotFound);
    return true;
  });
  assert.throws(
    make({ ca: certs.ca, cert: certs.clientKey, key: certs.clientKey }),
    new HttpsUplinkSetupError(
      `Cannot use tls.cert file "${certs.clientKey}": expected a PEM certificate`,
    ),
  );
});

Deno.test("httpsUplinkSchema applies defaults and refuses unsafe settings", () => {
  const c = parse({ url: "https://ingest.example.com/telemetry", token: "t" });
  assert.equal(c.maxMessageBytes, 1024 * 1024);
  assert.equal(c.maxInflight, 4);
  assert.equal(c.timeout, 30_000);
  assert.deepEqual(c.retry, { min: 1000, max: 60_000 });
  assert.equal(c.gzip, false);
  assert.equal(c.alarmPath, "/alarms");
  assert.equal(c.allowInsecure, false);
  assert.deepEqual(c.headers, {});

  parse({ url: "http://127.0.0.1:8080/ingest", allowInsecure: true });
  assert.deepEqual(problems({ url: "http://127.0.0.1:8080/ingest" }), [
    'uplink.url: expected an https:// URL, got "http://127.0.0.1:8080/ingest" (plain http:// needs allowInsecure: true)',
  ]);
  assert.deepEqual(problems({ url: "https://u:p@example.com/x" }), [
    "uplink.url: credentials in the URL are not allowed; use token or headers with ${ENV}",
  ]);
  assert.deepEqual(problems({ url: "ftp://example.com/x" }), [
    'uplink.url: expected an endpoint URL such as https://ingest.example.com/telemetry, got "ftp://example.com/x"',
  ]);
  assert.deepEqual(
    problems({
      url: "https://example.com/x",
      token: "t",
      headers: { Authorization: "Basic x", "Content-Type": "text/plain", "X-Api-Key": "k" },
    }),
    [
      'uplink.headers.Authorization: header "Authorization" conflicts with token; set one of them',
      'uplink.headers.Content-Type: header "Content-Type" is set by the uplink and cannot be configured',
    ],
  );
  assert.deepEqual(
    problems({ url: "https://example.com/x", tls: { servername: "a", rejectUnauthorized: false } }),
    [
      "uplink.tls.servername: not supported by the https uplink: the certificate is verified against the URL host",
      "uplink.tls.rejectUnauthorized: not supported by the https uplink: add the server's CA as tls.ca instead",
    ],
  );
  assert.deepEqual(problems({ url: "https://example.com/x", tls: { cert: "c.pem" } }), [
    "uplink.tls: expected both cert and key for mutual TLS, got only one",
  ]);
  assert.deepEqual(problems({ url: "https://example.com/x", retry: { min: "5s", max: "1s" } }), [
    "uplink.retry.min: expected min ≤ max (1000ms), got 5000ms",
  ]);
});

Deno.test("parseRetryAfter() reads seconds and HTTP-dates and caps both", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter("12", now), 12_000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Tue, 31 Dec 2024 23:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("999999", now), MAX_RETRY_AFTER_MS);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter("-5", now), undefined);
});
