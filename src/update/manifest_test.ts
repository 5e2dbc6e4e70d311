import assert from "node:assert/strict";
import { canonicalJson } from "./canonical.ts";
import { UpdateRefused } from "./errors.ts";
import { generateKey, importSigningKey, importTrustedKeys } from "./keys.ts";
import {
  compareVersions,
  inRollout,
  type SignedManifest,
  signManifest,
  verifyManifest,
} from "./manifest.ts";

const NOW = Date.parse("2030-01-01T00:00:00Z");
const T = "x86_64-unknown-linux-gnu";

function signed(over: Partial<SignedManifest> = {}): SignedManifest {
  return {
    _type: "outpost-release",
    channel: "stable",
    version: "1.2.0",
    counter: 5,
    published: new Date(NOW - 1000).toISOString(),
    expires: new Date(NOW + 86_400_000).toISOString(),
    targets: {
      [T]: {
        path: `artifacts/1.2.0/${T}/outpost`,
        sha256: "a".repeat(64),
        length: 10,
        hardware: ["generic"],
      },
    },
    ...over,
  };
}

async function keys() {
  const oldFile = await generateKey();
  const newFile = await generateKey();
  return {
    old: await importSigningKey(oldFile),
    new: await importSigningKey(newFile),
    trustOld: await importTrustedKeys([oldFile.public]),
    trustNew: await importTrustedKeys([newFile.public]),
  };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UpdateRefused, `expected UpdateRefused, got ${e}`);
    return e.code;
  }
  assert.fail("expected a refusal");
}

Deno.test("canonicalJson() sorts keys so reordering does not change the signed bytes", () => {
  assert.equal(
    canonicalJson({ b: 1, a: [true, { d: null, c: "x" }] }),
    canonicalJson({
      a: [true, { c: "x", d: null }],
      b: 1,
    }),
  );
});

Deno.test("verifyManifest() accepts a manifest signed by a trusted key", async () => {
  const k = await keys();
  const m = await signManifest(signed(), [k.old]);
  const ok = await verifyManifest(JSON.parse(JSON.stringify(m)), {
    trustedKeys: k.trustOld,
    lastCounter: 5,
    now: NOW,
  });
  assert.equal(ok.signed.version, "1.2.0");
});

Deno.test("verifyManifest() refuses a tampered manifest as bad-signature", async () => {
  const k = await keys();
  const m = await signManifest(signed(), [k.old]);
  m.signed.targets[T].sha256 = "b".repeat(64);
  assert.equal(
    await refusal(verifyManifest(m, { trustedKeys: k.trustOld, now: NOW })),
    "bad-signature",
  );
  const m2 = await signManifest(signed(), [k.old]);
  m2.signatures[0].sig = m2.signatures[0].sig.replace(/^./, (c) => c === "A" ? "B" : "A");
  assert.equal(
    await refusal(verifyManifest(m2, { trustedKeys: k.trustOld, now: NOW })),
    "bad-signature",
  );
});

Deno.test("verifyManifest() refuses a manifest signed only by an unknown key, or unsigned", async () => {
  const k = await keys();
  const m = await signManifest(signed(), [k.new]);
  assert.equal(
    await refusal(verifyManifest(m, { trustedKeys: k.trustOld, now: NOW })),
    "unknown-key",
  );
  m.signatures = [];
  assert.equal(
    await refusal(verifyManifest(m, { trustedKeys: k.trustOld, now: NOW })),
    "unknown-key",
  );
});

Deno.test("verifyManifest() refuses a lower counter (replay), accepts an equal one", async () => {
  const k = await keys();
  const m = await signManifest(signed({ counter: 4 }), [k.old]);
  assert.equal(
    await refusal(verifyManifest(m, { trustedKeys: k.trustOld, lastCounter: 5, now: NOW })),
    "counter-replayed",
  );
  const same = await signManifest(signed({ counter: 5 }), [k.old]);
  await verifyManifest(same, { trustedKeys: k.trustOld, lastCounter: 5, now: NOW });
});

Deno.test("verifyManifest() refuses an expired manifest; a clock behind trusted time defers", async () => {
  const k = await keys();
  const m = await signManifest(signed({ expires: new Date(NOW - 1).toISOString() }), [k.old]);
  assert.equal(
    await refusal(verifyManifest(m, { trustedKeys: k.trustOld, now: NOW })),
    "expired",
  );
  const fresh = await signManifest(signed(), [k.old]);
  assert.equal(
    await refusal(
      verifyManifest(fresh, { trustedKeys: k.trustOld, trustedTime: NOW, now: NOW - 86_400_000 }),
    ),
    "clock-behind",
  );
});

