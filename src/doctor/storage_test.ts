import assert from "node:assert/strict";
import { verdictWith } from "../../test/helpers/doctor_tree.ts";
import { mountOf, parseMountinfo } from "./storage.ts";

const MOUNTS = "/proc/self/mountinfo";
const ROOT_ONLY = "21 1 179:2 / / rw,noatime - ext4 /dev/mmcblk0p2 rw\n";

Deno.test("parseMountinfo() and mountOf() find the deepest mount, octal escapes undone", () => {
  const m = parseMountinfo(
    "21 1 179:2 / / rw - ext4 /dev/root rw\n" +
      "30 21 254:0 / /mnt/my\\040data rw shared:1 - ext4 /dev/mapper/x rw\n" +
      "31 21 254:1 / /mnt/my\\040data rw - ext4 /dev/mapper/y rw\n",
  );
  assert.equal(m[1].mountPoint, "/mnt/my data");
  assert.equal(mountOf(m, "/mnt/my data/buffer.db")?.dev, "254:1");
  assert.equal(mountOf(m, "/mnt/my database")?.dev, "179:2");
});

Deno.test("storage.encryption passes when the buffer and keys are on a LUKS mapping", () => {
  const c = verdictWith("storage.encryption");
  assert.equal(c.verdict, "pass");
  assert.match(
    c.reason,
    /buffer\.db, \/var\/lib\/outpost\/http-token on \/var\/lib\/outpost .*outpost-data \(CRYPT-LUKS2\)/,
  );
  assert.match(c.reason, /outpost\.env, \/etc\/outpost\/tls\/client\.key on \/etc\/outpost/);
});

Deno.test("storage.encryption fails for a plain partition, naming the path and device", () => {
  const c = verdictWith("storage.encryption", { [MOUNTS]: ROOT_ONLY });
  assert.equal(c.verdict, "fail");
  assert.match(
    c.reason,
    /buffer\.db, .* on \/ \(ext4 \/dev\/mmcblk0p2\): mmcblk0p2 \(179:2, not dm-crypt\)/,
  );
  assert.match(c.fix!, /cryptsetup luksFormat/);
});

Deno.test("storage.encryption follows slaves: LVM on LUKS passes, LVM on a plain disk fails", () => {
  const lvm = (below: Record<string, string | undefined>) => ({
    [MOUNTS]: ROOT_ONLY + "30 21 254:1 / /var/lib/outpost rw - ext4 /dev/mapper/vg-data rw\n" +
      "31 21 254:1 /etc /etc/outpost rw - ext4 /dev/mapper/vg-data rw\n",
    "/sys/dev/block/254:1/dm/uuid": "LVM-abcdef\n",
    "/sys/dev/block/254:1/dm/name": "vg-data\n",
    "/sys/dev/block/254:1/slaves/dm-0": "",
    "/sys/class/block/dm-0/dev": "254:0\n",
    ...below,
  });
  const onLuks = verdictWith("storage.encryption", lvm({}));
  assert.equal(onLuks.verdict, "pass", onLuks.reason);
  assert.match(onLuks.reason, /vg-data \(LVM\) on outpost-data \(CRYPT-LUKS2\)/);
  const onPlain = verdictWith(
    "storage.encryption",
    lvm({ "/sys/dev/block/254:0/dm/uuid": undefined }),
  );
  assert.equal(onPlain.verdict, "fail", onPlain.reason);
  assert.match(
    onPlain.reason,
    /vg-data \(LVM\) on outpost-data on mmcblk0p3 \(179:3, not dm-crypt\)/,
  );
});

Deno.test("storage.encryption warns when it cannot see a block device (overlay)", () => {
  const c = verdictWith("storage.encryption", {
    [MOUNTS]: "21 1 0:40 / / rw - overlay overlay rw,lowerdir=/a\n",
  });
  assert.equal(c.verdict, "warn");
  assert.match(c.reason, /overlay.*not a block device/);
});

Deno.test("storage.wear passes below 80 % and with pre-EOL normal", () => {
  const c = verdictWith("storage.wear");
  assert.equal(c.verdict, "pass");
  assert.match(
    c.reason,
    /mmcblk0: life_time 0x01 0x02 \(10–20 % of its life used\), pre_eol_info 0x01 \(normal\)/,
  );
});

Deno.test("storage.wear warns at 80–90 % or pre-EOL warning, fails beyond 90 % or urgent", () => {
  const wear = (life: string, eol: string) =>
    verdictWith("storage.wear", {
      "/sys/block/mmcblk0/device/life_time": life,
      "/sys/block/mmcblk0/device/pre_eol_info": eol,
    });
  assert.equal(wear("0x09 0x02\n", "0x01\n").verdict, "warn");
  assert.equal(wear("0x02 0x03\n", "0x02\n").verdict, "warn");
  const exceeded = wear("0x0b 0x05\n", "0x01\n");
  assert.equal(exceeded.verdict, "fail");
  assert.match(exceeded.reason, /exceeded its rated life/);
  assert.equal(wear("0x01 0x01\n", "0x03\n").verdict, "fail");
});

Deno.test("storage.wear skips when the kernel exposes no eMMC indicators", () => {
  const c = verdictWith("storage.wear", {
    "/sys/block/mmcblk0/device/life_time": undefined,
    "/sys/block/mmcblk0/device/pre_eol_info": undefined,
  });
  assert.equal(c.verdict, "skip");
});
