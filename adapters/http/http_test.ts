import assert from "node:assert/strict";
import type { AdapterContext, DeviceState, EmitResult } from "../../src/adapter.ts";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { gatewaySchema } from "../../src/config/gateway.ts";
import { parseConfig } from "../../src/config/load.ts";
import { silentLogger } from "../../src/log.ts";
import { checkReading, type Reading } from "../../src/reading.ts";
import { freePort, waitFor, waitForPort } from "../../test/helpers/ports.ts";
import { httpAdapter, type HttpIngestConfig, parseBody, RateLimiter } from "./mod.ts";
import { mulberry32 as prng } from "../../src/rng.ts";
import { testCerts } from "../../test/helpers/certs.ts";

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_B = "token-b-0123456789abcdef";

interface Harness {
  url: string;
  collected: Reading[];
  counts: Map<string, number>;
  /** Replaces what emit does, e.g. to hold it or make it fail. */
  onEmit?: (readings: Reading[]) => Promise<void>;
  emitCalls: number;
  stop(): Promise<void>;
}

function checkConfig(raw: Record<string, unknown>): HttpIngestConfig {
  const ctx = new Ctx();
  const config = httpAdapter.schema.check(raw, ctx, []);
  assert.notEqual(config, INVALID, JSON.stringify(ctx.issues));
  return config as HttpIngestConfig;
}

async function startIngest(raw: Record<string, unknown> = {}): Promise<Harness> {
  const port = freePort();
  const scheme = raw.tls ? "https" : "http";
  const config = checkConfig({
    listen: `127.0.0.1:${port}`,
    tokens: [{ token: TOKEN_A, devices: ["dev-a", "dev-c"], name: "a" }, { token: TOKEN_B }],
    ...raw,
  });
  const abort = new AbortController();
  const h: Harness = {
    url: `${scheme}://127.0.0.1:${port}/ingest`,
    collected: [],
    counts: new Map(),
    emitCalls: 0,
    async stop() {
      abort.abort();
      await running;
    },
  };
  const ctx: AdapterContext<HttpIngestConfig> = {
    name: "ingest",
    config,
    async emit(rs): Promise<EmitResult> {
      h.emitCalls++;
      if (h.onEmit) await h.onEmit(rs);
      h.collected.push(...rs);
      return { accepted: rs.length, rejected: 0, seqs: [] };
    },
    log: silentLogger(),
    signal: abort.signal,
    setDeviceState(_d: string, _s: DeviceState) {},
    count(c, by = 1) {
      h.counts.set(c, (h.counts.get(c) ?? 0) + by);
    },
    setWriter() {},
  };
  const running = httpAdapter.start(ctx);
  await waitForPort(port);
  return h;
}

