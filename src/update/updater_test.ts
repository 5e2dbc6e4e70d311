import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLogger } from "../log.ts";
import { UpdateRefused } from "./errors.ts";
import type { Manifest, SignedManifest } from "./manifest.ts";
import { Slots } from "./slots.ts";
import { dripResponse, serveLocal, signedOffer, testUpdateConfig } from "./_testing.ts";
import { type Available, Updater } from "./updater.ts";

const log = createLogger({ level: "error" });

/** A shell script that answers `version --json` like an Outpost build of `version`. */
function script(version: string): string {
  return `#!/bin/sh\n[ "$1" = version ] && echo '{"version":"${version}"}'\nexit 0\n`;
}

async function setup(handler: (req: Request, data: Uint8Array<ArrayBuffer>) => Response) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/art`, "#!/bin/sh\n");
  const slots = new Slots(`${dir}/opt`);
  await slots.init(`${dir}/art`, "1.0.0");
  // A shell script that answers `version --json` with 2.0.0, padded with random bytes (after
  // `exit` the shell reads no further).
  const data = crypto.getRandomValues(new Uint8Array(48 * 1024));
  data.set(new TextEncoder().encode(script("2.0.0")));
  const server = serveLocal((req) => handler(req, data));
  const url = server.url;
  const config = testUpdateConfig(url, slots.root);
  const available: Available = {
    manifest: {} as Manifest,
    version: "2.0.0",
    target: Deno.build.target,
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
      await server.close();
    },
  };
}

Deno.test("stage() gives up a download that stops sending, keeps the part for a resume that completes it", async () => {
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
    const updater = new Updater({ config: t.config, gatewayId: "gw", log, rateWindowMs: 300 });
    const err = await updater.stage(t.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "download-failed");
    assert.match(
      err.message,
      /broke off after 24576 of 49152 bytes \(kept for resume\): average 0 B\/s over the last 300ms/,
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
  const { manifest, publicKey } = await signedOffer({ sha256: "a".repeat(64), length: 10 });
  const t = await setup(() => Response.json(manifest));
  try {
    const config = { ...t.config, trustedKeys: [publicKey], target: Deno.build.target };
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

Deno.test("check() stops reading an endless manifest at update.maxMetadataBytes", async () => {
  let sent = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const t = await setup((req) => {
    if (!req.url.endsWith("/manifest.json")) return new Response("no", { status: 404 });
    return new Response(
      new ReadableStream({
        // Endless whitespace (valid JSON padding); bounded at 64 MB only so that a reader
        // without a cap ends instead of filling the test machine's memory.
        pull(c) {
          if (sent >= 64 * 1024 ** 2) return c.close();
          sent += chunk.length;
          c.enqueue(chunk);
        },
      }),
    );
  });
  try {
    const { generateKey } = await import("./keys.ts");
    const trustedKeys = [(await generateKey()).public];
    const config = { ...t.config, maxMetadataBytes: 16 * 1024, trustedKeys };
    const updater = new Updater({ config, gatewayId: "gw", log });
    const started = Date.now();
    const err = await updater.check().catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "metadata-too-large");
    assert.match(err.message, /more than 16384 bytes \(update\.maxMetadataBytes\)/);
    // The server got ahead by what was buffered, not by the 64 MB it would have sent.
    assert.ok(sent < 4 * 1024 ** 2, `server sent ${sent} bytes`);
    assert.ok(Date.now() - started < 5000);
  } finally {
    await t.close();
  }
});

Deno.test("stage() gives up a download that drips below update.minDownloadRate; the part is kept", async () => {
  const t = await setup((_req, data) => {
    // One byte every 20 ms: 50 B/s, never a gap long enough for a stall timer.
    return dripResponse(data, { step: 1, everyMs: 20 });
  });
  try {
    const config = { ...t.config, minDownloadRate: 1024 };
    const updater = new Updater({ config, gatewayId: "gw", log, rateWindowMs: 500 });
    const started = Date.now();
    const err = await Promise.race([
      updater.stage(t.available).catch((e) => e),
      new Promise((r) => setTimeout(() => r(new Error("still downloading after 10 s")), 10_000)),
    ]);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "download-failed");
    assert.match(err.message, /below update\.minDownloadRate 1024 B\/s/);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    const kept = (await Deno.stat(t.slots.staging("b"))).size;
    assert.ok(kept > 0 && kept < t.data.length, `kept ${kept}`);
  } finally {
    await t.close();
  }
});

Deno.test("stage() gives up a download that is fast enough but outlasts update.downloadTimeout", async () => {
  const t = await setup((_req, data) => {
    // 4 KB every 100 ms (40 KB/s): over the minimum rate, done only after 1.2 s.
    return dripResponse(data, { step: 4096, everyMs: 100 });
  });
  try {
    const config = { ...t.config, minDownloadRate: 1024, downloadTimeout: 500 };
    const updater = new Updater({ config, gatewayId: "gw", log, rateWindowMs: 300 });
    const err = await updater.stage(t.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "download-failed");
    assert.match(err.message, /not done within update\.downloadTimeout 500ms/);
  } finally {
    await t.close();
  }
});

/** A channel serving one signed manifest (built by `over`) and `artifact`. */
async function offered(over: Partial<SignedManifest>, artifact: Uint8Array<ArrayBuffer>) {
  const { manifest, publicKey } = await signedOffer({
    sha256: createHash("sha256").update(artifact).digest("hex"),
    length: artifact.length,
  }, over);
  const t = await setup((req) =>
    req.url.endsWith("/manifest.json") ? Response.json(manifest) : new Response(artifact)
  );
  return { ...t, config: { ...t.config, trustedKeys: [publicKey] } };
}

Deno.test("check() refuses another channel's manifest: the name comes from the channel URL", async () => {
  const t = await offered({ channel: "beta" }, new Uint8Array(10));
  try {
    // A device following …/stable with no channelName set.
    const config = { ...t.config, channel: `${t.config.channel}/stable`, channelName: undefined };
    const err = await new Updater({ config, gatewayId: "gw", log }).check().catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "wrong-channel");
    assert.match(err.message, /manifest is for channel "beta", device follows "stable"/);
  } finally {
    await t.close();
  }
});

Deno.test("check() refuses an artifact for another hardware class or architecture", async () => {
  const t = await offered({}, new Uint8Array(10));
  try {
    const cm4 = { ...t.config, hardwareClass: "cm4" };
    const err = await new Updater({ config: cm4, gatewayId: "gw", log }).check().catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "incompatible");
    assert.match(err.message, /is for hardware generic; this device is "cm4"/);
    const other = Deno.build.arch === "x86_64"
      ? "aarch64-unknown-linux-gnu"
      : "x86_64-unknown-linux-gnu";
    const wrong = { ...t.config, target: other };
    const e2 = await new Updater({ config: wrong, gatewayId: "gw", log }).check().catch((e) => e);
    assert.ok(e2 instanceof UpdateRefused, String(e2));
    assert.equal(e2.code, "incompatible");
    assert.match(e2.message, new RegExp(`this device runs ${Deno.build.arch}`));
  } finally {
    await t.close();
  }
});

Deno.test("stage() refuses a signed artifact that reports another version than the manifest", async () => {
  const t = await offered({ version: "6.6.6" }, new TextEncoder().encode(script("1.6.0")));
  try {
    const updater = new Updater({ config: t.config, gatewayId: "gw", log });
    const r = await updater.check();
    assert.equal(r.kind, "available");
    if (r.kind !== "available") return;
    const err = await updater.stage(r.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "version-mismatch");
    assert.match(err.message, /reports version 1\.6\.0, the manifest says 6\.6\.6; deleted/);
    await assert.rejects(Deno.stat(t.slots.binary("b")));
    await assert.rejects(Deno.stat(t.slots.staging("b")));
  } finally {
    await t.close();
  }
});

Deno.test("rollbackByHand(), pin and unpin: the version rolled back from stays out until unpin", async () => {
  const { pin, rollbackByHand, unpin } = await import("./pin.ts");
  const t = await offered({}, new TextEncoder().encode(script("2.0.0")));
  try {
    // 2.0.0 committed in slot b, 1.1.0 in slot a.
    await Deno.writeTextFile(t.slots.binary("a"), script("1.1.0"));
    await Deno.writeTextFile(t.slots.binary("b"), script("2.0.0"), { mode: 0o755 });
    await t.slots.switchTo("b");
    const state = await t.slots.readState();
    state.committed = { slot: "b", version: "2.0.0" };
    await t.slots.writeState(state);

    assert.deepEqual(await rollbackByHand(t.slots, "by hand"), { from: "2.0.0", to: "1.1.0" });
    assert.equal(await t.slots.active(), "a");
    const updater = new Updater({ config: t.config, gatewayId: "gw", log });
    let r = await updater.check();
    assert.equal(r.kind, "none");
    if (r.kind === "none") assert.match(r.outcome.reason!, /2\.0\.0 was rolled back \(by hand\)/);

    await pin(t.slots, "freeze");
    r = await updater.check();
    assert.equal(r.kind, "none");
    if (r.kind === "none") assert.match(r.outcome.reason!, /pinned at 1\.1\.0 by the operator/);

    assert.equal(await unpin(t.slots), "2.0.0");
    assert.equal((await updater.check()).kind, "available");
  } finally {
    await t.close();
  }
});

Deno.test("stage() stops an artifact download at the signed length and deletes it", async () => {
  let sent = 0;
  const t = await setup((_req, data) =>
    new Response(
      new ReadableStream({
        // The artifact, then endless more.
        pull(c) {
          if (sent >= 64 * 1024 ** 2) return c.close();
          const chunk = sent === 0 ? data : new Uint8Array(64 * 1024);
          sent += chunk.length;
          c.enqueue(chunk);
        },
      }),
    )
  );
  try {
    const updater = new Updater({ config: t.config, gatewayId: "gw", log });
    const err = await updater.stage(t.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "length-mismatch");
    assert.match(err.message, /server sent more than the 49152 bytes the manifest names/);
    assert.ok(sent < 8 * 1024 ** 2, `server sent ${sent} bytes`);
    await assert.rejects(Deno.stat(t.slots.staging("b")));
  } finally {
    await t.close();
  }
});
