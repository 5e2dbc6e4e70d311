import assert from "node:assert/strict";
import { json, methodNotAllowed } from "./response.ts";
import { Router } from "./router.ts";
import { type Handler, request } from "./serve.ts";

const router = new Router()
  .get("/a", () => json({ a: 1 }))
  .post("/a", () => json({ posted: true }, 201))
  .get(/\/items\/(\d+)\.csv/, (_req, { params }) => json({ id: params[0] }));

const handler: Handler = async (req, info) =>
  await router.route(req, info) ??
    (router.has(new URL(req.url).pathname)
      ? methodNotAllowed(req.method, "GET, HEAD, POST")
      : json({ error: "nope" }, 404));

Deno.test("Router routes by method and path; GET answers HEAD; patterns give their groups", async () => {
  assert.deepEqual(await (await request(handler, "/a")).json(), { a: 1 });
  const post = await request(handler, "/a", { method: "POST" });
  assert.deepEqual([post.status, await post.json()], [201, { posted: true }]);
  assert.equal((await request(handler, "/a", { method: "HEAD" })).status, 200);
  assert.deepEqual(await (await request(handler, "/items/42.csv")).json(), { id: "42" });
  assert.equal((await request(handler, "/items/42.csvx")).status, 404, "the whole path matches");
  assert.equal((await request(handler, "/x/items/42.csv")).status, 404);
  const put = await request(handler, "/a", { method: "PUT" });
  assert.deepEqual([put.status, put.headers.get("allow")], [405, "GET, HEAD, POST"]);
  assert.deepEqual((await put.json()).error, "method PUT not allowed");
  assert.deepEqual(router.paths, ["/a"]);
});
