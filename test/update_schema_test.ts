/**
 * The buffer schema across an A/B rollback, with two real bundled releases: A (1.1.0, schema 1)
 * and B (2.1.0, a TEST-ONLY build with one additive schema step more). B migrates the file, is
 * rolled back by hand to A, A reads and forwards every reading B stored, and B runs over the
 * file again after `update unpin`.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { readSchemaVersion } from "../src/buffer/schema.ts";
import { assertFlowing, bufferContents, outpost, publish } from "./helpers/update.ts";
import { updateRig } from "./helpers/update_rig.ts";

function schemaOf(path: string): { version: number; compat: number } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return readSchemaVersion(db);
  } finally {
    db.close();
  }
}

Deno.test({
  name:
    "buffer schema round trip: B migrates the file, rolled back to A, A forwards every reading B stored, B runs over it again",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const rig = await updateRig("outpost-update-schema-");
  const { a, channel, key, dev } = rig;
  try {
    const sub = await dev.subscriber();
    await dev.boot();
    await dev.waitStatus(
      "A (1.1.0) forwarding",
      (s) => s.version === "1.1.0" && !!s.uplink?.connected,
    );
    assert.deepEqual(schemaOf(dev.buffer), { version: 2, compat: 1 });

    // B migrates the file.
    await publish(channel, a.next, "2.1.0", [key.key]);
    const b = await dev.waitStatus(
      "B (2.1.0) committed",
      (s) => s.version === "2.1.0" && s.update.committed.version === "2.1.0",
      90_000,
    );
    assert.deepEqual(schemaOf(dev.buffer), { version: 3, compat: 1 });
    await dev.waitStatus(
      "B stored readings of its own",
      (s) => s.buffer.rows >= b.buffer.rows + 30,
    );

    // Back to A by hand, with what B stored (forwarded or not) in the file.
    await dev.powerCut();
    const storedByB = bufferContents(dev.buffer);
    const rolled = await outpost("update", "rollback", "--config", dev.config);
    assert.match(rolled, /rolled back from 2\.1\.0 to 1\.1\.0/);
    await dev.boot();
    await dev.waitStatus("A (1.1.0) running again", (s) => s.version === "1.1.0");
    await assertFlowing(dev, sub, storedByB);
    // A used the newer file as it is: it did not step the version back.
    assert.deepEqual(schemaOf(dev.buffer), { version: 3, compat: 1 });

    // B again on the next update.
    await dev.powerCut();
    const storedByA = bufferContents(dev.buffer);
    assert.ok(storedByA.size > storedByB.size, `${storedByA.size} readings after A's run`);
    await outpost("update", "unpin", "--config", dev.config);
    await dev.boot();
    await dev.waitStatus(
      "B (2.1.0) committed again",
      (s) => s.version === "2.1.0" && s.update.committed.version === "2.1.0",
      90_000,
    );
    await assertFlowing(dev, sub, storedByA);
    assert.deepEqual(schemaOf(dev.buffer), { version: 3, compat: 1 });
  } finally {
    await rig.close();
  }
});
