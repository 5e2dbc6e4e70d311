import assert from "node:assert/strict";
import { verdictWith } from "../../test/helpers/doctor_tree.ts";

const SYNCED = "/run/systemd/timesync/synchronized";

Deno.test("time.sync passes when timesyncd has synchronised, or chronyd or ntpd runs", () => {
  assert.match(verdictWith("time.sync").reason, /systemd-timesyncd synchronised/);
  const chrony = verdictWith("time.sync", {
    [SYNCED]: undefined,
    "/run/chrony/chronyd.pid": "812\n",
  });
  assert.equal(chrony.verdict, "pass");
  assert.match(chrony.reason, /chronyd runs/);
  const ntp = verdictWith("time.sync", { [SYNCED]: undefined, "/run/ntpd.pid": "99\n" });
  assert.equal(ntp.verdict, "pass");
});

Deno.test("time.sync warns while timesyncd has not synchronised yet", () => {
  const c = verdictWith("time.sync", { [SYNCED]: undefined, "/run/systemd/timesync/.keep": "" });
  assert.equal(c.verdict, "warn");
  assert.match(c.reason, /not synchronised yet/);
});

Deno.test("time.sync fails without a time service, and for a clock before 2026", () => {
  const none = verdictWith("time.sync", { [SYNCED]: undefined });
  assert.equal(none.verdict, "fail");
  assert.match(none.reason, /no time service found/);
  const c = verdictWith("time.sync", {}, { now: Date.UTC(1970, 0, 1, 0, 5) });
  assert.equal(c.verdict, "fail");
  assert.match(c.reason, /1970-01-01T00:05:00\.000Z.*never synchronised/);
});
