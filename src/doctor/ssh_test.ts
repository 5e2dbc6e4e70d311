import assert from "node:assert/strict";
import { verdictWith } from "../../test/helpers/doctor_tree.ts";

const DROP_IN = "/etc/ssh/sshd_config.d/10-outpost.conf";
const MAIN = "/etc/ssh/sshd_config";

Deno.test("ssh.passwords passes when the drop-in, read first, says no (first value wins)", () => {
  const c = verdictWith("ssh.passwords");
  assert.equal(c.verdict, "pass");
  assert.match(c.reason, /10-outpost\.conf:1/);
});

Deno.test("ssh.passwords fails when an earlier file or the default allows passwords", () => {
  const earlier = verdictWith("ssh.passwords", {
    "/etc/ssh/sshd_config.d/05-vendor.conf": "passwordauthentication=yes\n",
  });
  assert.equal(earlier.verdict, "fail");
  assert.match(
    earlier.reason,
    /PasswordAuthentication yes \(\/etc\/ssh\/sshd_config\.d\/05-vendor/,
  );
  assert.match(earlier.fix!, /PasswordAuthentication no/);
  const unset = verdictWith("ssh.passwords", {
    [DROP_IN]: "PermitRootLogin no\n",
    [MAIN]: "Include /etc/ssh/sshd_config.d/*.conf\n",
  });
  assert.equal(unset.verdict, "fail");
  assert.match(unset.reason, /default is yes/);
});

Deno.test("ssh.passwords fails when PAM keyboard-interactive still asks for passwords", () => {
  const c = verdictWith("ssh.passwords", {
    [MAIN]: "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
    [DROP_IN]: "PasswordAuthentication no\n",
  });
  assert.equal(c.verdict, "fail");
  assert.match(c.reason, /UsePAM yes .* keyboard-interactive authentication not set/);
});

Deno.test("ssh.passwords warns when a Match block turns passwords back on", () => {
  const c = verdictWith("ssh.passwords", {
    [MAIN]: "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n" +
      "Match Address 192.168.1.0/24\n  PasswordAuthentication yes\n",
  });
  assert.equal(c.verdict, "warn");
  assert.match(c.reason, /Match Address 192\.168\.1\.0\/24/);
});

Deno.test("ssh.root-login passes at no and prohibit-password (the default), fails at yes", () => {
  assert.equal(verdictWith("ssh.root-login").verdict, "pass");
  const dflt = verdictWith("ssh.root-login", { [DROP_IN]: "PasswordAuthentication no\n" });
  assert.equal(dflt.verdict, "pass");
  assert.match(dflt.reason, /default prohibit-password/);
  const yes = verdictWith("ssh.root-login", {
    [MAIN]: "PermitRootLogin yes\nInclude /etc/ssh/sshd_config.d/*.conf\n",
  });
  assert.equal(yes.verdict, "fail");
  assert.match(yes.reason, /PermitRootLogin yes \(\/etc\/ssh\/sshd_config:1\)/);
});

Deno.test("ssh.source passes with AllowUsers user@host or a Match Address block", () => {
  assert.equal(verdictWith("ssh.source").verdict, "pass");
  const match = verdictWith("ssh.source", {
    [DROP_IN]: "PasswordAuthentication no\nPermitRootLogin no\n" +
      "Match Address *,!10.20.0.5\n  DenyUsers *\n",
  });
  assert.equal(match.verdict, "pass");
  assert.match(match.reason, /Match Address \*,!10\.20\.0\.5/);
});

Deno.test("ssh.source warns when only users are restricted, fails when nothing is", () => {
  const users = verdictWith("ssh.source", {
    [DROP_IN]: "PasswordAuthentication no\nAllowGroups ssh-users\n",
  });
  assert.equal(users.verdict, "warn");
  assert.match(users.reason, /AllowGroups ssh-users .*not the address/);
  const none = verdictWith("ssh.source", { [DROP_IN]: "PasswordAuthentication no\n" });
  assert.equal(none.verdict, "fail");
  assert.match(none.fix!, /AllowUsers admin@JUMPHOST_IP/);
});

Deno.test("ssh checks skip without sshd", () => {
  for (const id of ["ssh.passwords", "ssh.root-login", "ssh.source"]) {
    const c = verdictWith(id, { [MAIN]: undefined, [DROP_IN]: undefined });
    assert.equal(c.verdict, "skip", id);
    assert.match(c.reason, /sshd is not installed/);
  }
});
