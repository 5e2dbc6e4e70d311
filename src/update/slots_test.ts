import assert from "node:assert/strict";
import { Slots, writeFileAtomic } from "./slots.ts";

Deno.test("Slots.init() lays out slot a, current and committed state", async () => {
  const root = await Deno.makeTempDir();
  const art = `${root}/art`;
  await Deno.writeTextFile(art, "#!/bin/sh\necho hi\n");
  const slots = new Slots(`${root}/opt`);
  await slots.init(art, "1.0.0");
  assert.equal(await slots.active(), "a");
  assert.equal(await Deno.readLink(slots.current), "slots/a");
  const st = await slots.readState();
  assert.deepEqual(st.committed, { slot: "a", version: "1.0.0" });
  assert.equal((await Deno.stat(slots.binary("a"))).mode! & 0o111, 0o111);
  await assert.rejects(slots.init(art, "1.0.0"), /already has update state/);
});

Deno.test("switchTo() replaces current by rename and leaves no temporary link", async () => {
  const root = await Deno.makeTempDir();
  await Deno.writeTextFile(`${root}/art`, "x");
  const slots = new Slots(root);
  await slots.init(`${root}/art`, "1.0.0");
  for (let i = 0; i < 20; i++) {
    await slots.switchTo(i % 2 ? "a" : "b");
    assert.equal(await slots.active(), i % 2 ? "a" : "b");
  }
  const names = [...Deno.readDirSync(root)].map((e) => e.name).sort();
  assert.deepEqual(names, ["art", "current", "slots", "state.json"]);
});

Deno.test("promoteStaging() makes the file executable only when moved into place", async () => {
  const root = await Deno.makeTempDir();
  await Deno.writeTextFile(`${root}/art`, "x");
  const slots = new Slots(root);
  await slots.init(`${root}/art`, "1.0.0");
  await Deno.writeTextFile(slots.staging("b"), "new", { mode: 0o600 });
  assert.equal((await Deno.stat(slots.staging("b"))).mode! & 0o111, 0);
  await slots.promoteStaging("b");
  assert.equal((await Deno.stat(slots.binary("b"))).mode! & 0o111, 0o111);
  await assert.rejects(Deno.stat(slots.staging("b")));
});

Deno.test("writeState() is atomic: a reader sees the old or the new state, never a torn one", async () => {
  const root = await Deno.makeTempDir();
  await Deno.writeTextFile(`${root}/art`, "x");
  const slots = new Slots(root);
  await slots.init(`${root}/art`, "1.0.0");
  const st = await slots.readState();
  const writes = (async () => {
    for (let i = 0; i < 50; i++) {
      st.lastCounter = i;
      st.history = Array.from({ length: 20 }, () => ({ at: i, result: "current" as const }));
      await slots.writeState(st);
    }
  })();
  let reads = 0;
  let done = false;
  writes.then(() => done = true);
  while (!done) {
    JSON.parse(await Deno.readTextFile(slots.stateFile));
    reads++;
  }
  await writes;
  assert.ok(reads > 0);
});

Deno.test("removeLeftovers() removes what an interrupted write leaves, never a slot or download", async () => {
  const root = await Deno.makeTempDir();
  await Deno.writeTextFile(`${root}/art`, "x");
  const slots = new Slots(`${root}/opt`);
  await slots.init(`${root}/art`, "1.0.0");
  const junk = [
    `${slots.root}/state.json.tmp-4242`,
    `${slots.root}/trial.env.tmp-17`,
    `${slots.root}/state.json.tmp-4242-3`,
    `${slots.root}/current.guard-tmp`,
    `${slots.dir("b")}/outpost.tmp`,
  ];
  for (const p of junk) await Deno.writeTextFile(p, "half");
  await Deno.symlink("slots/b", `${slots.root}/current.tmp-99`);
  await Deno.writeTextFile(slots.staging("b"), "partial download");
  const removed = await slots.removeLeftovers();
  assert.deepEqual(removed.sort(), [...junk, `${slots.root}/current.tmp-99`].sort());
  assert.equal(await Deno.readTextFile(slots.staging("b")), "partial download");
  assert.equal(await slots.active(), "a");
  assert.equal((await slots.readState()).committed.version, "1.0.0");
});

Deno.test("writeFileAtomic() twice at once on one file: both complete, one whole content wins", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/state.json`;
  const a = JSON.stringify({ writer: "a", pad: "x".repeat(200_000) });
  const b = JSON.stringify({ writer: "b", pad: "y".repeat(200_000) });
  await Promise.all([writeFileAtomic(path, a), writeFileAtomic(path, b)]);
  assert.ok([a, b].includes(await Deno.readTextFile(path)));
  const left = [];
  for await (const e of Deno.readDir(dir)) left.push(e.name);
  assert.deepEqual(left, ["state.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeFileAtomic() of one file twice at once in one process: both land, no error", async () => {
  const dir = await Deno.makeTempDir();
  const writes = Array.from({ length: 20 }, (_, i) => writeFileAtomic(`${dir}/f`, `v${i}`));
  await Promise.all(writes);
  assert.match(await Deno.readTextFile(`${dir}/f`), /^v\d+$/);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f"]);
});
