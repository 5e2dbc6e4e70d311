import assert from "node:assert/strict";
import { verdictWith } from "../../test/helpers/doctor_tree.ts";

const UNIT = "/etc/systemd/system/outpost.service";
const DROP_IN = "/etc/systemd/system/outpost.service.d/override.conf";

Deno.test("service.sandbox passes for the shipped unit", () => {
  const c = verdictWith("service.sandbox");
  assert.equal(c.verdict, "pass", c.reason);
  assert.match(c.reason, /User=outpost, NoNewPrivileges=yes, ProtectSystem=strict/);
});

Deno.test("service.sandbox fails when a drop-in runs it as root or lifts NoNewPrivileges", () => {
  const root = verdictWith("service.sandbox", { [DROP_IN]: "[Service]\nUser=root\n" });
  assert.equal(root.verdict, "fail");
  assert.match(root.reason, /User=root .*override\.conf/);
  const nnp = verdictWith("service.sandbox", { [DROP_IN]: "[Service]\nNoNewPrivileges=no\n" });
  assert.equal(nnp.verdict, "fail");
  assert.match(nnp.reason, /NoNewPrivileges= not yes/);
});

Deno.test("service.sandbox warns for a looser ProtectSystem or no MemoryMax", () => {
  const c = verdictWith("service.sandbox", {
    [DROP_IN]: "[Service]\nProtectSystem=full\nMemoryMax=\n",
  });
  assert.equal(c.verdict, "warn");
  assert.match(c.reason, /ProtectSystem=full \(strict expected\); no MemoryMax=/);
});

Deno.test("service.sandbox warns when the unit is not installed", () => {
  const c = verdictWith("service.sandbox", { [UNIT]: undefined });
  assert.equal(c.verdict, "warn");
  assert.match(c.fix!, /config\/systemd\/outpost\.service/);
});
