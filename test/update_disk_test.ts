/**
 * A full disk and self-update: the install root on a small tmpfs. An artifact larger than the
 * free space is refused before a byte is written; a disk that fills up during the download is
 * refused with the partial file removed. Either way nothing but the staging file changes, the
 * committed version keeps running and forwarding to a real Mosquitto, and the reason is in
 * /status.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";
import {
  artifacts,
  assertFlowing,
  bufferContents,
  channelServer,
  device,
  publish,
  releaseDir,
} from "./helpers/update.ts";
import { mountTmpfs, unmount } from "./helpers/tmpfs.ts";

const isRoot = Deno.uid() === 0;

/** Every path under `root` with its type, size and content hash (or link target). */
async function snapshot(
  root: string,
  skip: (path: string) => boolean,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (skip(p)) continue;
      if (e.isSymlink) out.set(p, `-> ${await Deno.readLink(p)}`);
      else if (e.isDirectory) {
        out.set(p, "dir");
        await walk(p);
      } else {
        const h = createHash("sha256").update(await Deno.readFile(p)).digest("hex");
        out.set(p, `${(await Deno.stat(p)).mode! & 0o777} ${h}`);
      }
    }
  };
  await walk(root);
  return out;
}

/** state.json without the fields a verified manifest may advance (replay counter and digest,
 * time, timestamp). */
async function stateSansCounter(root: string): Promise<unknown> {
  const s = JSON.parse(await Deno.readTextFile(`${root}/state.json`));
  delete s.lastCounter;
  delete s.lastDigest;
  delete s.trustedTime;
  delete s.lastTimestamp;
  return s;
}

/** Fills the file system of `dir` to the last byte. */
async function fill(path: string): Promise<number> {
  const f = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(64 * 1024);
  let n = 0;
  try {
    for (let size = chunk.length; size >= 1;) {
      try {
        n += await f.write(chunk.subarray(0, size));
      } catch (e) {
        if ((e as { code?: string }).code !== "ENOSPC") throw e;
        size >>= 1;
      }
    }
  } finally {
    f.close();
  }
  return n;
}

Deno.test({
  name:
    "disk full: an artifact larger than the free space and a disk filling up mid-download are refused; only the staging file changes and 1.1.0 keeps forwarding",
  ignore: !isRoot,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const a = await artifacts();
  const size = (await Deno.stat(a.good)).size;
  const tmp = await Deno.makeTempDir({ prefix: "outpost-diskfull-" });
  const broker = await startMosquitto();
  const key = await releaseDir(`${tmp}/keys`);
  const mounts: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    const scenario = async (name: string, tmpfsBytes: number, midDownload: boolean) => {
      const mnt = `${tmp}/${name}`;
      await Deno.mkdir(mnt);
      await mountTmpfs(mnt, tmpfsBytes);
      mounts.push(mnt);
      const channel = `${tmp}/${name}-channel`;
      await Deno.mkdir(channel);
      const srv = channelServer(channel);
      const dev = await device({
        channelUrl: srv.url,
        pubkeys: [key.pub],
        broker: broker.url,
        installRoot: `${mnt}/opt`,
      });
      closers.push(async () => {
        await dev.close();
        await srv.close();
      });
      const sub = await dev.subscriber();
      await dev.boot();
      await dev.waitStatus(
        "1.1.0 connected",
        (s) => s.version === "1.1.0" && !!s.uplink?.connected,
      );
      const root = dev.slots.root;
      const staging = dev.slots.staging("b");
      // state.json is compared apart: a verified manifest advances its replay counter.
      const skip = (p: string) => p === staging || p === `${root}/state.json`;
      const before = await snapshot(root, skip);
      const stateBefore = await stateSansCounter(root);
      const stall = midDownload ? srv.stallNext() : undefined;
      await publish(channel, a.good, "2.0.0", [key.key]);
      let filler = 0;
      if (stall) {
        // Half the artifact is in; now the disk fills up (another writer), then the rest comes.
        const half = await stall.sent;
        await waitFor(
          "half the artifact in the staging file",
          async () => (await Deno.stat(staging).catch(() => undefined))?.size === half,
          30_000,
        );
        filler = await fill(`${mnt}/filler`);
        stall.resume();
      }
      const s = await dev.waitStatus(
        "the update refused for lack of space",
        (s) => s.update.lastCheck?.code === "disk-full",
      );
      const reason = s.update.lastCheck!.reason!;
      if (midDownload) {
        assert.match(
          await Deno.readTextFile(dev.log),
          /disk full while downloading 2\.0\.0 into \S+outpost\.staging\S* after \d+ of \d+ bytes; the partial file was removed/,
        );
        assert.ok(filler > 0);
        assert.equal((await Deno.stat(`${mnt}/filler`)).size, filler, "the other writer's file");
      } else {
        assert.match(
          reason,
          new RegExp(`artifact 2\\.0\\.0 needs ${size} more bytes in ".*slots/b", only \\d+ free`),
        );
      }
      assert.equal(s.version, "1.1.0");
      assert.equal(s.update.committed.version, "1.1.0");
      assert.equal(
        await Deno.stat(staging).then(() => true, () => false),
        false,
        "no staging file",
      );
      const after = await snapshot(root, skip);
      assert.deepEqual([...after], [...before], "nothing else under the install root changed");
      assert.deepEqual(await stateSansCounter(root), stateBefore);
      // Still forwarding; the buffer (not on this disk) is intact.
      await assertFlowing(dev, sub, bufferContents(dev.buffer));
      if (midDownload) {
        // Space back: the next check installs the release.
        await Deno.remove(`${mnt}/filler`);
        await dev.waitStatus(
          "2.0.0 committed once there is space",
          (s) => s.version === "2.0.0" && s.update.committed.version === "2.0.0",
        );
      }
    };
    await Promise.all([
      scenario("precheck", size + 1024 * 1024, false),
      scenario("middownload", 2 * size + 1536 * 1024, true),
    ]);
  } finally {
    for (const c of closers) await c().catch(() => {});
    for (const m of mounts) await unmount(m);
    await broker.stop();
  }
});