function post(h: Harness, body: BodyInit | null, headers: Record<string, string> = {}) {
  return fetch(h.url, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN_A}`, "content-type": "application/json", ...headers },
    body,
  });
}

async function status(res: Response): Promise<[number, Record<string, unknown>]> {
  return [res.status, await res.json()];
}

Deno.test("http config refuses unknown keys, short tokens and duplicate tokens", () => {
  const ctx = new Ctx();
  const r = httpAdapter.schema.check(
    {
      tokens: [{ token: "short" }, { token: TOKEN_A }, { token: TOKEN_A }],
      maxbody: "1MB",
    },
    ctx,
    [],
  );
  assert.equal(r, INVALID);
  const text = ctx.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
  assert.match(text, /maxbody: unknown key \(did you mean "maxBody"\?\)/);
  assert.match(text, /tokens\.0\.token: expected a string of at least 16 characters/);
  const dup = new Ctx();
  httpAdapter.schema.check({ tokens: [{ token: TOKEN_A }, { token: TOKEN_A }] }, dup, []);
  assert.match(dup.issues[0].message, /same token as tokens\[0\]/);
});

Deno.test("http accepts one reading, a list and {readings}, after emit resolved", async () => {
  const h = await startIngest();
  try {
    let [code, body] = await status(
      await post(h, JSON.stringify({ device: "dev-a", metric: "t", value: 21.5, unit: "°C" })),
    );
    assert.equal(code, 200);
    assert.deepEqual(body, { accepted: 1, rejected: 0 });
    [code, body] = await status(
      await post(
        h,
        JSON.stringify([
          { device: "dev-a", metric: "on", value: true, ts: 1_700_000_000_000 },
          { device: "dev-c", metric: "mode", value: "auto", ts: "2024-01-02T03:04:05Z" },
        ]),
      ),
    );
    assert.equal(code, 200);
    assert.equal(body.accepted, 2);
    [code, body] = await status(
      await post(h, JSON.stringify({ readings: [{ device: "x-9", metric: "p", value: 1 }] }), {
        authorization: `Bearer ${TOKEN_B}`,
      }),
    );
    assert.equal(code, 200);
    assert.deepEqual(h.collected.map((r) => [r.device, r.metric, r.value, r.unit]), [
      ["dev-a", "t", 21.5, "°C"],
      ["dev-a", "on", true, undefined],
      ["dev-c", "mode", "auto", undefined],
      ["x-9", "p", 1, undefined],
    ]);
    assert.equal(h.collected[1].ts, 1_700_000_000_000);
    assert.equal(h.collected[2].ts, Date.parse("2024-01-02T03:04:05Z"));

    // The answer waits for emit: hold it and check no response came before releasing it.
    let release!: () => void;
    h.onEmit = () => new Promise<void>((r) => release = r);
    let answered = false;
    const pending = post(h, JSON.stringify({ device: "dev-a", metric: "t", value: 1 })).then(
      (r) => {
        answered = true;
        return r;
      },
    );
    await waitFor("emit to be called", () => h.emitCalls === 4);
    assert.equal(answered, false);
    release();
    const [c2, b2] = await status(await pending);
    assert.equal(c2, 200);
    assert.deepEqual(b2, { accepted: 1, rejected: 0 });
  } finally {
    await h.stop();
  }
});

Deno.test("http answers 401 without or with a wrong token", async () => {
  const h = await startIngest();
  try {
    const body = JSON.stringify({ device: "dev-a", metric: "t", value: 1 });
    for (
      const auth of [
        undefined,
        "Bearer wrong-token-0123456789",
        `Basic ${TOKEN_A}`,
        "Bearer ",
        `Bearer ${TOKEN_A}x`,
      ]
    ) {
      const res = await fetch(h.url, {
        method: "POST",
        headers: auth === undefined ? {} : { authorization: auth },
        body,
      });
      const [code, json] = await status(res);
      assert.equal(code, 401, `auth ${auth}`);
      assert.match(String(json.error), /Bearer/);
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="outpost"');
    }
    assert.equal(h.collected.length, 0);
  } finally {
    await h.stop();
  }
});

Deno.test("http answers 403 when a token posts for a device it does not own", async () => {
  const h = await startIngest();
  try {
    const [code, json] = await status(
      await post(
        h,
        JSON.stringify([
          { device: "dev-a", metric: "t", value: 1 },
          { device: "dev-b", metric: "t", value: 2 },
        ]),
      ),
    );
    assert.equal(code, 403);
    assert.match(String(json.error), /token "a" may not post for device "dev-b" \(item 1\)/);
    assert.equal(h.collected.length, 0, "nothing of a refused batch is stored");
  } finally {
    await h.stop();
  }
});

Deno.test("http answers 400 naming the item and field", async () => {
  const h = await startIngest();
  try {
    const cases: [string, RegExp][] = [
      ["{not json", /^invalid JSON/],
      ["42", /expected a reading, a list of readings/],
      ["[]", /at least one reading/],
      [
        JSON.stringify([{ device: "dev-a", metric: "t", value: 1 }, {
          device: "dev-a",
          metric: "t",
          value: null,
        }]),
        /^\[1\]\.value: expected a finite number/,
      ],
      [
        JSON.stringify({ readings: [{ device: "dev-a", metric: "bad metric", value: 1 }] }),
        /^readings\[0\]\.metric: expected/,
      ],
      [
        JSON.stringify({ device: "dev-a", metric: "t", value: 1, ts: 5 }),
        /^reading\.ts: 5 is before 2000/,
      ],
      [
        JSON.stringify({ device: "dev-a", metric: "t", value: 1, vlaue: 2 }),
        /^reading\.vlaue: unknown field/,
      ],
      [
        JSON.stringify({ device: "dev-a", metric: "t", value: 1, unit: 7 }),
        /^reading\.unit: expected a string/,
      ],
      [JSON.stringify({ readings: {} }), /^readings: expected a list/],
      [
        '{"__proto__":{"device":"dev-a"},"metric":"t","value":1}',
        /^reading\.__proto__: unknown field/,
      ],
    ];
    for (const [body, re] of cases) {
      const [code, json] = await status(await post(h, body));
      assert.equal(code, 400, body);
      assert.match(String(json.error), re, body);
    }
    const [code, json] = await status(await post(h, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])));
    assert.equal(code, 400);
    assert.match(String(json.error), /not UTF-8/);
    assert.equal(h.collected.length, 0);
  } finally {
    await h.stop();
  }
});

Deno.test("http answers 413 by Content-Length, while streaming, and past maxReadings", async () => {
  const h = await startIngest({ maxBody: 1024, maxReadings: 5 });
  try {
    const big = JSON.stringify(
      Array.from({ length: 40 }, (_, i) => ({ device: "dev-a", metric: "t", value: i })),
    );
    let [code, json] = await status(await post(h, big));
    assert.equal(code, 413);
    assert.match(String(json.error), /exceeds maxBody of 1024 bytes/);

    // No Content-Length: a chunked body that has not ended must be refused once past the limit.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(h.url).port) });
    try {
      const chunk = "x".repeat(1000);
      const head = `POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN_A}\r\n` +
        "Transfer-Encoding: chunked\r\n\r\n";
      const chunked = `${(1000).toString(16)}\r\n${chunk}\r\n`;
      await conn.write(new TextEncoder().encode(head + chunked + chunked));
      let answer = "";
      const buf = new Uint8Array(4096);
      while (!answer.includes("exceeds maxBody")) {
        const n = await conn.read(buf);
        if (n === null) break;
        answer += new TextDecoder().decode(buf.subarray(0, n));
      }
      assert.match(answer, /^HTTP\/1\.1 413/);
      assert.match(answer, /exceeds maxBody of 1024 bytes/);
    } finally {
      conn.close();
    }

    [code, json] = await status(
      await post(
        h,
        JSON.stringify(
          Array.from({ length: 6 }, () => ({ device: "dev-a", metric: "t", value: 1 })),
        ),
      ),
    );
    assert.equal(code, 413);
    assert.match(String(json.error), /6 readings in one request; at most 5/);
    assert.equal(h.collected.length, 0);
  } finally {
    await h.stop();
  }
});

Deno.test("http answers 429 with Retry-After when a device exceeds its rate", async () => {
  const h = await startIngest({ rate: { perSecond: 0.5, burst: 3 } });
  try {
    const one = (device: string) => JSON.stringify({ device, metric: "t", value: 1 });
    for (let i = 0; i < 3; i++) assert.equal((await post(h, one("dev-a"))).status, 200);
    const res = await post(h, one("dev-a"));
    const [code, json] = await status(res);
    assert.equal(code, 429);
    assert.match(String(json.error), /device "dev-a" exceeds its rate/);
    assert.equal(res.headers.get("retry-after"), "2");
    // Another device has a bucket of its own.
    assert.equal((await post(h, one("dev-c"))).status, 200);
    // More than the burst at once can never pass: say so instead of asking to retry.
    const [c2, j2] = await status(
      await post(
        h,
        JSON.stringify(
          Array.from({ length: 4 }, () => ({ device: "dev-c", metric: "t", value: 1 })),
        ),
      ),
    );
    assert.equal(c2, 413);
    assert.match(String(j2.error), /at most 3 \(rate.burst\)/);
    assert.equal(h.collected.length, 4);
  } finally {
    await h.stop();
  }
});

Deno.test("http answers 404, 405 and 503 when emit fails", async () => {
  const h = await startIngest();
  try {
    let res = await fetch(h.url.replace("/ingest", "/other"), { method: "POST", body: "{}" });
    assert.equal(res.status, 404);
    await res.body?.cancel();
    res = await fetch(h.url);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "POST");
    await res.body?.cancel();
    h.onEmit = () => Promise.reject(new Error("buffer closed"));
    res = await post(h, JSON.stringify({ device: "dev-a", metric: "t", value: 1 }));
    const [code, json] = await status(res);
    assert.equal(code, 503);
    assert.match(String(json.error), /buffer closed/);
    assert.equal(res.headers.get("retry-after"), "1");
  } finally {
    await h.stop();
  }
});

Deno.test("http accepts a burst of 10,000 readings in order", async () => {
  const h = await startIngest({ rate: { perSecond: 1_000_000, burst: 100_000 }, maxBody: "4MB" });
  try {
    const base = Date.now() - 60_000;
    const make = (i: number) => ({ device: `dev-${i % 7}`, metric: "n", value: i, ts: base + i });
    // One request of 10,000…
    const [code, json] = await status(
      await post(h, JSON.stringify(Array.from({ length: 10_000 }, (_, i) => make(i))), {
        authorization: `Bearer ${TOKEN_B}`,
      }),
    );
    assert.equal(code, 200);
    assert.equal(json.accepted, 10_000);
    // …and 100 requests of 100, one after the other.
    for (let r = 0; r < 100; r++) {
      const batch = Array.from({ length: 100 }, (_, i) => make(10_000 + r * 100 + i));
      const res = await post(h, JSON.stringify({ readings: batch }), {
        authorization: `Bearer ${TOKEN_B}`,
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    assert.equal(h.collected.length, 20_000);
    h.collected.forEach((r, i) => {
      assert.equal(r.value, i);
      assert.equal(r.ts, base + i);
    });
  } finally {
    await h.stop();
  }
});

Deno.test("http stops its server when the signal aborts", async () => {
  const h = await startIngest();
  const port = Number(new URL(h.url).port);
  await h.stop();
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
});

Deno.test("http stop lets a request whose readings are being stored finish with its 200", async () => {
  const h = await startIngest();
  let release!: () => void;
  let emitting!: () => void;
  const inEmit = new Promise<void>((r) => emitting = r);
  h.onEmit = () => {
    emitting();
    return new Promise<void>((r) => release = r);
  };
  const answer = post(h, JSON.stringify({ device: "dev-a", metric: "t", value: 7 }));
  await inEmit;
  const stopped = h.stop();
  // The stop is under way (no new connections) while the readings are still being stored.
  const port = Number(new URL(h.url).port);
  await waitFor(
    "the listener to close",
    () =>
      Deno.connect({ hostname: "127.0.0.1", port }).then((c) => {
        c.close();
        return false;
      }, () => true),
  );
  release();
  const [code, json] = await status(await answer);
  assert.equal(code, 200, "the device learns its readings are stored, so it will not resend");
  assert.deepEqual(json, { accepted: 1, rejected: 0 });
  await stopped;
  assert.equal(h.collected.length, 1);
});

Deno.test("http stop answers 503 to a request whose body is still arriving, and stores nothing", async () => {
  const h = await startIngest();
  const port = Number(new URL(h.url).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const enc = new TextEncoder();
    await conn.write(enc.encode(
      `POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN_A}\r\n` +
        `Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"device":`,
    ));
    await waitFor("the request to reach the adapter", () => h.counts.get("requests") === 1);
    const stopped = h.stop();
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    const text = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    assert.match(text, /^HTTP\/1\.1 503/);
    assert.match(text, /retry-after: 5/i);
    assert.match(text, /gateway is stopping/);
    // The client keeps its connection open without sending the rest: stop still ends.
    const t0 = Date.now();
    await stopped;
    assert.ok(Date.now() - t0 < 10_000, `stop took ${Date.now() - t0}ms`);
    assert.equal(h.collected.length, 0);
  } finally {
    conn.close();
  }
});

Deno.test("RateLimiter refills over time and takes all or nothing", () => {
  const l = new RateLimiter(10, 5);
  assert.deepEqual(l.take(new Map([["a", 5]]), 0), { ok: true });
  const r = l.take(new Map([["b", 1], ["a", 1]]), 0);
  assert.deepEqual(r, { ok: false, device: "a", retryAfterMs: 100 });
  // "b" was not charged by the refused request.
  assert.deepEqual(l.take(new Map([["b", 5]]), 0), { ok: true });
  assert.deepEqual(l.take(new Map([["a", 2]]), 200), { ok: true });
  assert.deepEqual(l.take(new Map([["a", 6]]), 10_000), {
    ok: false,
    device: "a",
    overBurst: true,
  });
});

Deno.test("parseBody survives 10,000 random bodies and only returns valid readings", () => {
  const rnd = prng(0x5eed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const scalars = [
    0,
    -1,
    1.5,
    1e308,
    -0,
    NaN,
    "",
    "x",
    "dev-1",
    "a b",
    "°C",
    true,
    false,
    null,
    1_700_000_000_000,
    "2024-01-01T00:00:00Z",
    "9999-99-99T",
    2 ** 60,
    "x".repeat(2000),
  ];
  const keys = [
    "device",
    "metric",
    "value",
    "unit",
    "ts",
    "readings",
    "constructor",
    "x",
  ];
  const value = (depth: number): unknown => {
    const k = rnd();
    if (depth > 3 || k < 0.5) return pick(scalars);
    if (k < 0.75) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 6); i > 0; i--) o[pick(keys)] = value(depth + 1);
    return o;
  };
  const valid = () => ({
    device: pick(["dev-1", "a", "b/c"]),
    metric: pick(["t", "p"]),
    value: pick([1, true, "on"]),
    ...(rnd() < 0.5 ? { ts: 1_700_000_000_000 } : {}),
  });
  const now = Date.now();
  let accepted = 0;
  for (let i = 0; i < 10_000; i++) {
    let text: string;
    const mode = rnd();
    if (mode < 0.3) text = JSON.stringify(value(0)) ?? "null";
    else if (mode < 0.6) {
      const good = JSON.stringify(rnd() < 0.5 ? [valid(), valid()] : { readings: [valid()] });
      const chars = [...good];
      for (let m = Math.floor(rnd() * 3); m > 0; m--) {
        chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(Math.floor(rnd() * 128));
      }
      text = chars.join("");
    } else if (mode < 0.8) text = JSON.stringify(valid());
    else {
      text = Array.from(
        { length: Math.floor(rnd() * 40) },
        () => String.fromCharCode(Math.floor(rnd() * 0x3000)),
      ).join("");
    }
    const r = parseBody(text, now, 100);
    if ("error" in r) {
      assert.ok(r.status === 400 || r.status === 413);
      assert.equal(typeof r.error, "string");
    } else {
      accepted++;
      for (const reading of r.readings) assert.equal(checkReading(reading, now), undefined);
    }
  }
  assert.ok(accepted > 1000, `some bodies were valid (${accepted})`);
});

Deno.test("example.yaml is a valid gateway config", () => {
  const text = Deno.readTextFileSync(new URL("./example.yaml", import.meta.url));
  const c = parseConfig(text, gatewaySchema({ [httpAdapter.type]: httpAdapter }), {
    env: (name) => name === "DEFAULTLESS" ? undefined : "env-secret-0123456789",
    readFile: () => "file-secret-0123456789\n",
    displayName: "example.yaml",
  });
  assert.equal(c.adapters[0].type, httpAdapter.type);
});

Deno.test("http with tls serves HTTPS only, with the configured certificate", async () => {
  const certs = await testCerts();
  const h = await startIngest({ tls: { cert: certs.serverCert, key: certs.serverKey } });
  const trusting = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.ca)] });
  const other = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.rogueCa)] });
  try {
    assert.ok(h.url.startsWith("https://127.0.0.1:"));
    const res = await fetch(h.url, {
      client: trusting,
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN_A}`, "content-type": "application/json" },
      body: JSON.stringify({ device: "dev-a", metric: "t", value: 1 }),
    });
    assert.deepEqual(await status(res), [200, { accepted: 1, rejected: 0 }]);
    assert.equal(h.collected.length, 1);
    // A client that does not trust the CA refuses the server; plain HTTP gets no answer.
    await assert.rejects(
      fetch(h.url, { client: other, method: "POST", body: "{}" }),
      (e: Error) => /UnknownIssuer|certificate/i.test(String(e.cause ?? e.message)),
    );
    await assert.rejects(fetch(h.url.replace("https:", "http:"), { method: "POST", body: "{}" }));
    assert.equal(h.emitCalls, 1);
  } finally {
    trusting.close();
    other.close();
    await h.stop();
  }
});

