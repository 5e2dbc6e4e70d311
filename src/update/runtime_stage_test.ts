import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLogger } from "../log.ts";
import { UpdateRefused } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import { reportedVersion } from "./probe.ts";
import { Slots } from "./slots.ts";
import { dripResponse, serveLocal, testUpdateConfig } from "./_testing.ts";
import { type Available, Updater } from "./updater.ts";

const log = createLogger({ level: "error" });
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * A stand-in Deno runtime: a shell script that answers `run <flags> <bundle> version --json` with
 * the version the bundle's second line names, padded to `size` bytes (after `exit` the shell
 * reads no further); `tag` makes its hash its own.
 */
function fakeRuntime(tag: string, size = 32 * 1024): Uint8Array<ArrayBuffer> {
  const text = `#!/bin/sh
# ${tag}
for a; do [ "$a" = version ] && break; p=$a; done
sed -n 2p "$p" | tr -d '/ '
exit 0
`;
  const out = new Uint8Array(size);
  out.fill(0x23);
  out.set(new TextEncoder().encode(text));
  out[size - 1] = 0x0a;
  return out;
}

const BUNDLE = new TextEncoder().encode(
  `#!/usr/bin/env -S deno run --allow-read --unstable-net\n//{"version":"2.0.0"}\n`,
);

