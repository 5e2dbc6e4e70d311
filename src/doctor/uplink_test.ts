import assert from "node:assert/strict";
import { SITE_YAML, verdictWith } from "../../test/helpers/doctor_tree.ts";

const SITE = "/etc/outpost/site.yaml";
const site = (text: string) => ({ [SITE]: { text, mode: 0o600 } });

Deno.test("uplink.tls passes for mqtts with a CA and mutual TLS, and for https", () => {
  const m = verdictWith("uplink.tls");
  assert.equal(m.verdict, "pass");
  assert.match(m.reason, /mqtts:\/\/broker\.example\.com:8883, certificate verified .* mutual TLS/);
  const h = verdictWith(
    "uplink.tls",
    site("gateway: { id: gw }\nuplink: { type: https, url: https://ingest.example.com/t }\n"),
  );
  assert.equal(h.verdict, "pass", h.reason);
});

Deno.test("uplink.tls fails for plain mqtt:// and for verification turned off", () => {
  const plain = verdictWith(
    "uplink.tls",
    site(SITE_YAML.replace("mqtts://broker.example.com:8883", "mqtt://broker.example.com:1883")),
  );
  assert.equal(plain.verdict, "fail");
  assert.match(plain.reason, /is mqtt:\/\/: readings and credentials cross the network in clear/);
  const unverified = verdictWith(
    "uplink.tls",
    site(
      SITE_YAML.replace(
        "    key: /etc/outpost/tls/client.key\n",
        "    key: /etc/outpost/tls/client.key\n    rejectUnauthorized: false\n",
      ),
    ),
  );
  assert.equal(unverified.verdict, "fail");
  assert.match(unverified.reason, /rejectUnauthorized is false/);
  assert.match(unverified.fix!, /rejectUnauthorized true/);
});

Deno.test("uplink.tls fails when a mutual TLS file is missing or the channel is plain http", () => {
  const missing = verdictWith("uplink.tls", { "/etc/outpost/tls/client.pem": undefined });
  assert.equal(missing.verdict, "fail");
  assert.match(missing.reason, /uplink\.tls\.cert \/etc\/outpost\/tls\/client\.pem does not exist/);
  const channel = verdictWith(
    "uplink.tls",
    site(SITE_YAML + "update: { channel: http://releases.example.com/stable }\n"),
  );
  assert.equal(channel.verdict, "fail", channel.reason);
  assert.match(
    channel.reason,
    /update\.channel http:\/\/releases\.example\.com\/stable is plain http/,
  );
});

Deno.test("uplink.tls skips without an uplink or without a config", () => {
  assert.equal(verdictWith("uplink.tls", site("gateway: { id: gw }\n")).verdict, "skip");
  assert.equal(verdictWith("uplink.tls", { [SITE]: undefined }).verdict, "skip");
});