Deno.test("http with an unreadable tls file fails naming it", async () => {
  const abort = new AbortController();
  const config = checkConfig({
    listen: `127.0.0.1:${freePort()}`,
    tokens: [{ token: TOKEN_A }],
    tls: { cert: "/nonexistent/ingest.crt", key: "/nonexistent/ingest.key" },
  });
  await assert.rejects(
    httpAdapter.start({
      name: "ingest",
      config,
      emit: () => Promise.resolve({ accepted: 0, rejected: 0, seqs: [] }),
      log: silentLogger(),
      signal: abort.signal,
      setDeviceState() {},
      count() {},
      setWriter() {},
    }),
    /Cannot read tls\.cert "\/nonexistent\/ingest\.crt"/,
  );
});

Deno.test("http on an address beyond loopback needs tls or allowInsecure, reported at file:line:col", () => {
  const problems = (adapter: string) => {
    try {
      parseConfig(
        `gateway: { id: g }\nadapters:\n  - type: http\n    name: ingest\n    tokens: [{ token: ${TOKEN_A} }]\n${adapter}`,
        gatewaySchema({ http: httpAdapter }),
        { displayName: "site.yaml" },
      );
      return [];
    } catch (e) {
      return (e as {
        problems: { file: string; line: number; col: number; path: string; message: string }[];
      })
        .problems.map((p) => `${p.file}:${p.line}:${p.col} ${p.path}: ${p.message}`);
    }
  };
  const refused = problems("    listen: 0.0.0.0:8788\n");
  assert.equal(refused.length, 1);
  assert.match(
    refused[0],
    /^site\.yaml:6:13 adapters\[0\]\.listen: "0\.0\.0\.0:8788" accepts connections from other machines.*add tls: \{ cert: FILE, key: FILE \}.*allowInsecure: true/,
  );
  assert.deepEqual(
    problems("    listen: 0.0.0.0:8788\n    tls: { cert: /c.pem, key: /k.pem }\n"),
    [],
  );
  assert.deepEqual(problems("    listen: 0.0.0.0:8788\n    allowInsecure: true\n"), []);
  assert.deepEqual(problems("    listen: 127.0.0.1:8788\n"), []);
  assert.match(
    problems("    listen: 0.0.0.0:8788\n    tls: { cert: /c.pem }\n")[0],
    /adapters\[0\]\.tls: missing required key "key"/,
  );
});

Deno.test("parseBody refuses deep JSON (400) and more values than maxReadings allow (413) before parsing", () => {
  const now = Date.now();
  assert.deepEqual(parseBody("[".repeat(500_000), now, 10_000), {
    status: 400,
    error: "JSON nested deeper than 8 levels",
    reason: "depth",
  });
  const wide = `{"readings":[${'{"device":"d","metric":"m","value":1},'.repeat(200)}1]}`;
  const r = parseBody(wide, now, 10);
  assert.equal("error" in r && r.status, 413);
  assert.equal("error" in r && r.reason, "values");
  const fits = `[${
    Array(10).fill('{"device":"d","metric":"m","value":1,"unit":"V","ts":1}').join(",")
  }]`;
  assert.equal(
    (parseBody(fits.replace(/"ts":1/g, `"ts":${now}`), now, 10) as { readings: unknown[] }).readings
      .length,
    10,
  );
});