async function setup(
  runtime: Uint8Array<ArrayBuffer>,
  serve: (req: Request, data: Uint8Array<ArrayBuffer>) => Response = (_r, d) => new Response(d),
) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/art`, "#!/bin/sh\n");
  const slots = new Slots(`${dir}/opt`);
  await slots.init(`${dir}/art`, "1.0.0");
  const requests: string[] = [];
  const server = serveLocal(
    (req) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      if (path === "/bundle") return new Response(BUNDLE);
      return serve(req, runtime);
    },
  );
  const url = server.url;
  const config = testUpdateConfig(url, slots.root);
  const available: Available = {
    manifest: {} as Manifest,
    version: "2.0.0",
    target: Deno.build.target,
    url: `${url}/bundle`,
    sha256: sha(BUNDLE),
    length: BUNDLE.length,
    runtime: {
      key: `deno-2.9.5-${Deno.build.target}`,
      version: "2.9.5",
      url: `${url}/runtime`,
      sha256: sha(runtime),
      length: runtime.length,
    },
  };
  return {
    slots,
    config,
    available,
    requests,
    runtimeRequests: () => requests.filter((r) => r === "/runtime").length,
    close: async () => {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("stage() puts the runtime beside the bundle and the slot runs the one with the other", async () => {
  const rt = fakeRuntime("r1");
  const t = await setup(rt);
  try {
    const updater = new Updater({ config: t.config, gatewayId: "gw", log });
    assert.equal(await updater.stage(t.available), "b");
    const dir = t.slots.dir("b");
    assert.equal(sha(await Deno.readFile(`${dir}/deno`)), sha(rt));
    assert.equal(sha(await Deno.readFile(`${dir}/outpost.js`)), sha(BUNDLE));
    assert.equal((await Deno.stat(`${dir}/deno`)).mode! & 0o111, 0o111);
    assert.equal(await reportedVersion(t.slots.binary("b")), "2.0.0");
    assert.equal(t.runtimeRequests(), 1);
    await assert.rejects(Deno.lstat(`${dir}/deno.staging`), Deno.errors.NotFound);
    await assert.rejects(Deno.lstat(t.slots.staging("b")), Deno.errors.NotFound);
    // Staged again (the slot already holds that runtime, as after a rollback): used in place.
    await updater.stage(t.available);
    assert.equal(t.runtimeRequests(), 1);
    assert.equal(await reportedVersion(t.slots.binary("b")), "2.0.0");
  } finally {
    await t.close();
  }
});

Deno.test("stage() reuses the running slot's runtime when unchanged: no download, hash-checked", async () => {
  const rt = fakeRuntime("r1");
  const t = await setup(rt);
  try {
    await Deno.writeFile(`${t.slots.dir("a")}/deno`, rt, { mode: 0o755 });
    const updater = new Updater({ config: t.config, gatewayId: "gw", log });
    await updater.stage(t.available);
    assert.equal(t.runtimeRequests(), 0, t.requests.join(" "));
    assert.equal(sha(await Deno.readFile(`${t.slots.dir("b")}/deno`)), sha(rt));
    assert.equal(await reportedVersion(t.slots.binary("b")), "2.0.0");
    // Another runtime in the running slot (same length, other bytes) is not taken for it.
    const t2 = await setup(rt);
    try {
      await Deno.writeFile(`${t2.slots.dir("a")}/deno`, fakeRuntime("r2"), { mode: 0o755 });
      await new Updater({ config: t2.config, gatewayId: "gw", log }).stage(t2.available);
      assert.equal(t2.runtimeRequests(), 1);
      assert.equal(sha(await Deno.readFile(`${t2.slots.dir("b")}/deno`)), sha(rt));
    } finally {
      await t2.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("stage() refuses a runtime whose hash does not match, deletes it, and leaves the slot as it was", async () => {
  const t = await setup(fakeRuntime("r1"), () => new Response(fakeRuntime("evil")));
  try {
    const updater = new Updater({ config: t.config, gatewayId: "gw", log });
    const err = await updater.stage(t.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "hash-mismatch");
    assert.match(err.message, /runtime ".*\/runtime": sha256 \w+, manifest says \w+; deleted/);
    for (const f of ["deno", "deno.staging", "outpost", "outpost.js"]) {
      await assert.rejects(Deno.lstat(`${t.slots.dir("b")}/${f}`), Deno.errors.NotFound, f);
    }
  } finally {
    await t.close();
  }
});

Deno.test("stage() holds the runtime to the artifact limits: size cap, minimum rate (part kept, resumed)", async () => {
  const big = fakeRuntime("big", 64 * 1024);
  const t = await setup(big);
  try {
    const config = { ...t.config, maxArtifactBytes: 48 * 1024 };
    const err = await new Updater({ config, gatewayId: "gw", log }).stage(t.available)
      .catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "too-large");
    assert.match(
      err.message,
      /runtime deno-2\.9\.5-.* is 65536 bytes, over update\.maxArtifactBytes/,
    );
    assert.equal(t.runtimeRequests(), 0);
  } finally {
    await t.close();
  }
  const rt = fakeRuntime("slow");
  let resumedFrom = -1;
  const d = await setup(rt, (req, data) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    if (range) {
      resumedFrom = Number(range[1]);
      return new Response(data.subarray(resumedFrom), { status: 206 });
    }
    // One byte every 20 ms: 50 B/s.
    return dripResponse(data, { step: 1, everyMs: 20 });
  });
  try {
    const updater = new Updater({ config: d.config, gatewayId: "gw", log, rateWindowMs: 500 });
    const started = Date.now();
    const err = await updater.stage(d.available).catch((e) => e);
    assert.ok(err instanceof UpdateRefused, String(err));
    assert.equal(err.code, "download-failed");
    assert.match(err.message, /below update\.minDownloadRate 1024 B\/s/);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    const kept = (await Deno.stat(`${d.slots.dir("b")}/deno.staging`)).size;
    assert.ok(kept > 0 && kept < rt.length, `kept ${kept}`);
    await assert.rejects(Deno.lstat(`${d.slots.dir("b")}/outpost`), Deno.errors.NotFound);
    // The next check resumes the part and completes it.
    await updater.stage(d.available);
    assert.equal(resumedFrom, kept);
    assert.equal(sha(await Deno.readFile(`${d.slots.dir("b")}/deno`)), sha(rt));
    assert.equal(await reportedVersion(d.slots.binary("b")), "2.0.0");
  } finally {
    await d.close();
  }
});
