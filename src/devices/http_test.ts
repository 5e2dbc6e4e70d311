import assert from "node:assert/strict";
import { createLogger } from "../log.ts";
import { deviceRoutes, parseRange } from "./http.ts";
import type { DeviceReport } from "./rollout.ts";

const SHA = "ab".repeat(32);

async function setup() {
  const dir = await Deno.makeTempDir();
  const data = new Uint8Array(1000).map((_, i) => i % 251);
  await Deno.writeFile(`${dir}/fw.bin`, data);
  const served: [string, number, number][] = [];
  const reports: [string, DeviceReport][] = [];
  const routes = deviceRoutes({
    deviceOf: (t) => ({ "token-one-0123456789": "d1", "token-two-0123456789": "d2" })[t],
    artifact: (id, name, version) =>
      id === "d1" && name === "fw" && version === "1.1.0"
        ? { path: `${dir}/fw.bin`, size: 1000, sha256: SHA }
        : undefined,
    serving: (id, _n, _v, from, bytes) => served.push([id, from, bytes]),
    report: (id, r) => reports.push([id, r]),
    offer: (id) => id === "d1" ? { name: "fw", version: "1.1.0" } : undefined,
    resume: (cls) => cls === "c",
    log: createLogger({ sink: () => {} }),
  });
  const call = (path: string, init: RequestInit = {}, page = false) =>
    routes(new Request(`http://gw${path}`, init), () => page);
  return { dir, data, served, reports, call };
}

const auth = (t = "token-one-0123456789") => ({ authorization: `Bearer ${t}` });

Deno.test("parseRange() reads the forms esp_https_ota and curl send", () => {
  assert.deepEqual(parseRange("bytes=100-", 1000), { start: 100, end: 999 });
  assert.deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=900-5000", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-10", 1000), { start: 990, end: 999 });
  assert.equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=5-1", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=0-1,5-6", 1000), undefined);
  assert.equal(parseRange("items=0-1", 1000), undefined);
  assert.equal(parseRange(null, 1000), undefined);
});

Deno.test("artifact downloads: whole, ranged (206), If-Range mismatch (200), 416, HEAD", async () => {
  const t = await setup();
  const url = "/devices/artifacts/fw/1.1.0";
  let r = await t.call(url, { headers: auth() });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("accept-ranges"), "bytes");
  assert.equal(r.headers.get("etag"), `"${SHA}"`);
  assert.deepEqual(new Uint8Array(await r.arrayBuffer()), t.data);
  r = await t.call(url, { headers: { ...auth(), range: "bytes=600-", "if-range": `"${SHA}"` } });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get("content-range"), "bytes 600-999/1000");
  assert.equal(r.headers.get("content-length"), "400");
  assert.deepEqual(new Uint8Array(await r.arrayBuffer()), t.data.subarray(600));
  // The image changed since the partial download: the whole new one.
  r = await t.call(url, { headers: { ...auth(), range: "bytes=600-", "if-range": '"other"' } });
  assert.equal(r.status, 200);
  assert.equal((await r.arrayBuffer()).byteLength, 1000);
  r = await t.call(url, { headers: { ...auth(), range: "bytes=1000-" } });
  assert.equal(r.status, 416);
  assert.equal(r.headers.get("content-range"), "bytes */1000");
  r = await t.call(url, { method: "HEAD", headers: auth() });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-length"), "1000");
  assert.deepEqual(t.served, [["d1", 0, 1000], ["d1", 600, 400], ["d1", 0, 1000]]);
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("artifact downloads need the device's own token and an artifact of its own", async () => {
  const t = await setup();
  const url = "/devices/artifacts/fw/1.1.0";
  assert.equal((await t.call(url)).status, 401);
  assert.equal((await t.call(url, { headers: auth("wrong-token-000000000") })).status, 401);
  // The page's token is no device token.
  assert.equal((await t.call(url, {}, true)).status, 401);
  assert.equal((await t.call(url, { headers: auth("token-two-0123456789") })).status, 404);
  assert.equal((await t.call("/devices/artifacts/fw/9.9.9", { headers: auth() })).status, 404);
  assert.equal((await t.call(url, { method: "PUT", headers: auth() })).status, 405);
  assert.deepEqual(t.served, []);
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("state reports over HTTP: the device's token names it; bad bodies are refused", async () => {
  const t = await setup();
  const post = (body: unknown, headers: Record<string, string> = auth()) =>
    t.call("/devices/state", { method: "POST", headers, body: JSON.stringify(body) });
  let r = await post({ version: "1.1.0", state: "running" });
  assert.equal(r.status, 200);
  assert.deepEqual(t.reports, [["d1", { version: "1.1.0", state: "running", error: undefined }]]);
  r = await post({ state: "running" });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /version: expected/);
  r = await post({ version: "1.1.0", state: "exploded" });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /state: expected one of/);
  assert.equal((await post({ version: "1.1.0" }, {})).status, 401);
  r = await t.call("/devices/state", {
    method: "POST",
    headers: auth(),
    body: JSON.stringify({ version: "1", pad: "x".repeat(5000) }),
  });
  assert.equal(r.status, 413);
  assert.equal(t.reports.length, 1);
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("resume needs the page's token", async () => {
  const t = await setup();
  assert.equal((await t.call("/devices/resume?class=c", { method: "POST" })).status, 401);
  assert.equal((await t.call("/devices/resume?class=c", { method: "POST" }, true)).status, 200);
  assert.equal((await t.call("/devices/resume?class=x", { method: "POST" }, true)).status, 409);
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("a device that polls gets its standing offer, or 204", async () => {
  const t = await setup();
  let r = await t.call("/devices/offer", { headers: auth() });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { name: "fw", version: "1.1.0" });
  r = await t.call("/devices/offer", { headers: auth("token-two-0123456789") });
  assert.equal(r.status, 204);
  assert.equal((await t.call("/devices/offer")).status, 401);
  await Deno.remove(t.dir, { recursive: true });
});
