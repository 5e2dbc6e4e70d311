import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  isSecretKey,
  redactConfigText,
  REDACTED,
  redactText,
  redactValue,
  rememberSecret,
  rememberSecretsIn,
} from "./redact.ts";

Deno.test("isSecretKey() knows secret-named keys and leaves paths and public keys alone", () => {
  for (const k of ["password", "token", "privateKey", "private_key", "X-Api-Key", "secret"]) {
    assert.ok(isSecretKey(k), k);
  }
  for (const k of ["tokenFile", "key", "keyid", "operatorKeys", "trustedKeys", "url", "cert"]) {
    assert.ok(!isSecretKey(k), k);
  }
});

Deno.test("redactText() masks URL credentials, secret query parameters and bearer tokens", () => {
  assert.equal(
    redactText('Cannot connect to broker "mqtts://plant:s3cr3t-pw@broker.lan:8883": refused'),
    `Cannot connect to broker "mqtts://plant:${REDACTED}@broker.lan:8883": refused`,
  );
  assert.equal(redactText("https://ghp_abcdef@host/x"), `https://${REDACTED}@host/x`);
  assert.equal(
    redactText("POST https://hooks.example/a?token=abc123&room=5&api_key=zz"),
    `POST https://hooks.example/a?token=${REDACTED}&room=5&api_key=${REDACTED}`,
  );
  assert.equal(redactText("Authorization: Bearer abcdefgh12"), `Authorization: Bearer ${REDACTED}`);
  assert.equal(redactText('{"password":"hunter22"}'), `{"password":"${REDACTED}"}`);
  assert.equal(redactText("password=${ENV_PW} tokenFile=/x"), "password=${ENV_PW} tokenFile=/x");
  assert.equal(redactText("no secrets at mqtt://host:1883"), "no secrets at mqtt://host:1883");
});

Deno.test("redactText() replaces remembered secrets wherever they appear", () => {
  const secret = `planted-${crypto.randomUUID()}`;
  rememberSecret(secret);
  rememberSecret("abc"); // too short to search for
  assert.equal(redactText(`lib said: auth ${secret} failed`), `lib said: auth ${REDACTED} failed`);
  assert.equal(redactText("abc"), "abc");
});

Deno.test("rememberSecretsIn() finds secret-keyed values and URL passwords in a config", () => {
  const pw = `pw-${crypto.randomUUID()}`;
  const tok = `tok-${crypto.randomUUID()}`;
  const urlPw = `u${crypto.randomUUID().slice(0, 8)}`;
  rememberSecretsIn({
    uplink: { password: pw, url: "mqtt://h:1883" },
    adapters: [{ config: { tokens: [{ token: tok, name: "plc" }] } }],
    rules: [{ actions: [{ mqtt: { url: `mqtt://u:${urlPw}@h:1` } }] }],
  });
  assert.equal(redactText(`${pw} ${tok} ${urlPw} plc`), `${REDACTED} ${REDACTED} ${REDACTED} plc`);
  rememberSecretsIn({ tokens: [{ token: tok, name: "esp-boards", devices: ["pump-station-1"] }] });
  assert.equal(
    redactText("esp-boards posted for pump-station-1"),
    "esp-boards posted for pump-station-1",
    "labels and device ids beside a token are not secrets",
  );
});

Deno.test("redactValue() masks secret keys at any depth, text everywhere, and copies skipped keys", () => {
  const v = {
    uplink: { target: "mqtt://u:p4ssw0rd@h:1883", lastError: "x" },
    headers: { "X-Api-Key": "k-123456", Accept: "json" },
    tokens: ["aaaaaaaa", "bbbbbbbb"],
    devices: { d: { note: "mqtt://u:keep@h" } },
    n: 3,
  };
  const r = redactValue(v, { skip: ["devices"] });
  assert.deepEqual(r, {
    uplink: { target: `mqtt://u:${REDACTED}@h:1883`, lastError: "x" },
    headers: { "X-Api-Key": REDACTED, Accept: "json" },
    tokens: [REDACTED, REDACTED],
    devices: { d: { note: "mqtt://u:keep@h" } },
    n: 3,
  });
  assert.equal(v.uplink.target, "mqtt://u:p4ssw0rd@h:1883", "the original is untouched");
});

Deno.test("redactConfigText() masks inline secrets, keeps ${…} references and stays YAML", () => {
  const yaml = `uplink:
  type: mqtt
  url: mqtts://plant:inline-pw@broker:8883
  username: plant
  password: hunter2-inline # rotate yearly
adapters:
  - type: http
    name: ingest
    tokens:
      - token: "0123456789abcdef-inline"
      - { token: fedcba9876543210-flow, devices: [a, b] }
      - token: \${INGEST_TOKEN}
    privateKey: |
      -----BEGIN PRIVATE KEY-----
      MC4CAQAwBQYDK2VwBCIEIblock-secret
      -----END PRIVATE KEY-----
    path: /after
`;
  const out = redactConfigText(yaml);
  for (
    const s of [
      "inline-pw",
      "hunter2-inline",
      "0123456789abcdef-inline",
      "fedcba9876543210",
      "block-secret",
      "PRIVATE KEY",
    ]
  ) {
    assert.ok(!out.includes(s), `${s} in:\n${out}`);
  }
  assert.match(out, /token: \$\{INGEST_TOKEN\}/);
  assert.match(out, /username: plant/);
  assert.match(out, /# rotate yearly/);
  const doc = parse(out);
  assert.equal(doc.uplink.password, REDACTED);
  assert.deepEqual(doc.adapters[0].tokens[1], { token: REDACTED, devices: ["a", "b"] });
  assert.equal(doc.adapters[0].privateKey, REDACTED);
  assert.equal(doc.adapters[0].path, "/after", "the lines after a masked block stay");
  assert.equal(out.split("\n").length, yaml.split("\n").length, "line numbers stay");
});
