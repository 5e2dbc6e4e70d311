import assert from "node:assert/strict";
import { generateToken, secretEquals, SESSION_MAX_AGE_SECONDS } from "../common/http/mod.ts";
import { createLogger } from "../log.ts";
import {
  ensureTokenFile,
  readTokenFile,
  rotateTokenFile,
  TokenFileError,
  tokenPath,
  TokenStore,
} from "./token.ts";

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-token-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A logger that keeps its lines in its ring only. */
function quietLog() {
  const log = createLogger({ level: "debug", sink: () => {} });
  return { log, lines: () => log.recent() };
}

Deno.test("tokenPath() is http.tokenFile, else http-token next to the buffer file", () => {
  const at = (path: string, tokenFile?: string) =>
    tokenPath({ buffer: { path }, http: { tokenFile } });
  assert.equal(at("data/buffer.db"), "data/http-token");
  assert.equal(at("/var/lib/outpost/buffer.db"), "/var/lib/outpost/http-token");
  assert.equal(at("buffer.db"), "http-token");
  assert.equal(at("/buffer.db"), "/http-token");
  assert.equal(at("data/buffer.db", "/etc/outpost/token"), "/etc/outpost/token");
});

Deno.test("generateToken() gives 32 random bytes as 43 base64url characters, never twice the same", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const t = generateToken();
    assert.match(t, /^[A-Za-z0-9_-]{43}$/);
    seen.add(t);
  }
  assert.equal(seen.size, 1000);
});

Deno.test("ensureTokenFile() creates the file once with mode 0600 (directory too) and then keeps it", async () => {
  await withDir((dir) => {
    const path = `${dir}/new/sub/http-token`;
    const first = ensureTokenFile(path);
    assert.equal(first.created, true);
    assert.match(first.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal(Deno.readTextFileSync(path), first.token + "\n");
    const again = ensureTokenFile(path);
    assert.deepEqual(again, { token: first.token, created: false });
    // No temp files left behind.
    assert.deepEqual([...Deno.readDirSync(`${dir}/new/sub`)].map((e) => e.name), ["http-token"]);
  });
});

Deno.test("a token file readable by others is tightened to 0600 with a warning; a bad one is refused, not replaced", async () => {
  await withDir((dir) => {
    const path = `${dir}/http-token`;
    Deno.writeTextFileSync(path, "an-operator-chosen-token-1234\n", { mode: 0o644 });
    Deno.chmodSync(path, 0o644);
    const r = quietLog();
    assert.deepEqual(ensureTokenFile(path, r.log), {
      token: "an-operator-chosen-token-1234",
      created: false,
    });
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.ok(r.lines().some((l) => l.level === "warn" && /mode to 0600/.test(l.msg)));

    for (const bad of ["", "\n", "short", "has a space in it somewhere"]) {
      Deno.writeTextFileSync(path, bad);
      assert.throws(() => ensureTokenFile(path), TokenFileError);
      assert.equal(Deno.readTextFileSync(path), bad, "the operator's file is left alone");
    }
    assert.throws(() => readTokenFile(`${dir}/missing`), /Cannot read token file .*no such file/);
  });
});

Deno.test("rotateTokenFile() replaces the token atomically, mode 0600", async () => {
  await withDir((dir) => {
    const path = `${dir}/http-token`;
    const { token } = ensureTokenFile(path);
    const ino = Deno.statSync(path).ino;
    const next = rotateTokenFile(path);
    assert.notEqual(next, token);
    assert.equal(readTokenFile(path), next);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.notEqual(Deno.statSync(path).ino, ino, "a new file renamed over the old one");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["http-token"]);
  });
});

Deno.test({
  name:
    "rotateTokenFile() run as root keeps the owner of the file so the gateway's user can read it",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await withDir((dir) => {
      const path = `${dir}/http-token`;
      ensureTokenFile(path);
      Deno.chownSync(path, 65534, 65534);
      rotateTokenFile(path);
      const st = Deno.statSync(path);
      assert.equal(st.uid, 65534);
      assert.equal(st.gid, 65534);
    });
  },
});

Deno.test("secretEquals() compares by value whatever the lengths", () => {
  assert.equal(secretEquals("abc", "abc"), true);
  assert.equal(secretEquals("abc", "abd"), false);
  assert.equal(secretEquals("abc", "abcd"), false);
  assert.equal(secretEquals("", "x".repeat(10_000)), false);
});

Deno.test("TokenStore notices a rotation on the next check: the new token works, the old one is refused", async () => {
  await withDir((dir) => {
    const path = `${dir}/http-token`;
    const r = quietLog();
    const { store, created } = TokenStore.open(path, r.log);
    assert.equal(created, true);
    const old = readTokenFile(path);
    assert.equal(store.verify(old), true);
    assert.equal(store.verify(old + "x"), false);
    assert.equal(store.verify(""), false);
    const next = rotateTokenFile(path);
    assert.equal(store.verify(old), false);
    assert.equal(store.verify(next), true);
    assert.ok(r.lines().some((l) => /access token changed/.test(l.msg)));
    // The log never carries a token.
    assert.ok(!JSON.stringify(r.lines()).includes(old));
    assert.ok(!JSON.stringify(r.lines()).includes(next));

    // A file that breaks keeps the last good token in use, with one error logged.
    Deno.writeTextFileSync(path, "");
    assert.equal(store.verify(next), true);
    assert.equal(store.verify(next), true);
    assert.equal(r.lines().filter((l) => l.level === "error").length, 1);
    Deno.removeSync(path);
    assert.equal(store.verify(next), true);
  });
});

Deno.test("sessions carry an HMAC of their expiry: refused when expired, tampered or after a rotation", async () => {
  await withDir((dir) => {
    const path = `${dir}/http-token`;
    const { store } = TokenStore.open(path);
    const token = readTokenFile(path);
    const now = Date.now();
    const session = store.newSession(now);
    assert.ok(!session.includes(token), "the session does not reveal the token");
    assert.equal(store.verifySession(session, now), true);
    assert.equal(store.verifySession(session, now + (SESSION_MAX_AGE_SECONDS - 5) * 1000), true);
    assert.equal(store.verifySession(session, now + (SESSION_MAX_AGE_SECONDS + 1) * 1000), false);
    const [exp, mac] = session.split(".");
    assert.equal(store.verifySession(`${Number(exp) + 3600}.${mac}`, now), false, "longer expiry");
    const flipped = mac.slice(0, -1) + (mac.endsWith("A") ? "B" : "A");
    assert.equal(store.verifySession(`${exp}.${flipped}`, now), false);
    assert.equal(store.verifySession("garbage", now), false);
    assert.equal(store.verifySession(token, now), false, "the token is not a session");
    rotateTokenFile(path);
    assert.equal(store.verifySession(session, now), false);
  });
});

Deno.test("endSessions() ends every session, also for a store opened later on the same file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/http-token`;
    const { store } = TokenStore.open(path);
    const a = store.newSession();
    const b = store.newSession();
    assert.equal(Deno.statSync(`${path}.sessions`).mode! & 0o777, 0o600);
    assert.equal(TokenStore.open(path).store.verifySession(a), true, "kept across a restart");
    store.endSessions();
    assert.equal(store.verifySession(a), false);
    assert.equal(store.verifySession(b), false);
    assert.equal(
      TokenStore.open(path).store.verifySession(a),
      false,
      "still ended after a restart",
    );
    assert.equal(store.verifySession(store.newSession()), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
