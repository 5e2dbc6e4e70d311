import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLogger } from "../log.ts";
import type { UpdateConfig } from "./config.ts";
import { UpdateRefused } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import { Slots } from "./slots.ts";
import { type Available, Updater } from "./updater.ts";

const log = createLogger({ level: "error" });

async function setup(handler: (req: Request, data: Uint8Array<ArrayBuffer>) => Response) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/art`, "#!/bin/sh\n");
  const slots = new Slots(`${dir}/opt`);
  await slots.init(`${dir}/art`, "1.0.0");
  const data = crypto.getRandomValues(new Uint8Array(48 * 1024));
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    (req) => handler(req, data),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const config: UpdateConfig = {
    channel: url,
    checkInterval: 3_600_000,
    installRoot: slots.root,
    maxArtifactBytes: 1024 ** 2,
    healthDeadline: 10_000,
    maxAttempts: 3,
    allowInsecure: true,
    trustedKeys: [],
  };
  const available: Available = {
    manifest: {} as Manifest,
    version: "2.0.0",
    target: "t",
    url: `${url}/artifact`,
    sha256: createHash("sha256").update(data).digest("hex"),
    length: data.length,
  };
  return {
    slots,
    config,
    available,
    data,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("stage() gives up a download that stalls, keeps the part for a resume that completes it", async () => {
  let stalled = false;
  const t = await setup((req, data) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    if (range) return new Response(data.subarray(Number(range[1])), { status: 206 });
    stalled = true;
    // Half, then nothing more: the connection stays open.
    return new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(data.subarray(0, data.length / 2));
        },
      }),
    );
  });
  try {
    const updater = new Updater({ config: t.config, gatewayId: "gw", log, stallTimeoutMs: 300 });
    const err = await updater.stage(t.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "download-failed");
    assert.match(
      err.message,
      /broke off after 24576 of 49152 bytes \(kept for resume\): no data for 300ms/,
    );
    assert.ok(stalled);
    assert.equal((await Deno.stat(t.slots.staging("b"))).size, t.data.length / 2);
    assert.equal(await updater.stage(t.available), "b");
    assert.deepEqual(await Deno.readFile(t.slots.binary("b")), t.data);
  } finally {
    await t.close();
  }
});

Deno.test("check({ remember: false }) leaves state.json alone; a check records the counter", async () => {
  const { generateKey, importSigningKey } = await import("./keys.ts");
  const { signManifest } = await import("./manifest.ts");
  const file = await generateKey();
  const key = await importSigningKey(file);
  const manifest = await signManifest({
    _type: "outpost-release",
    channel: "stable",
    version: "2.0.0",
    counter: 7,
    published: new Date(Date.now() - 1000).toISOString(),
    expires: new Date(Date.now() + 86_400_000).toISOString(),
    targets: { t: { path: "artifact", sha256: "a".repeat(64), length: 10 } },
  }, [key]);
  const t = await setup(() => Response.json(manifest));
  try {
    const config = { ...t.config, trustedKeys: [file.public], target: "t" };
    const updater = new Updater({ config, gatewayId: "gw", log });
    const before = await Deno.readTextFile(t.slots.stateFile);
    const r = await updater.check({ remember: false });
    assert.equal(r.kind, "available");
    assert.equal(await Deno.readTextFile(t.slots.stateFile), before);
    await updater.check();
    assert.equal((await t.slots.readState()).lastCounter, 7);
  } finally {
    await t.close();
  }
});
