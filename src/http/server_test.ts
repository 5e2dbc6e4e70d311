import assert from "node:assert/strict";
import { adapters } from "../../adapters/mod.ts";
import { gatewaySchema } from "../config/gateway.ts";
import { ConfigError, parseConfig } from "../config/load.ts";
import { Gateway } from "../gateway.ts";
import { createLogger, type RootLogger } from "../log.ts";
import { testCerts } from "../../test/helpers/certs.ts";
import { freePort, waitFor } from "../../test/helpers/ports.ts";
import { request } from "../common/http/mod.ts";
import { createGatewayApp, type HttpServer, readTlsFiles, startHttpServer } from "./server.ts";
import { readTokenFile, rotateTokenFile, TokenStore } from "./token.ts";

interface Fixture {
  dir: string;
  gw: Gateway;
  log: RootLogger;
  token: () => string;
  tokenFile: string;
  http: HttpServer;
  base: string;
}

/** A real gateway (simulated adapter, no uplink) and its HTTP server on a free loopback port. */
async function withServer(
  fn: (f: Fixture) => Promise<void>,
  extra: Partial<Parameters<typeof startHttpServer>[0]> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-http-" });
  const log = createLogger({ level: "debug", sink: () => {} });
  const config = parseConfig(
    `
gateway: { id: http-gw, site: "Test bench" }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 20ms, prefix: pump }
`,
    gatewaySchema(adapters),
  );
  const gw = Gateway.start({ config, adapters, log, version: "9.9.9-test" });
  const tokenFile = `${dir}/http-token`;
  const { store } = TokenStore.open(tokenFile, log.child("http"));
  const http = await startHttpServer({
    listen: "127.0.0.1:0",
    gateway: gw,
    log: log.child("http"),
    tokens: store,
    recentLogs: (n) => log.recent(n),
    trends: { intervalMs: 50 },
    ...extra,
  });
  try {
    await fn({
      dir,
      gw,
      log,
      token: () => readTokenFile(tokenFile),
      tokenFile,
      http,
      base: `${http.scheme}://${http.address}`,
    });
  } finally {
    await http.close();
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

const DATA_PATHS = ["/status", "/metrics", "/logs", "/api/dashboard"];

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}

Deno.test("/healthz is open; /status, /metrics, /logs and /api/dashboard need the bearer token", async () => {
  await withServer(async ({ base, token }) => {
    const h = await get(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(JSON.parse(h.body).ok, true);
    for (const path of DATA_PATHS) {
      const anon = await get(`${base}${path}`);
      assert.equal(anon.status, 401, path);
      assert.equal(anon.headers.get("www-authenticate"), 'Bearer realm="outpost"');
      assert.doesNotMatch(anon.body, /http-gw|pump-1/, "nothing about the gateway leaks");
      for (
        const authorization of [
          `Bearer ${token()}x`,
          `Bearer ${token().slice(1)}`,
          `Basic ${btoa(`admin:${token()}`)}`,
          `Bearer`,
          token(),
        ]
      ) {
        const wrong = await get(`${base}${path}`, { headers: { authorization } });
        assert.equal(wrong.status, 401, `${path} with ${authorization.slice(0, 8)}…`);
      }
      const ok = await get(`${base}${path}`, {
        headers: { authorization: `Bearer ${token()}` },
      });
      assert.equal(ok.status, 200, path);
      assert.equal(ok.headers.get("cache-control"), "no-store");
    }
    // A token in the query string is not a credential (it would end up in logs and history).
    assert.equal((await get(`${base}/status?token=${token()}`)).status, 401);
  });
});

Deno.test("the page shell, script and style need no token, carry no data and a strict CSP", async () => {
  await withServer(async ({ base }) => {
    const page = await get(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /^text\/html/);
    const csp = page.headers.get("content-security-policy")!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    assert.doesNotMatch(page.body, /http-gw|9\.9\.9|pump-1/);
    // No inline script or style (the CSP would block them), nothing fetched from elsewhere.
    assert.doesNotMatch(page.body, /<script>|<style|\sstyle="|\son[a-z]+=/);
    assert.doesNotMatch(page.body, /https?:\/\/(?!www\.w3\.org)/);
    const js = await get(`${base}/page.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type")!, /^text\/javascript/);
    assert.doesNotMatch(js.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    assert.doesNotMatch(js.body, /localStorage|sessionStorage/, "the token is never stored");
    const css = await get(`${base}/page.css`);
    assert.equal(css.status, 200);
    assert.doesNotMatch(css.body, /@import|url\(/);
  });
});

Deno.test("POST /login: a session cookie (HttpOnly, SameSite=Strict) that opens the API until the token rotates", async () => {
  await withServer(async ({ base, token, tokenFile }) => {
    const login = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${base}/login`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
    const wrong = await login(JSON.stringify({ token: "not-the-token-at-all" }));
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    await wrong.body?.cancel();
    const foreign = await login(JSON.stringify({ token: token() }), {
      origin: "http://evil.example",
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get("set-cookie"), null);
    await foreign.body?.cancel();
    const big = await login(JSON.stringify({ token: "x".repeat(10_000) }));
    assert.equal(big.status, 413);
    await big.body?.cancel();

    const res = await login(JSON.stringify({ token: token() }), { origin: base });
    assert.equal(res.status, 204);
    const setCookie = res.headers.get("set-cookie")!;
    assert.match(setCookie, /^outpost_session_[0-9a-f]{12}=\d+\.[A-Za-z0-9_-]{43}; /);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Path=\//);
    assert.match(setCookie, /Max-Age=43200/);
    assert.doesNotMatch(setCookie, /Secure/, "plain HTTP on loopback: no Secure flag");
    assert.ok(!setCookie.includes(token()), "the cookie is not the token");
    const cookie = setCookie.split(";")[0];
    const dash = await get(`${base}/api/dashboard`, { headers: { cookie } });
    assert.equal(dash.status, 200);
    assert.equal(JSON.parse(dash.body).status.gatewayId, "http-gw");
    // A form post works as well as JSON.
    const form = await fetch(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: token() }),
    });
    assert.equal(form.status, 204);

    rotateTokenFile(tokenFile);
    assert.equal((await get(`${base}/api/dashboard`, { headers: { cookie } })).status, 401);
    const out = await fetch(`${base}/logout`, { method: "POST" });
    assert.match(out.headers.get("set-cookie")!, /^outpost_session_[0-9a-f]{12}=; .*Max-Age=0/);
    await out.body?.cancel();
  });
});

Deno.test("/api/dashboard gives status, trend points after a cursor, rates, drain and the recent log", async () => {
  await withServer(async ({ base, token, log }) => {
    const auth = { headers: { authorization: `Bearer ${token()}` } };
    const dash = async (q = "") => JSON.parse((await get(`${base}/api/dashboard${q}`, auth)).body);
    const first = await waitFor("trend lines with a few points", async () => {
      const d = await dash();
      return d.trends["pump-1"]?.temperature?.length >= 3 && d.rates.acceptedPerSecond > 0
        ? d
        : undefined;
    });
    assert.equal(first.status.gatewayId, "http-gw");
    assert.equal(first.status.version, "9.9.9-test");
    assert.deepEqual(Object.keys(first.status.devices).sort(), ["pump-1", "pump-2"]);
    assert.equal(first.drain.state, "no-uplink");
    assert.equal(first.trendPoints, 150);
    const pts: [number, number][] = first.trends["pump-1"].temperature;
    assert.ok(pts.every(([ts, v], i) => typeof v === "number" && (i === 0 || ts > pts[i - 1][0])));
    assert.ok(first.logs.some((l: { msg: string }) => l.msg === "simulating devices"));

    // Only newer points after the cursor; none of the ones already sent.
    const next = await waitFor("new points after the cursor", async () => {
      const d = await dash(`?after=${first.trendCursor}`);
      return d.trends["pump-1"]?.temperature?.length ? d : undefined;
    });
    const lastSent = pts.at(-1)![0];
    assert.ok(next.trends["pump-1"].temperature.every(([ts]: number[]) => ts > lastSent));
    // A cursor from before a restart (ahead of the server's) gets everything again.
    const ahead = await dash(`?after=${next.trendCursor + 1_000_000}`);
    assert.ok(ahead.trends["pump-1"].temperature.length >= pts.length);

    log.child("test").warn("a line for the log view", { n: 1 });
    const logs = JSON.parse((await get(`${base}/logs?n=5`, auth)).body).lines;
    assert.ok(logs.length <= 5);
    assert.deepEqual(
      { msg: logs.at(-1).msg, component: logs.at(-1).component, level: logs.at(-1).level },
      { msg: "a line for the log view", component: "test", level: "warn" },
    );
    assert.equal((await dash("?logs=0")).logs.length, 0);
  });
});

Deno.test("a wrong token is logged once a minute without the token; a missing one only counted", async () => {
  await withServer(async ({ base, token, log }) => {
    await (await fetch(`${base}/status`)).body?.cancel();
    assert.ok(!log.recent().some((l) => /refused/.test(l.msg)), "no credential: not a warning");
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${base}/status`, {
        headers: { authorization: `Bearer guess-${i}-${token()}` },
      });
      await res.body?.cancel();
    }
    const refused = log.recent().filter((l) => /refused/.test(l.msg));
    assert.equal(refused.length, 1);
    assert.equal(refused[0].level, "warn");
    assert.equal(refused[0].fields?.from, "127.0.0.1");
    assert.ok(!JSON.stringify(log.recent()).includes(token()), "no token in the log");
    const m = await get(`${base}/metrics`, { headers: { authorization: `Bearer ${token()}` } });
    assert.match(m.body, /^outpost_http_unauthorized_requests_total 6$/m);
  });
});

Deno.test("methods other than GET/HEAD are refused, unknown paths listed", async () => {
  await withServer(async ({ base, token }) => {
    const auth = { authorization: `Bearer ${token()}` };
    assert.equal((await get(`${base}/status`, { method: "DELETE", headers: auth })).status, 405);
    assert.equal((await get(`${base}/status`, { method: "POST", headers: auth })).status, 405);
    const head = await fetch(`${base}/status`, { method: "HEAD", headers: auth });
    assert.equal(head.status, 200);
    await head.body?.cancel();
    const nf = await get(`${base}/nope`, { headers: auth });
    assert.equal(nf.status, 404);
    assert.ok(JSON.parse(nf.body).paths.includes("/metrics"));
  });
});

Deno.test("with http.tls the server speaks HTTPS only (Secure cookie); healthListen serves plain /healthz", async () => {
  const certs = await testCerts();
  const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(certs.ca)] });
  const healthPort = freePort();
  try {
    await withServer(async ({ http, token }) => {
      assert.equal(http.scheme, "https");
      const port = http.address.split(":").at(-1);
      const base = `https://127.0.0.1:${port}`;
      const anon = await fetch(`${base}/status`, { client });
      assert.equal(anon.status, 401);
      await anon.body?.cancel();
      const ok = await fetch(`${base}/status`, {
        client,
        headers: { authorization: `Bearer ${token()}` },
      });
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).gatewayId, "http-gw");
      const login = await fetch(`${base}/login`, {
        client,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token() }),
      });
      assert.equal(login.status, 204);
      assert.match(login.headers.get("set-cookie")!, /; Secure$/);
      // Plain HTTP on the TLS port gets nowhere.
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
      // An untrusting client refuses the test certificate.
      await assert.rejects(fetch(`${base}/healthz`));

      assert.equal(http.healthAddress, `127.0.0.1:${healthPort}`);
      const h = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
      assert.equal(h.status, 200);
      assert.equal((await h.json()).ok, true);
      const st = await fetch(`http://127.0.0.1:${healthPort}/status`, {
        headers: { authorization: `Bearer ${token()}` },
      });
      assert.equal(st.status, 404, "the health listener serves nothing else");
      await st.body?.cancel();
    }, {
      listen: "0.0.0.0:0",
      tls: readTlsFiles({ cert: certs.serverCert, key: certs.serverKey }),
      healthListen: `127.0.0.1:${healthPort}`,
    });
  } finally {
    client.close();
  }
});

