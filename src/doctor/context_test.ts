import assert from "node:assert/strict";
import { checkOf, FakeHost, SITE_YAML } from "../../test/helpers/doctor_tree.ts";

const SITE = "/etc/outpost/site.yaml";

Deno.test("a config that does not load fails the config check, and the checks needing it skip", () => {
  using h = new FakeHost({
    [SITE]: { text: "gateway: { id: gw }\nbuffer: { maxRows: -1 }\n", mode: 0o600 },
  });
  const { report } = h.context();
  const c = checkOf(report, "config");
  assert.equal(c.verdict, "fail");
  assert.match(c.reason, /\/etc\/outpost\/site\.yaml:2:\d+ buffer\.maxRows/);
  const tls = checkOf(report, "uplink.tls");
  assert.equal(tls.verdict, "skip");
  assert.match(tls.reason, /did not load/);
  assert.equal(report.ok, false);
});

Deno.test("no config: skipped by default, a failure when --config names a missing file", () => {
  using h = new FakeHost({ [SITE]: undefined });
  assert.equal(checkOf(h.context().report, "config").verdict, "skip");
  const named = checkOf(h.context({ config: "/etc/outpost/other.yaml" }).report, "config");
  assert.equal(named.verdict, "fail");
  assert.match(named.reason, /no config at \/etc\/outpost\/other\.yaml/);
});

Deno.test("${ENV} comes from the unit's environment file, ${NAME:-default} keeps its default", () => {
  using h = new FakeHost({
    [SITE]: {
      text: SITE_YAML.replace("127.0.0.1:8787", '"${LISTEN:-127.0.0.1:8787}"'),
      mode: 0o600,
    },
    "/etc/outpost/outpost.env": { text: "export MQTT_PASSWORD='Zq3v9LrT2pX8wY4k'\n", mode: 0o600 },
  });
  const { ctx, report } = h.context();
  assert.equal(checkOf(report, "config").verdict, "pass");
  assert.equal(ctx.config!.http.listen, "127.0.0.1:8787");
  assert.equal((ctx.config!.uplink as { password: string }).password, "Zq3v9LrT2pX8wY4k");
});

Deno.test("relative config paths point into the unit's WorkingDirectory", () => {
  using h = new FakeHost({
    [SITE]: {
      text: SITE_YAML.replace("/var/lib/outpost/buffer.db", "data/buffer.db"),
      mode: 0o600,
    },
  });
  const { ctx, report } = h.context();
  assert.equal(ctx.workdir, "/var/lib/outpost");
  assert.match(
    checkOf(report, "storage.encryption").reason,
    /\/var\/lib\/outpost\/data\/buffer\.db/,
  );
});
