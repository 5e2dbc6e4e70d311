/**
 * The shipped unit (config/systemd/outpost.service) keeps its least-privilege settings: a
 * dedicated user, no capabilities, a read-only system with writable state only where the gateway
 * and its self-update guard need it, and the sandbox directives. With systemd-analyze on the
 * machine, the unit also verifies and its exposure score stays low.
 */
import assert from "node:assert/strict";

const UNIT = new URL("../config/systemd/outpost.service", import.meta.url).pathname;

/** The [Service] section: each key with every value it is given, in order. */
function serviceSection(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = head[1];
      continue;
    }
    if (section !== "Service") continue;
    const i = line.indexOf("=");
    assert.ok(i > 0, `not a key=value line: ${line}`);
    const key = line.slice(0, i);
    out.set(key, [...(out.get(key) ?? []), line.slice(i + 1)]);
  }
  return out;
}

function analyzeAvailable(): boolean {
  try {
    new Deno.Command("systemd-analyze", { args: ["--version"], stdout: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
}

Deno.test("the unit runs as user outpost without capabilities, in a sandbox", () => {
  const s = serviceSection(Deno.readTextFileSync(UNIT));
  const one = (key: string) => {
    const v = s.get(key);
    assert.ok(v, `${key}= is missing`);
    return v[v.length - 1];
  };
  assert.equal(one("User"), "outpost");
  assert.equal(one("Group"), "outpost");
  assert.equal(one("SupplementaryGroups"), "dialout");
  const expected: Record<string, string> = {
    NoNewPrivileges: "yes",
    CapabilityBoundingSet: "",
    AmbientCapabilities: "",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateMounts: "yes",
    RemoveIPC: "yes",
    ProtectKernelTunables: "yes",
    ProtectKernelModules: "yes",
    ProtectKernelLogs: "yes",
    ProtectControlGroups: "yes",
    ProtectClock: "yes",
    ProtectHostname: "yes",
    ProtectProc: "invisible",
    RestrictNamespaces: "yes",
    RestrictRealtime: "yes",
    RestrictSUIDSGID: "yes",
    LockPersonality: "yes",
    SystemCallArchitectures: "native",
    SystemCallErrorNumber: "EPERM",
    DevicePolicy: "closed",
    UMask: "0077",
    StateDirectory: "outpost",
    StateDirectoryMode: "0700",
  };
  for (const [key, value] of Object.entries(expected)) assert.equal(one(key), value, key);
  assert.deepEqual(s.get("SystemCallFilter"), ["@system-service", "~@privileged @resources"]);
  assert.deepEqual(
    one("RestrictAddressFamilies").split(/\s+/).sort(),
    ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"],
  );
  // Writable: the install root (slots, current, state.json, the guard's trial-boots) and the
  // config directory (config-set); nothing else beyond StateDirectory=.
  assert.deepEqual(one("ReadWritePaths").split(/\s+/), ["/opt/outpost", "/etc/outpost"]);
  const guard = /^(\S+outpost-guard\.sh) (\S+)$/.exec(one("ExecStartPre"));
  assert.ok(guard, "the self-update guard runs before every start");
  assert.equal(guard[2], "/opt/outpost", "the guard works in the writable install root");
  assert.ok(!/^[+!]/.test(one("ExecStartPre")), "the guard runs unprivileged, in the sandbox");
  assert.ok(one("ExecStart").startsWith("/opt/outpost/current/outpost run "));
  // Serial devices only, besides what DevicePolicy=closed always allows.
  for (const d of s.get("DeviceAllow") ?? []) {
    assert.match(d, /^char-tty(USB|ACM|AMA|S) rw$|^char-pts rw$/);
  }
  for (const absent of ["MemoryDenyWriteExecute", "PrivateDevices", "PrivateUsers"]) {
    assert.equal(s.get(absent), undefined, `${absent}= would break the JIT or serial ports`);
  }
});

Deno.test({
  name: "systemd-analyze verifies the unit and rates its exposure at most 2.0",
  ignore: !analyzeAvailable(),
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-unit-" });
  try {
    // verify checks that the commands exist; on this machine they are not installed.
    const unit = `${dir}/outpost.service`;
    await Deno.writeTextFile(
      unit,
      (await Deno.readTextFile(UNIT)).replace(/^(ExecStart(?:Pre)?=)\S+.*$/gm, "$1/bin/true"),
    );
    const verify = await new Deno.Command("systemd-analyze", {
      args: ["verify", unit],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(verify.stderr) + new TextDecoder().decode(verify.stdout);
    assert.equal(verify.code, 0, said);
    assert.equal(said.trim(), "", "verify has nothing to say");
    const security = await new Deno.Command("systemd-analyze", {
      args: ["security", "--offline=yes", "--no-pager", UNIT],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(security.stdout);
    const m = /Overall exposure level for outpost\.service: (\d+\.\d+)/.exec(text);
    assert.ok(m, text);
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}:\n${text}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const GUARD = new URL("../config/systemd/outpost-guard.sh", import.meta.url).pathname;

function canDropToNobody(): boolean {
  if (Deno.uid() !== 0) return false;
  try {
    new Deno.Command("setpriv", { args: ["--version"], stdout: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "the self-update guard works as the unit runs it: an unprivileged user, UMask=0077, no new privileges",
  ignore: !canDropToNobody(),
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "outpost-guard-unit-" });
  try {
    await Deno.mkdir(`${root}/slots/a`, { recursive: true });
    await Deno.mkdir(`${root}/slots/b`);
    await Deno.symlink("slots/b", `${root}/current`);
    await Deno.writeTextFile(`${root}/state.json`, '{"phase": "trial"}\n');
    await Deno.writeTextFile(`${root}/trial.env`, "PREVIOUS_SLOT=a\nMAX_ATTEMPTS=2\n");
    await new Deno.Command("chown", { args: ["-R", "nobody:nogroup", root] }).output();
    await Deno.chmod(root, 0o700);
    const start = () =>
      new Deno.Command("setpriv", {
        args: [
          "--reuid=nobody",
          "--regid=nogroup",
          "--clear-groups",
          "--no-new-privs",
          "sh",
          "-c",
          `umask 0077; exec sh ${GUARD} ${root}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const first = await start();
    assert.equal(first.code, 0, new TextDecoder().decode(first.stderr));
    assert.equal(await Deno.readLink(`${root}/current`), "slots/b", "one start: still on trial");
    assert.equal((await Deno.stat(`${root}/trial-boots`)).mode! & 0o777, 0o600);
    const second = await start();
    assert.equal(second.code, 0);
    assert.match(new TextDecoder().decode(second.stderr), /restored slots\/a/);
    assert.equal(await Deno.readLink(`${root}/current`), "slots/a");
    assert.equal(
      (await Deno.lstat(`${root}/current`)).uid,
      (await Deno.stat(`${root}/state.json`)).uid,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
