import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLogger } from "../log.ts";
import { UpdateAgent } from "./agent.ts";
import { Slots } from "./slots.ts";
import { serveLocal, signedOffer, testUpdateConfig } from "./_testing.ts";

const log = createLogger({ level: "error" });

/** A slot executable that answers `version --json` like an Outpost build. */
function fakeBinary(version: string): string {
  return `#!/bin/sh\n[ "$1" = version ] && echo '{"version":"${version}"}' && exit 0\nexit 1\n`;
}

/**
 * An install root (1.1.0 committed in slot a, 1.0.0 left in slot b) and a channel offering 2.0.0
 * whose artifact download sends half, then waits until `release()` (or the client gives up).
 */
async function setup() {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a`, fakeBinary("1.1.0"));
  const slots = new Slots(`${dir}/opt`);
  await slots.init(`${dir}/a`, "1.1.0");
  await Deno.writeTextFile(slots.binary("b"), fakeBinary("1.0.0"), { mode: 0o755 });
  const data = new TextEncoder().encode(fakeBinary("2.0.0").padEnd(64 * 1024, "#"));
  const { manifest, publicKey } = await signedOffer({
    sha256: createHash("sha256").update(data).digest("hex"),
    length: data.length,
  }, { counter: 1 });
  const gate = Promise.withResolvers<void>();
  let downloads = 0;
  const server = serveLocal(
    (req) => {
      if (req.url.endsWith("/manifest.json")) return Response.json(manifest);
      downloads++;
      const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
      const from = range ? Number(range[1]) : 0;
      const half = data.length >> 1;
      return new Response(
        new ReadableStream({
          async start(c) {
            if (from < half) c.enqueue(data.subarray(from, half));
            await gate.promise;
            try {
              c.enqueue(data.subarray(Math.max(from, half)));
              c.close();
            } catch { /* the client went away */ }
          },
        }),
        { status: range ? 206 : 200 },
      );
    },
  );
  const config = testUpdateConfig(server.url, slots.root, {
    minDownloadRate: 1,
    trustedKeys: [publicKey],
    target: Deno.build.target,
  });
  const agent = new UpdateAgent({
    config,
    configPath: `${dir}/site.yaml`,
    gatewayId: "gw",
    // Nothing listens there: the uplink counts as not connected.
    healthUrl: "http://127.0.0.1:9",
    version: "1.1.0",
    log,
  });
  return {
    agent,
    slots,
    downloads: () => downloads,
    release: () => gate.resolve(),
    close: async () => {
      gate.resolve();
      await server.close();
    },
  };
}

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("a download in progress shows its progress in status() and does not block a rollback", async () => {
  const t = await setup();
  try {
    const check = t.agent.checkAndStage();
    await until("the download to start", () => t.agent.status().progress?.step === "downloading");
    const p = t.agent.status().progress!;
    assert.equal(p.version, "2.0.0");
    assert.equal(p.total, 64 * 1024);
    await until("half the artifact", () => t.agent.status().progress?.done === 32 * 1024);
    assert.equal(t.agent.status().activity, "downloading 2.0.0: 50% (32768 of 65536 bytes)");
    const started = Date.now();
    const r = await t.agent.stageRollback({ requestedBy: "test" });
    assert.deepEqual(r, { slot: "b", version: "1.0.0", from: "1.1.0" });
    assert.ok(Date.now() - started < 3000, `rollback waited ${Date.now() - started} ms`);
    assert.equal(await check, false);
    const last = t.agent.status().lastCheck!;
    assert.equal(last.result, "interrupted");
    assert.match(last.reason!, /a rollback was requested/);
    assert.equal(t.agent.status().progress, undefined);
    assert.equal(t.agent.status().activity, "staged 1.0.0 in slot b, about to run on trial");
    // The part stays for the next check; slot b still holds the version rolled back to.
    assert.equal((await Deno.stat(t.slots.staging("b"))).size, 32 * 1024);
  } finally {
    await t.close();
  }
});

Deno.test("a check asked for while another runs joins it and reports its outcome", async () => {
  const t = await setup();
  try {
    const first = t.agent.checkAndStage();
    await until("the download to start", () => t.agent.status().progress?.step === "downloading");
    const second = t.agent.checkAndStage();
    t.release();
    assert.equal(await first, true);
    assert.equal(await second, true);
    assert.equal(t.downloads(), 1);
    assert.equal(t.agent.status().staged?.version, "2.0.0");
    assert.equal(t.agent.status().lastCheck?.result, "staged");
  } finally {
    await t.close();
  }
});
