import assert from "node:assert/strict";
import {
  procNetTcp,
  tcpLine,
  V4_ANY,
  V4_LOOPBACK,
  V6_ANY,
  V6_LOOPBACK,
  verdictWith,
} from "../../test/helpers/doctor_tree.ts";
import { parseProcNetTcp } from "./network.ts";

Deno.test("forwarding.ipv4 passes at 0 and fails at 1 with the sysctl fix", () => {
  assert.equal(verdictWith("forwarding.ipv4").verdict, "pass");
  const c = verdictWith("forwarding.ipv4", { "/proc/sys/net/ipv4/ip_forward": "1\n" });
  assert.equal(c.verdict, "fail");
  assert.match(c.reason, /ip_forward is 1/);
  assert.match(c.fix!, /sysctl\.d/);
});

Deno.test("forwarding.ipv6 passes at 0 or without IPv6, fails at 1", () => {
  assert.equal(verdictWith("forwarding.ipv6").verdict, "pass");
  assert.equal(
    verdictWith("forwarding.ipv6", { "/proc/sys/net/ipv6/conf/all/forwarding": undefined })
      .verdict,
    "pass",
  );
  const c = verdictWith("forwarding.ipv6", { "/proc/sys/net/ipv6/conf/all/forwarding": "1\n" });
  assert.equal(c.verdict, "fail");
  assert.match(c.reason, /conf\/all\/forwarding is 1/);
});

Deno.test("parseProcNetTcp() decodes listening IPv4 and IPv6 sockets only", () => {
  const v4 = parseProcNetTcp(
    procNetTcp(
      tcpLine(V4_LOOPBACK, 8787),
      tcpLine("0A00A8C0", 502),
      tcpLine(V4_ANY, 23).replace(" 0A ", " 01 "),
    ),
    false,
  );
  assert.deepEqual(v4.map((l) => [l.address, l.port, l.wildcard, l.loopback]), [
    ["127.0.0.1", 8787, false, true],
    ["192.168.0.10", 502, false, false],
  ]);
  const v6 = parseProcNetTcp(
    procNetTcp(
      tcpLine(V6_ANY, 80),
      tcpLine(V6_LOOPBACK, 631),
      tcpLine("0000000000000000FFFF00000100007F", 8080),
      tcpLine("B80D0120000000000000000001000000", 1883),
    ),
    true,
  );
  assert.deepEqual(v6.map((l) => [l.address, l.port, l.wildcard]), [
    ["::", 80, true],
    ["::1", 631, false],
    ["::ffff:127.0.0.1", 8080, false],
    ["2001:db8::1", 1883, false],
  ]);
});

Deno.test("network.listeners passes with loopback, sshd and the gateway's own wildcard listener", () => {
  const own = verdictWith("network.listeners", {
    "/etc/outpost/site.yaml": {
      text: "gateway: { id: gw }\nhttp: { listen: 0.0.0.0:8787, allowInsecure: true }\n",
      mode: 0o600,
    },
    "/proc/net/tcp": procNetTcp(tcpLine(V4_ANY, 8787), tcpLine(V4_ANY, 22)),
  });
  assert.equal(own.verdict, "pass", own.reason);
});

Deno.test("network.listeners fails on telnet and FTP anywhere and HTTP on a wildcard address", () => {
  const telnet = verdictWith("network.listeners", {
    "/proc/net/tcp": procNetTcp(tcpLine("0A00A8C0", 23)),
  });
  assert.equal(telnet.verdict, "fail");
  assert.match(telnet.reason, /192\.168\.0\.10:23 \(telnet\)/);
  const ftp = verdictWith("network.listeners", {
    "/proc/net/tcp": procNetTcp(tcpLine(V4_ANY, 21)),
  });
  assert.equal(ftp.verdict, "fail");
  assert.match(ftp.reason, /0\.0\.0\.0:21 \(ftp\)/);
  const http = verdictWith("network.listeners", {
    "/proc/net/tcp6": procNetTcp(tcpLine(V6_ANY, 80)),
  });
  assert.equal(http.verdict, "fail");
  assert.match(http.reason, /\[::\]:80 \(http\)/);
  assert.match(http.fix!, /systemctl disable --now/);
  // HTTP bound to one interface is not an embedded server on every network.
  assert.equal(
    verdictWith("network.listeners", {
      "/proc/net/tcp": procNetTcp(tcpLine("0A00A8C0", 8080)),
    }).verdict,
    "pass",
  );
});

Deno.test("network.listeners warns about another service on every address, naming the port", () => {
  const c = verdictWith("network.listeners", {
    "/proc/net/tcp": procNetTcp(tcpLine(V4_ANY, 1883), tcpLine(V4_LOOPBACK, 8787)),
  });
  assert.equal(c.verdict, "warn");
  assert.match(c.reason, /0\.0\.0\.0:1883 \(mqtt\)/);
});