Deno.test("verifyManifest() accepts an overlap manifest (old + new key) with either key trusted", async () => {
  const k = await keys();
  const m = await signManifest(signed(), [k.old, k.new]);
  await verifyManifest(m, { trustedKeys: k.trustOld, now: NOW });
  await verifyManifest(m, { trustedKeys: k.trustNew, now: NOW });
  // A bad signature by a trusted key is not rescued by a good one from an unknown key.
  const bad = await signManifest(signed(), [k.old, k.new]);
  bad.signatures[0].sig = bad.signatures[1].sig;
  assert.equal(
    await refusal(verifyManifest(bad, { trustedKeys: k.trustOld, now: NOW })),
    "bad-signature",
  );
});

Deno.test("verifyManifest() names the bad field of a malformed manifest", async () => {
  const k = await keys();
  const m = await signManifest(signed({ version: "latest" }), [k.old]);
  await assert.rejects(
    verifyManifest(m, { trustedKeys: k.trustOld, now: NOW }),
    /manifest: version: expected a semantic version, got "latest"/,
  );
  const p = await signManifest(
    signed({
      targets: {
        [T]: { path: "../etc/passwd", sha256: "a".repeat(64), length: 1, hardware: ["generic"] },
      },
    }),
    [k.old],
  );
  assert.equal(
    await refusal(verifyManifest(p, { trustedKeys: k.trustOld, now: NOW })),
    "manifest-malformed",
  );
});

Deno.test("compareVersions() orders releases and pre-releases", () => {
  assert.ok(compareVersions("1.2.0", "1.1.9") > 0);
  assert.ok(compareVersions("1.10.0", "1.9.0") > 0);
  assert.equal(compareVersions("1.2.0", "1.2.0"), 0);
  assert.ok(compareVersions("1.2.0-rc.1", "1.2.0") < 0);
});

Deno.test("inRollout() takes a stable share of gateways per version: none at 0, all at 100", async () => {
  const ids = Array.from({ length: 1000 }, (_, i) => `gw-${i}`);
  const share = async (pct: number, version = "2.0.0") =>
    (await Promise.all(ids.map((id) => inRollout(id, version, pct)))).filter(Boolean).length;
  assert.equal(await share(0), 0);
  assert.equal(await share(100), 1000);
  const thirty = await share(30);
  assert.ok(thirty > 240 && thirty < 360, `30% rollout took ${thirty} of 1000`);
  // Monotonic: raising the percentage only adds gateways.
  for (const id of ids.slice(0, 200)) {
    if (await inRollout(id, "2.0.0", 30)) assert.ok(await inRollout(id, "2.0.0", 60), id);
  }
  // Another version draws another share (the same gateways are not always first).
  const first = await Promise.all(ids.map((id) => inRollout(id, "2.0.0", 30)));
  const second = await Promise.all(ids.map((id) => inRollout(id, "2.1.0", 30)));
  assert.ok(first.some((x, i) => x !== second[i]));
});

Deno.test("verifyManifest() refuses artifact paths that are URLs, encoded or traversing", async () => {
  const k = await keys();
  for (
    const path of [
      "https://evil.example/outpost",
      "//evil.example/outpost",
      "%2e%2e/%2e%2e/etc/passwd",
      "artifacts/%2E%2E/x",
      "artifacts/./x",
      "artifacts\\..\\x",
      "/etc/passwd",
      "artifacts//x",
    ]
  ) {
    const m = await signManifest(
      signed({
        targets: { [T]: { path, sha256: "a".repeat(64), length: 1, hardware: ["generic"] } },
      }),
      [k.old],
    );
    assert.equal(
      await refusal(verifyManifest(m, { trustedKeys: k.trustOld, now: NOW })),
      "manifest-malformed",
      path,
    );
  }
});

Deno.test("verifyManifest() refuses a counter seen before with other content", async () => {
  const k = await keys();
  const { signedDigest } = await import("./manifest.ts");
  const first = await signManifest(signed({ counter: 5 }), [k.old]);
  const lastDigest = await signedDigest(first.signed);
  const ctx = { trustedKeys: k.trustOld, lastCounter: 5, lastDigest, now: NOW };
  await verifyManifest(first, ctx);
  const other = await signManifest(signed({ counter: 5, version: "1.3.0" }), [k.old]);
  assert.equal(await refusal(verifyManifest(other, ctx)), "counter-replayed");
});

Deno.test("verifyManifest() requires hardware classes on every target", async () => {
  const k = await keys();
  const m = await signManifest(signed(), [k.old]);
  delete (m.signed.targets[T] as { hardware?: string[] }).hardware;
  const again = await signManifest(m.signed, [k.old]);
  await assert.rejects(
    verifyManifest(again, { trustedKeys: k.trustOld, now: NOW }),
    /targets\.x86_64-unknown-linux-gnu\.hardware: expected a list of hardware classes/,
  );
});