Deno.test("readTlsFiles() names the file it cannot read", () => {
  assert.throws(
    () => readTlsFiles({ cert: "/nonexistent/cert.pem", key: "/nonexistent/key.pem" }),
    /Cannot read http\.tls\.cert "\/nonexistent\/cert\.pem"/,
  );
});

const schema = gatewaySchema(adapters);
const problems = (yaml: string) => {
  try {
    parseConfig(`gateway: { id: gw }\n${yaml}`, schema, { displayName: "site.yaml" });
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.message.split("\n");
  }
};

Deno.test("listen policy: loopback by default; another address needs tls or allowInsecure, reported at file:line:col", () => {
  assert.equal(parseConfig("gateway: { id: gw }", schema).http.listen, "127.0.0.1:8787");
  for (const ok of ["127.0.0.1:1", "127.1.2.3:8787", "localhost:8787", "[::1]:8787"]) {
    assert.deepEqual(problems(`http: { listen: "${ok}" }`), [], ok);
  }
  for (const bad of ["0.0.0.0:8787", "192.168.1.20:8787", "[::]:8787", "gw.plant.local:80"]) {
    const p = problems(`http:\n  enabled: true\n  listen: "${bad}"\n`);
    assert.equal(p.length, 1, bad);
    assert.match(
      p[0],
      /^site\.yaml:4:11 http\.listen: ".*" accepts connections from other machines/,
    );
    assert.match(p[0], /add tls: \{ cert: FILE, key: FILE \}.*allowInsecure: true/);
  }
  assert.deepEqual(problems("http: { listen: 0.0.0.0:8787, allowInsecure: true }"), []);
  assert.deepEqual(
    problems("http: { listen: 0.0.0.0:8787, tls: { cert: /c.pem, key: /k.pem } }"),
    [],
  );
  assert.match(
    problems("http: { listen: 0.0.0.0:8787, allowInsecure: yes-please }")[0],
    /http\.allowInsecure: expected true or false/,
  );
});

