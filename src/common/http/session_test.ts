import assert from "node:assert/strict";
import {
  type GenerationStore,
  MemoryToken,
  SESSION_MAX_AGE_SECONDS,
  SessionSigner,
} from "./session.ts";

Deno.test("SessionSigner: a session holds for its lifetime, for its token and generation only", () => {
  const saved: string[] = [];
  const store: GenerationStore = { load: () => saved.at(-1), save: (g) => void saved.push(g) };
  const signer = new SessionSigner(store);
  assert.equal(saved.length, 1, "a new generation is kept");
  const now = 1_700_000_000_000;
  const s = signer.issue("token-a", now);
  assert.equal(signer.check(() => "token-a", s, now + 1000), true);
  assert.equal(signer.check(() => "token-b", s, now + 1000), false, "another token");
  assert.equal(
    signer.check(() => "token-a", s, now + SESSION_MAX_AGE_SECONDS * 1000),
    false,
    "expired",
  );
  assert.equal(signer.check(() => "token-a", s.replace(/.$/, "x"), now), false, "tampered");
  assert.equal(new SessionSigner(store).check(() => "token-a", s, now), true, "same generation");
  signer.renew();
  assert.equal(signer.check(() => "token-a", s, now), false, "renewed");
  assert.equal(saved.length, 2);
});

Deno.test("MemoryToken: endSessions() ends the sessions issued so far", () => {
  const t = new MemoryToken();
  assert.match(t.token, /^[\w-]{43}$/);
  assert.equal(t.verify(t.token), true);
  const s = t.newSession();
  assert.equal(t.verifySession(s), true);
  t.endSessions();
  assert.equal(t.verifySession(s), false);
  assert.equal(t.verifySession(t.newSession()), true);
});
