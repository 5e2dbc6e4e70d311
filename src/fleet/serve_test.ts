import assert from "node:assert/strict";
import { silentLogger } from "../log.ts";
import type { Fleet } from "./client.ts";
import { createFleetApp, startFleetServer } from "./serve.ts";
import { MemoryToken, request } from "../common/http/mod.ts";

const TOKEN = "t".repeat(43);

/** The part of a Fleet the server reads when nothing is sent: a broker with no gateways. */
function idleFleet(): Fleet {
  return {
    url: "mqtt://127.0.0.1:1",
    prefix: "outpost",
    keyid: null,
    connected: false,
    lastError: "connection refused",
    gateways: () => [],
    gateway: () => undefined,
    onChange: () => () => {},
    onConnection: () => () => {},
  } as unknown as Fleet;
}

async function withServer(fn: (base: string) => Promise<void>) {
  const server = await startFleetServer(idleFleet(), {
    listen: "127.0.0.1:0",
    tokens: new MemoryToken(TOKEN),
    log: silentLogger(),
  });
  try {
    await fn(server.url.replace(/\/$/, ""));
  } finally {
    await server.close();
  }
}

const bearer = { authorization: `Bearer ${TOKEN}` };

async function call(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; body: string }> {
  const r = await fetch(url, init);
  return { status: r.status, headers: r.headers, body: await r.text() };
}

Deno.test("fleet server: the page and assets are open, with no-store, nosniff and a strict CSP", async () => {
  await withServer(async (base) => {
    for (
      const [path, type] of [["/", "text/html"], ["/fleet.css", "text/css"], [
        "/fleet.js",
        "text/javascript",
      ]]
    ) {
      const r = await call(base + path);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get("content-type") ?? "", new RegExp(type));
      assert.equal(r.headers.get("cache-control"), "no-store");
      assert.equal(r.headers.get("x-content-type-options"), "nosniff");
      assert.match(r.headers.get("content-security-policy") ?? "", /default-src 'none'/);
      assert.equal(r.headers.get("x-frame-options"), "DENY");
    }
    const js = await call(`${base}/fleet.js`);
    assert.equal(
      js.body,
      await Deno.readTextFile(new URL("./page_script.js", import.meta.url)),
      "/fleet.js is page_script.js as it is in the tree",
    );
    assert.equal((await call(`${base}/favicon.ico`)).status, 204);
  });
});

Deno.test("fleet server: the API needs the token; login sets a session cookie, logout clears it", async () => {
  await withServer(async (base) => {
    const anon = await call(`${base}/api/fleet`);
    assert.equal(anon.status, 401);
    assert.equal(anon.headers.get("www-authenticate"), 'Bearer realm="outpost-fleet"');
    assert.equal(
      (await call(`${base}/api/fleet`, { headers: { authorization: "Bearer nope" } })).status,
      401,
    );

    const snap = await call(`${base}/api/fleet`, { headers: bearer });
    assert.equal(snap.status, 200);
    const body = JSON.parse(snap.body);
    assert.deepEqual(
      [
        body.broker,
        body.prefix,
        body.keyid,
        body.connected,
        body.lastError,
        body.gateways,
        body.ops,
        body.exports,
      ],
      ["mqtt://127.0.0.1:1", "outpost", null, false, "connection refused", [], [], []],
    );

    const wrong = await call(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: "wrong" }),
    });
    assert.equal(wrong.status, 401);
    const ok = await call(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${TOKEN}`,
    });
    assert.equal(ok.status, 204);
    const cookie = ok.headers.get("set-cookie") ?? "";
    assert.match(
      cookie,
      /^outpost_fleet_session=\d+\.[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/,
    );
    const session = cookie.split(";")[0];
    assert.equal((await call(`${base}/api/fleet`, { headers: { cookie: session } })).status, 200);

    const out = await call(`${base}/logout`, { method: "POST" });
    assert.equal(out.status, 204);
    assert.match(
      out.headers.get("set-cookie") ?? "",
      /^outpost_fleet_session=; Path=\/; Max-Age=0;/,
    );
  });
});

Deno.test("fleet server: a signed-in logout ends every session, a copied cookie too; an anonymous one only clears", async () => {
  await withServer(async (base) => {
    const login = async () => {
      const r = await call(`${base}/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: TOKEN }),
      });
      assert.equal(r.status, 204);
      return (r.headers.get("set-cookie") ?? "").split(";")[0];
    };
    const status = async (cookie: string) =>
      (await call(`${base}/api/fleet`, { headers: { cookie } })).status;
    const browser = await login();
    const copy = await login();
    assert.equal(await status(copy), 200);

    const anon = await call(`${base}/logout`, { method: "POST" });
    assert.equal(anon.status, 204);
    assert.equal(await status(browser), 200, "a logout without credentials signs nobody out");

    const cross = await call(`${base}/logout`, {
      method: "POST",
      headers: { cookie: browser, origin: "https://evil.example" },
    });
    assert.equal(cross.status, 403);
    assert.equal(await status(browser), 200, "a cross-origin logout is refused");

    const out = await call(`${base}/logout`, { method: "POST", headers: { cookie: browser } });
    assert.equal(out.status, 204);
    assert.equal(await status(browser), 401);
    assert.equal(await status(copy), 401, "the copied cookie ends with the browser's");
    assert.equal((await call(`${base}/api/fleet`, { headers: bearer })).status, 200);
  });
});