Deno.test("healthListen must be loopback; with tls and self-update it is required", () => {
  assert.match(
    problems("http: { healthListen: 0.0.0.0:8788 }")[0],
    /^site\.yaml:2:23 http\.healthListen: expected a loopback address/,
  );
  assert.match(
    problems("http: { healthListen: 127.0.0.1:8787 }")[0],
    /http\.healthListen: must differ from listen/,
  );
  const update = "update: { channel: https://releases.example.com/stable }\n";
  const tls = "  tls: { cert: /c.pem, key: /k.pem }\n";
  assert.match(
    problems(`${update}http:\n  listen: 0.0.0.0:8787\n${tls}`)[0],
    /^site\.yaml:5:3 http\.tls: the self-updater checks .* set http\.healthListen/,
  );
  assert.deepEqual(
    problems(`${update}http:\n  listen: 0.0.0.0:8787\n  healthListen: 127.0.0.1:8788\n${tls}`),
    [],
  );
});

Deno.test("POST /logout ends every session at once, across restarts; a rotation does too", async () => {
  await withServer(async ({ base, token, tokenFile, gw, log }) => {
    const login = async () => {
      const res = await fetch(`${base}/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token() }),
      });
      assert.equal(res.status, 204);
      return res.headers.get("set-cookie")!.split(";")[0];
    };
    const statusWith = async (cookie: string) =>
      (await get(`${base}/status`, { headers: { cookie } })).status;
    const a = await login();
    const b = await login();
    assert.equal(await statusWith(a), 200);
    assert.equal(await statusWith(b), 200);

    // Without a valid session (or token) a logout only clears the caller's cookie.
    const anonymous = await fetch(`${base}/logout`, { method: "POST" });
    assert.equal(anonymous.status, 204);
    assert.match(anonymous.headers.get("set-cookie")!, /Max-Age=0/);
    assert.equal(await statusWith(a), 200, "an anonymous logout ends nobody's session");
    const foreign = await fetch(`${base}/logout`, {
      method: "POST",
      headers: { cookie: a, origin: "http://evil.example" },
    });
    assert.equal(foreign.status, 403);
    await foreign.body?.cancel();
    assert.equal(await statusWith(a), 200, "a cross-origin logout ends nobody's session");

    // The browser of session a signs out; a copy of a, and the other browser's b, stop working.
    const out = await fetch(`${base}/logout`, { method: "POST", headers: { cookie: a } });
    assert.equal(out.status, 204);
    await out.body?.cancel();
    assert.equal(await statusWith(a), 401, "the copied cookie is refused after logout");
    assert.equal(await statusWith(b), 401, "every session ended, not just the caller's");
    const c = await login();
    assert.equal(await statusWith(c), 200, "signing in again works");

    // A new server on the same token file (a gateway restart) still refuses the old cookies.
    const { store } = TokenStore.open(tokenFile, log.child("http"));
    const again = await startHttpServer({
      listen: "127.0.0.1:0",
      gateway: gw,
      log: log.child("http"),
      tokens: store,
    });
    try {
      const other = `http://${again.address}`;
      assert.equal((await get(`${other}/status`, { headers: { cookie: a } })).status, 401);
      assert.equal((await get(`${other}/status`, { headers: { cookie: c } })).status, 200);
    } finally {
      await again.close();
    }

    rotateTokenFile(tokenFile);
    assert.equal(await statusWith(c), 401, "a rotated token ends the sessions made with the old");
  });
});

Deno.test("credentials in the uplink URL appear neither on /healthz nor in /status or outpost_uplink_info", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-http-redact-" });
  const log = createLogger({ level: "debug", sink: () => {} });
  const config = parseConfig(
    `
gateway: { id: redact-gw }
buffer: { path: ${dir}/buffer.db }
uplink: { type: mqtt, url: "mqtt://127.0.0.1:${freePort()}", reconnect: { min: 50ms, max: 100ms } }
`,
    gatewaySchema(adapters),
  );
  // Past check-config, which refuses it: as if a URL with a password reached the uplink anyway.
  const password = `pw-${crypto.randomUUID()}`;
  (config.uplink as { url: string }).url = `mqtt://plant:${password}@127.0.0.1:${freePort()}`;
  const gw = Gateway.start({ config, adapters, log, version: "9.9.9-test", uplinkGraceMs: 0 });
  const { store } = TokenStore.open(`${dir}/http-token`);
  const http = await startHttpServer({
    listen: "127.0.0.1:0",
    gateway: gw,
    log: log.child("http"),
    tokens: store,
    recentLogs: (n) => log.recent(n),
  });
  try {
    const base = `http://${http.address}`;
    const auth = { headers: { authorization: `Bearer ${readTokenFile(`${dir}/http-token`)}` } };
    await waitFor("the uplink's connection error", () => gw.status().uplink?.lastError);
    const health = await get(`${base}/healthz`);
    assert.match(health.body, /disconnected from mqtt:\/\/plant:\[redacted\]@127\.0\.0\.1/);
    const status = await get(`${base}/status`, auth);
    assert.match(status.body, /"target":"mqtt:\/\/plant:\[redacted\]@127/);
    const metrics = await get(`${base}/metrics`, auth);
    assert.match(
      metrics.body,
      /outpost_uplink_info\{type="mqtt",target="mqtt:\/\/plant:\[redacted\]@/,
    );
    const logs = await get(`${base}/logs?n=1000`, auth);
    assert.match(logs.body, /Cannot connect to broker/);
    for (const [what, body] of Object.entries({ health, status, metrics, logs })) {
      assert.ok(!body.body.includes(password), `the password is on ${what}`);
    }
  } finally {
    await http.close();
    await gw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createGatewayApp() answers without a socket as the server does", async () => {
  await withServer(async ({ gw, log, tokenFile, token }) => {
    const app = createGatewayApp({
      gateway: gw,
      log: log.child("http"),
      tokens: TokenStore.open(tokenFile).store,
    });
    try {
      const health = await request(app.fetch, "/healthz");
      assert.equal(health.status, 200);
      assert.equal((await health.json()).ok, true);
      const anon = await request(app.fetch, "/status");
      assert.deepEqual([anon.status, anon.headers.get("www-authenticate")], [
        401,
        'Bearer realm="outpost"',
      ]);
      const status = await request(app.fetch, "/status", {
        headers: { authorization: `Bearer ${token()}` },
      });
      assert.equal((await status.json()).gatewayId, "http-gw");
      assert.equal((await request(app.health, "/status")).status, 404);
    } finally {
      app.stop();
    }
  });
});
