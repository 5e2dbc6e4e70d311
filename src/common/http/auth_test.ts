import assert from "node:assert/strict";
import { createLogger } from "../../log.ts";
import { PageAccess } from "./auth.ts";
import { json } from "./response.ts";
import { Router } from "./router.ts";
import { type Handler, request } from "./serve.ts";
import { MemoryToken } from "./session.ts";

const TOKEN = "k".repeat(43);

/** A server with one protected path, as both pages build theirs. */
function app(secure = false) {
  const log = createLogger({ level: "debug", sink: () => {} });
  const access = new PageAccess({
    tokens: new MemoryToken(TOKEN),
    cookie: "sid",
    secure,
    log,
    quiet: "quiet for 1 min",
  });
  const open = new Router()
    .post("/login", (req, { info }) => access.login(req, info))
    .post("/logout", (req) => access.logout(req));
  const handler: Handler = async (req, info) => {
    const page = open.route(req, info);
    if (page) return await page;
    const auth = access.authorize(req);
    if (auth !== "ok") {
      access.refuse(req, info, auth === "wrong" ? "a wrong token" : undefined);
      return json({ error: "token required" }, 401);
    }
    return json({ ok: true });
  };
  return { handler, access, log };
}

async function login(handler: Handler, body: string, type = "application/json") {
  return await request(handler, "/login", {
    method: "POST",
    headers: { "content-type": type },
    body,
  });
}

Deno.test("PageAccess: bearer token or session cookie; the cookie is HttpOnly, SameSite=Strict, Secure on TLS", async () => {
  const { handler } = app();
  assert.equal((await request(handler, "/data")).status, 401);
  assert.equal(
    (await request(handler, "/data", { headers: { authorization: `bearer  ${TOKEN} ` } })).status,
    200,
  );
  assert.equal(
    (await request(handler, "/data", { headers: { authorization: `Basic ${TOKEN}` } })).status,
    401,
  );
  const ok = await login(handler, `token=${TOKEN}`, "application/x-www-form-urlencoded");
  assert.equal(ok.status, 204);
  const cookie = ok.headers.get("set-cookie") ?? "";
  assert.match(cookie, /^sid=\d+\.[\w-]{43}; Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict$/);
  assert.equal(ok.headers.get("cache-control"), "no-store");
  const session = cookie.split(";")[0];
  assert.equal(
    (await request(handler, "/data", { headers: { cookie: `a=b; ${session}` } })).status,
    200,
  );
  const tls = await login(app(true).handler, JSON.stringify({ token: TOKEN }));
  assert.match(tls.headers.get("set-cookie") ?? "", /; Secure$/);
});

Deno.test("PageAccess: login refuses a wrong token, a bad body, a large one and another origin", async () => {
  const { handler, access, log } = app();
  const cases: [Response, number, string][] = [
    [await login(handler, JSON.stringify({ token: "wrong" })), 401, "token not accepted"],
    [await login(handler, "{", "application/json"), 400, 'expected {"token": "…"}'],
    [await login(handler, "x".repeat(5000), "text/plain"), 413, "request too large"],
    [
      await request(handler, "/login", {
        method: "POST",
        headers: { origin: "https://evil.example" },
        body: `token=${TOKEN}`,
      }),
      403,
      "cross-origin login refused",
    ],
  ];
  for (const [res, status, error] of cases) {
    assert.deepEqual([res.status, (await res.json()).error], [status, error]);
  }
  await login(handler, JSON.stringify({ token: "wrong again" }));
  assert.equal(access.refused, 2, "each wrong login counts");
  const warned = log.recent().filter((l) => /refused/.test(l.msg));
  assert.equal(warned.length, 1, "warned once a minute");
  assert.match(warned[0].msg, /^refused a login with a wrong token; quiet for 1 min$/);
  assert.equal(warned[0].fields?.from, "127.0.0.1");
});

Deno.test("PageAccess: a signed-in logout ends every session; an anonymous or cross-origin one ends none", async () => {
  const { handler } = app();
  const session = async () =>
    ((await login(handler, JSON.stringify({ token: TOKEN }))).headers.get("set-cookie") ?? "")
      .split(";")[0];
  const status = async (cookie: string) =>
    (await request(handler, "/data", { headers: { cookie } })).status;
  const a = await session();
  const b = await session();
  const anon = await request(handler, "/logout", { method: "POST" });
  assert.deepEqual([anon.status, anon.headers.get("set-cookie")], [
    204,
    "sid=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
  ]);
  const cross = await request(handler, "/logout", {
    method: "POST",
    headers: { cookie: a, origin: "http://elsewhere" },
  });
  assert.equal(cross.status, 403);
  assert.deepEqual([await status(a), await status(b)], [200, 200]);
  assert.equal(
    (await request(handler, "/logout", { method: "POST", headers: { cookie: a } })).status,
    204,
  );
  assert.deepEqual([await status(a), await status(b)], [401, 401]);
  assert.equal(await status(await session()), 200, "a new login works");
});
