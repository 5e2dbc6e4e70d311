import assert from "node:assert/strict";
import { CHECKS, type DoctorReport } from "../src/doctor/mod.ts";
import { FakeHost } from "./helpers/doctor_tree.ts";
import { runOutpost } from "./helpers/cli.ts";

const VERDICTS = ["pass", "warn", "fail", "skip"];

const outpost = (...args: string[]) => runOutpost(args);

function assertWellFormed(r: DoctorReport): void {
  for (const [id] of CHECKS) {
    const c = r.checks.find((x) => x.id === id);
    assert.ok(c, `check ${id} is in the report`);
    assert.ok(VERDICTS.includes(c.verdict), `${id}: verdict ${c.verdict}`);
    assert.ok(c.reason.length > 0, `${id} gives a reason`);
    if (c.verdict === "fail" || c.verdict === "warn") assert.ok(c.fix, `${id} says how to fix it`);
  }
  const counts = Object.fromEntries(VERDICTS.map((v) => [v, 0]));
  for (const c of r.checks) counts[c.verdict]++;
  assert.deepEqual(r.summary, counts);
  assert.equal(r.ok, counts.fail === 0);
}

Deno.test("outpost doctor --root on a prepared host: every check passes, exit 0", async () => {
  using h = new FakeHost();
  const r = await outpost("doctor", "--root", h.root, "--json");
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as DoctorReport;
  assertWellFormed(report);
  assert.deepEqual(
    report.checks.filter((c) => c.verdict !== "pass").map((c) => c.id),
    [],
  );
  assert.equal(report.root, h.root);
});

Deno.test("outpost doctor prints the failing check with its fix and exits 1", async () => {
  using h = new FakeHost({
    "/proc/sys/net/ipv4/ip_forward": "1\n",
    "/etc/ssh/sshd_config.d/10-outpost.conf": "PermitRootLogin yes\n",
  });
  const r = await outpost("doctor", "--root", h.root);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(
    r.stdout,
    /^FAIL {2}forwarding\.ipv4 .*\n.*ip_forward is 1: .*\n.*fix: .*sysctl\.d/m,
  );
  assert.match(r.stdout, /^FAIL {2}ssh\.passwords /m);
  assert.match(r.stdout, /^FAIL {2}ssh\.root-login /m);
  assert.match(r.stdout, /^PASS {2}storage\.encryption /m);
  assert.match(r.stdout, /\n\d+ pass, 0 warn, 4 fail, 0 skip \(files read under /);
});

Deno.test("outpost doctor refuses a --root that is not a directory (exit 2)", async () => {
  const r = await outpost("doctor", "--root", "/nonexistent/root");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--root: cannot use "\/nonexistent\/root"/);
});

Deno.test("outpost doctor on this machine gives a well-formed report with a verdict per check", async () => {
  const r = await outpost("doctor", "--json");
  assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as DoctorReport;
  assertWellFormed(report);
  assert.equal(report.root, "/");
  assert.equal(r.code, report.ok ? 0 : 1);
  const text = await outpost("doctor");
  assert.equal(text.code, r.code);
  assert.match(text.stdout, /\n\d+ pass, \d+ warn, \d+ fail, \d+ skip\n$/);
});
