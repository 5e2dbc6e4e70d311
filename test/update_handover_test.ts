/**
 * Without systemd the updated gateway is one process: after a healthy trial the supervisor stops
 * the trial process and execs the new version in its own pid, instead of staying its parent (a
 * chain of supervisors, each a Deno runtime, growing with every update).
 */
import assert from "node:assert/strict";
import { waitFor } from "./helpers/ports.ts";
import { publish } from "./helpers/update.ts";
import { updateRig } from "./helpers/update_rig.ts";

function children(pid: number): number[] {
  const out: number[] = [];
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    const text = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/children`).trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

Deno.test({
  name:
    "without systemd each update execs the new version in the same process: no chain of supervisors",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const rig = await updateRig("outpost-update-handover-");
  const { a, channel, key, dev } = rig;
  const env = Deno.env.toObject();
  for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) delete env[k];
  const log = await Deno.open(dev.log, { write: true, create: true, append: true });
  const proc = new Deno.Command(`${dev.slots.root}/current/outpost`, {
    args: ["run", "--config", dev.config],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  void proc.stdout.pipeTo(log.writable, { preventClose: true }).catch(() => {});
  void proc.stderr.pipeTo(
    (await Deno.open(dev.log, { write: true, append: true })).writable,
  ).catch(() => {});
  const rss: string[] = [];
  try {
    await dev.waitStatus(
      "1.1.0 forwarding",
      (s) => s.version === "1.1.0" && !!s.uplink?.connected && s.pid === proc.pid,
    );
    rss.push(`1.1.0: ${rssMb(proc.pid)} MB`);
    for (const [artifact, version] of [[a.good, "2.0.0"], [a.next, "2.1.0"]] as const) {
      await publish(channel, artifact, version, [key.key]);
      const s = await dev.waitStatus(
        `${version} committed`,
        (s) => s.version === version && s.update.committed.version === version,
        90_000,
      );
      assert.equal(s.pid, proc.pid, "the same process, exec'd into the new version");
      await waitFor(`no process left under ${proc.pid}`, () => children(proc.pid).length === 0);
      rss.push(`${version}: ${rssMb(proc.pid)} MB`);
    }
    console.log(`RSS of the one gateway process: ${rss.join(", ")}`);
  } finally {
    try {
      proc.kill("SIGTERM");
    } catch { /* gone */ }
    await proc.status;
    await rig.close();
  }
});