Deno.test("fleet server: wrong methods, cross-origin posts, bad bodies and unknown paths are refused with the reason", async () => {
  await withServer(async (base) => {
    const put = await call(`${base}/api/fleet`, { method: "PUT", headers: bearer });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "GET, HEAD, POST");
    const cross = await call(`${base}/api/commands`, {
      method: "POST",
      headers: { ...bearer, origin: "https://evil.example" },
      body: "{}",
    });
    assert.deepEqual([cross.status, JSON.parse(cross.body).error], [
      403,
      "cross-origin request refused",
    ]);
    const post = (path: string, body: string) =>
      call(base + path, { method: "POST", headers: bearer, body });
    const cases: [string, string, number, string][] = [
      ["/api/commands", "not json", 400, "expected a JSON body"],
      ["/api/commands", "[1]", 400, "expected a JSON object"],
      [
        "/api/commands",
        JSON.stringify({ cmd: "config-set", targets: "all" }),
        400,
        "cmd: expected one of ping, status, logs, config-get, query, restart, update-check, update-apply, devices-resume",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "devices-resume", targets: ["gw-1"], args: {} }),
        400,
        "args.class: expected a device class",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "devices-resume", targets: ["gw-1"], args: { class: "a/b" } }),
        400,
        "args.class: expected a device class",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "ping", targets: ["ghost"] }),
        409,
        "ping not sent: ghost has published no status",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "status", targets: "all" }),
        400,
        "targets: status goes to at most 20 gateways from the page (their whole results are kept); use outpost fleet send status --all",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "restart", targets: "all" }),
        409,
        "restart not sent: no gateway is online",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "logs", targets: ["g1"], args: { lines: 0 } }),
        400,
        "args.lines: expected an integer 1–500, got 0",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "query", targets: ["g1"], args: { metric: "m" } }),
        400,
        "args.device: required",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "query", targets: ["g1"], args: { device: "d", limit: 20_000 } }),
        400,
        "args.limit: expected an integer 1–10000, got 20000",
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "ping", targets: ["a/b"] }),
        400,
        'targets: expected "all" or a list of gateway ids',
      ],
      [
        "/api/commands",
        JSON.stringify({ cmd: "ping", targets: "x".repeat(70_000) }),
        413,
        "request too large",
      ],
      ["/api/exports", JSON.stringify({ gateway: "g1" }), 400, "device: required"],
      ["/api/exports", JSON.stringify({ gateway: "g1", device: "d" }), 400, "from: required"],
      [
        "/api/exports",
        JSON.stringify({ gateway: "g1", device: "d", from: "soon" }),
        400,
        "from: expected a time, got soon",
      ],
      [
        "/api/exports",
        JSON.stringify({ gateway: "g1", device: "d", from: 2000, to: 1000 }),
        400,
        "to must be after from",
      ],
      ["/api/other", "{}", 405, "method POST not allowed on /api/other"],
    ];
    for (const [path, body, status, error] of cases) {
      const r = await post(path, body);
      assert.deepEqual(
        [r.status, JSON.parse(r.body).error],
        [status, error],
        `${path} ${body.slice(0, 60)}`,
      );
    }
    const missing = await call(`${base}/api/exports/${crypto.randomUUID()}.csv`, {
      headers: bearer,
    });
    assert.deepEqual([missing.status, JSON.parse(missing.body).error], [404, "no such export"]);
    assert.equal((await call(`${base}/api/nothing`, { headers: bearer })).status, 404);
    assert.equal((await call(`${base}/elsewhere`)).status, 404);
  });
});

Deno.test("fleet server: the event stream starts with the snapshot", async () => {
  await withServer(async (base) => {
    const r = await fetch(`${base}/api/events`, { headers: bearer });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/event-stream/);
    const reader = r.body!.getReader();
    const { value } = await reader.read();
    const text = new TextDecoder().decode(value);
    assert.match(
      text,
      /^retry: 1000\nevent: fleet\ndata: \{"now":\d+,"broker":"mqtt:\/\/127\.0\.0\.1:1"/,
    );
    await reader.cancel();
  });
});

Deno.test("fleet server: a non-loopback address without TLS is refused unless allowed", async () => {
  await assert.rejects(
    startFleetServer(idleFleet(), {
      listen: "0.0.0.0:0",
      tokens: new MemoryToken(TOKEN),
      log: silentLogger(),
    }),
    /accepts connections from other machines/,
  );
});

Deno.test("fleet app: answers without a socket, as served", async () => {
  const app = await createFleetApp(idleFleet(), {
    tokens: new MemoryToken(TOKEN),
    log: silentLogger(),
  });
  try {
    const page = await request(app.fetch, "/");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    await page.body?.cancel();
    assert.equal((await request(app.fetch, "/api/fleet")).status, 401);
    const snap = await request(app.fetch, "/api/fleet", { headers: bearer });
    assert.equal((await snap.json()).broker, "mqtt://127.0.0.1:1");
  } finally {
    await app.close();
  }
});
