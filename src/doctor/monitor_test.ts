import assert from "node:assert/strict";
import { FakeHost } from "../../test/helpers/doctor_tree.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { createLogger } from "../log.ts";
import { DoctorMonitor } from "./monitor.ts";

Deno.test("DoctorMonitor runs at once and again on its interval, logging when the failing set changes", async () => {
  using h = new FakeHost();
  const { ctx } = h.context();
  const lines: string[] = [];
  const log = createLogger({ sink: (line) => lines.push(line), syslogPrefix: false });
  const m = new DoctorMonitor({
    root: h.root,
    configPath: "/etc/outpost/site.yaml",
    config: () => ctx.config!,
    adapters: {},
    log: log.child("doctor"),
    intervalMs: 50,
  });
  try {
    assert.equal(m.report()?.ok, true, "the first run is done when the constructor returns");
    assert.deepEqual(m.summary()?.failing, []);
    h.write("/proc/sys/net/ipv4/ip_forward", "1\n");
    await waitFor(
      "the next run to see forwarding on",
      () => Promise.resolve(m.summary()?.failing.includes("forwarding.ipv4")),
      5000,
      20,
    );
    const first = m.report()!.at;
    await waitFor("another run", () => Promise.resolve(m.report()!.at > first), 5000, 20);
    const warned = lines.filter((l) => /host checklist: failing forwarding\.ipv4/.test(l));
    assert.equal(warned.length, 1, "logged once, not at every run");
    assert.equal(lines.filter((l) => /host checklist: nothing fails/.test(l)).length, 1);
  } finally {
    m.close();
  }
});
