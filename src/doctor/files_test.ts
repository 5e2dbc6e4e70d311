import assert from "node:assert/strict";
import { SITE_YAML, verdictWith } from "../../test/helpers/doctor_tree.ts";

Deno.test("files.secrets passes when config, token, env file and TLS key are 0600", () => {
  const c = verdictWith("files.secrets");
  assert.equal(c.verdict, "pass");
  for (const f of ["site.yaml", "outpost.env", "http-token", "client.key"]) {
    assert.match(c.reason, new RegExp(`${f} 0600`));
  }
});

Deno.test("files.secrets fails for a key others can read, naming the file, mode and chmod", () => {
  const c = verdictWith("files.secrets", {
    "/etc/outpost/tls/client.key": { text: "-----BEGIN PRIVATE KEY-----\n", mode: 0o644 },
  });
  assert.equal(c.verdict, "fail");
  assert.match(
    c.reason,
    /uplink\.tls\.key \/etc\/outpost\/tls\/client\.key is mode 0644 \(group and others/,
  );
  assert.match(c.fix!, /chmod 600 \/etc\/outpost\/tls\/client\.key/);
});

Deno.test("files.secrets checks ${file:} secrets and the token file (group bits too)", () => {
  const c = verdictWith("files.secrets", {
    "/etc/outpost/site.yaml": {
      text: SITE_YAML.replace("${MQTT_PASSWORD}", "${file:/etc/outpost/mqtt-password}"),
      mode: 0o600,
    },
    "/etc/outpost/mqtt-password": { text: "Zq3v9LrT2pX8wY4k\n", mode: 0o640 },
    "/var/lib/outpost/http-token": {
      text: "kY3w9q2ZxP0vB7nR4tL8mC1sD6fH5jG2aE9uW3oI0yQ\n",
      mode: 0o604,
    },
  });
  assert.equal(c.verdict, "fail");
  assert.match(
    c.reason,
    /\$\{file:\} secret \/etc\/outpost\/mqtt-password is mode 0640 \(group may/,
  );
  assert.match(c.reason, /http-token is mode 0604 \(others may/);
});

Deno.test("files.secrets warns about a referenced key that is missing", () => {
  const c = verdictWith("files.secrets", {
    "/etc/outpost/site.yaml": {
      text: SITE_YAML.replace(
        "http: { listen: 127.0.0.1:8787 }",
        "http: { listen: 127.0.0.1:8787, tls: { cert: /etc/outpost/tls/web.pem, " +
          "key: /etc/outpost/tls/web.key } }",
      ),
      mode: 0o600,
    },
  });
  assert.equal(c.verdict, "warn", c.reason);
  assert.match(c.reason, /http\.tls\.key \/etc\/outpost\/tls\/web\.key/);
});
