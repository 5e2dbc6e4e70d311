import assert from "node:assert/strict";
import { SITE_YAML, verdictWith } from "../../test/helpers/doctor_tree.ts";

const SITE = "/etc/outpost/site.yaml";

Deno.test("credentials.defaults passes with a random token and secrets from the environment", () => {
  const c = verdictWith("credentials.defaults");
  assert.equal(c.verdict, "pass");
  assert.match(c.reason, /access token \/var\/lib\/outpost\/http-token usable/);
});

Deno.test("credentials.defaults fails for a vendor default password and a short one", () => {
  const admin = verdictWith("credentials.defaults", {
    [SITE]: { text: SITE_YAML.replace("${MQTT_PASSWORD}", "admin"), mode: 0o600 },
  });
  assert.equal(admin.verdict, "fail");
  assert.match(admin.reason, /uplink\.password is a well-known default password/);
  const short = verdictWith("credentials.defaults", {
    "/etc/outpost/outpost.env": { text: "MQTT_PASSWORD=x7Qk\n", mode: 0o600 },
  });
  assert.equal(short.verdict, "fail");
  assert.match(short.reason, /uplink\.password is shorter than 8 characters/);
});

Deno.test("credentials.defaults fails for a token file that holds no usable token", () => {
  const c = verdictWith("credentials.defaults", {
    "/var/lib/outpost/http-token": { text: "changeme\n", mode: 0o600 },
  });
  assert.equal(c.verdict, "fail");
  assert.match(c.reason, /http-token.*at least 16/);
  assert.match(c.fix!, /outpost token rotate/);
});

Deno.test("credentials.defaults fails for credentials in a rule action's URL", () => {
  const c = verdictWith("credentials.defaults", {
    [SITE]: {
      text: SITE_YAML + `rules:
  - name: hot
    when: { device: boiler, metric: temp, above: 80 }
    actions:
      - webhook: { url: "https://ops:hunter2secret@alerts.example.com/hook" }
`,
      mode: 0o600,
    },
  });
  assert.equal(c.verdict, "fail", c.reason);
  assert.match(c.reason, /rules\[0\]\.actions\[0\]\.webhook\.url: credentials in the URL/);
  assert.doesNotMatch(c.reason, /hunter2secret/);
});
