/**
 * Remote commands that run long or across restarts, end to end: paged queries over a 30-day
 * buffer, and update-check, update-apply and rollback with real release artifacts, including
 * rollbacks and config-sets cut short by SIGKILL.
 */
import assert from "node:assert/strict";
import { exportReadings } from "../src/buffer/export.ts";
import { Buffer } from "../src/buffer/buffer.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import {
  type QueryDone,
  type QueryPage,
  queryRowReading,
  signRequest,
} from "../src/protocol/mod.ts";
import { startGateway } from "./helpers/gateway.ts";
import { type Broker, startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import {
  commandRig,
  type Console,
  expectDone,
  expectError,
  gatewayYaml,
  openConsole,
  OPERATOR,
  OPERATOR_YAML,
  startCommandGateway,
  waitForSubscribed,
} from "./helpers/commands.ts";
import {
  artifacts,
  assertFlowing,
  bufferContents,
  channelServer,
  type Device,
  device,
  keypair,
  publish,
  VERSIONS,
} from "./helpers/update.ts";

async function seedBuffer(path: string, series: { device: string; metric: string }[]) {
  const config = bufferSchema.check({ path, retention: "60d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  const end = Date.now() - 60_000;
  const start = end - 30 * 86_400_000;
  const step = 10_000;
  let batch: { device: string; metric: string; value: number; unit: string; ts: number }[] = [];
  let i = 0;
  for (let ts = start; ts < end; ts += step, i++) {
    for (const s of series) {
      batch.push({ device: s.device, metric: s.metric, value: (i % 1000) / 10, unit: "kW", ts });
    }
    if (batch.length >= 10_000) {
      await buf.append(batch);
      batch = [];
    }
  }
  if (batch.length) await buf.append(batch);
  buf.close();
  return { start, end, perSeries: i };
}

Deno.test({
  name:
    "query pages return exactly the stored rows of a 30-day buffer (259,200 readings of one device), each page within the size limit",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const path = `${dir}/buffer.db`;
  const seeded = await seedBuffer(path, [
    { device: "meter-1", metric: "power" },
    { device: "meter-2", metric: "power" },
  ]);
  assert.equal(seeded.perSeries, 259_200);
  const rig = await commandRig("cmd-query", { dir, commands: ["query: { pageBytes: 64KB }"] });
  const { con } = rig;
  try {
    const want = [...exportReadings(path, { device: "meter-1" })];
    assert.equal(want.length, 259_200);
    const { final, all } = await con.call("cmd-query", "query", { device: "meter-1" }, {
      timeoutMs: 120_000,
    });
    const done = expectDone(final) as unknown as QueryDone;
    const pages = all.filter((r) => r.status === "page");
    assert.equal(all[0].status, "accepted");
    assert.equal(done.rows, 259_200);
    assert.equal(done.pages, pages.length);
    assert.deepEqual(pages.map((p) => p.page), pages.map((_, i) => i), "pages in order, once each");
    // Progress: the total counted up front, and rows done after each page (not a timestamp).
    assert.equal((all[0].result as { total: number }).total, 259_200);
    let sent = 0;
    for (const p of pages) {
      sent += (p.result as QueryPage).rows.length;
      assert.deepEqual(p.progress, { done: sent, total: 259_200 });
    }
    const rows = pages.flatMap((p) => (p.result as QueryPage).rows.map(queryRowReading));
    assert.equal(rows.length, want.length);
    for (let i = 0; i < want.length; i++) {
      const [a, b] = [rows[i], want[i]];
      if (a.seq !== b.seq || a.ts !== b.ts || a.value !== b.value || a.device !== b.device) {
        assert.fail(`row ${i}: got ${JSON.stringify(a)}, stored ${JSON.stringify(b)}`);
      }
    }
    assert.equal(done.lastSeq, want.at(-1)!.seq);
    assert.equal(done.complete, true);
    const sizes = con.sizes(final.id!);
    assert.ok(Math.max(...sizes) <= 64 * 1024, `largest page ${Math.max(...sizes)} bytes`);
    assert.ok(pages.length >= 130, `${pages.length} pages`);

    // One day in the middle, resumed after a seq, with a limit.
    const from = seeded.start + 10 * 86_400_000;
    const to = from + 86_400_000;
    const day = want.filter((r) => r.ts >= from && r.ts < to);
    const part = await con.call("cmd-query", "query", {
      device: "meter-1",
      metric: "power",
      from: new Date(from).toISOString(),
      to,
      afterSeq: day[99].seq,
      limit: 5000,
      pageRows: 1000,
    });
    const partDone = expectDone(part.final) as unknown as QueryDone;
    const partRows = part.all.filter((r) => r.status === "page")
      .flatMap((p) => (p.result as QueryPage).rows.map((r) => queryRowReading(r).seq));
    assert.deepEqual(partRows, day.slice(100, 5100).map((r) => r.seq));
    assert.equal((part.all[0].result as { total: number }).total, 5000, "the limit caps the total");
    assert.equal(partDone.pages, 5);
    assert.equal(partDone.complete, false);
    const none = await con.call("cmd-query", "query", { device: "no-such-device" });
    assert.deepEqual(expectDone(none.final), { rows: 0, pages: 0, lastSeq: null, complete: true });
  } finally {
    await rig.close();
  }
});

Deno.test({
  name:
    "update-check, update-apply and rollback over MQTT: the new version sends the apply's final reply, the previous one the rollback's",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const channel = `${tmp}/channel/stable`;
  await Deno.mkdir(channel, { recursive: true });
  const keys = await keypair(`${tmp}/keys`);
  const srv = channelServer(channel);
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  // Checks on its own only once, a second after start: every install here is commanded.
  const dev = await device({
    extraYaml: OPERATOR_YAML,
    channelUrl: srv.url,
    pubkeys: [keys.pub],
    broker: broker.url,
    checkInterval: "1h",
    healthDeadline: "20s",
  });
  const ask = (cmd: string, args?: Record<string, unknown>, timeoutMs = 20_000) =>
    con.call(dev.id, cmd, args, { timeoutMs }).catch(async (e) => {
      throw new Error(`${e.message}\n--- gateway log ---\n${await Deno.readTextFile(dev.log)}`);
    });
  try {
    await dev.boot();
    // Answering, and past its own first check (nothing published yet).
    await waitFor(
      "the gateway's own first update check",
      async () => {
        const r = await con.call(dev.id, "status", undefined, { timeoutMs: 1000 }).catch(() =>
          null
        );
        const u = (r?.final.result as { update?: { lastCheck?: unknown } } | undefined)?.update;
        return u?.lastCheck !== undefined;
      },
      60_000,
      100,
    );
    assert.equal(expectDone((await ask("ping")).final).version, VERSIONS.base);
    expectError((await ask("rollback")).final, "unavailable", /no previous version/);

    await publish(channel, a.good, VERSIONS.good, [keys.key]);
    const check = expectDone((await ask("update-check")).final);
    assert.equal(check.available, true);
    assert.equal(check.version, VERSIONS.good);
    assert.equal(check.running, VERSIONS.base);
    expectError(
      (await ask("update-apply", { version: "9.9.9" })).final,
      "failed",
      /offers 2\.0\.0, not 9\.9\.9/,
    );
    assert.equal(await dev.slots.active(), "a", "a refused apply changes nothing");

    // A rollback while an update-apply is downloading is not "busy": it stops the download (the
    // apply fails saying so) and answers the truth (here: no previous version yet).
    const stall = srv.stallNext();
    const stalledApply = ask("update-apply", { version: VERSIONS.good }, 60_000);
    await stall.sent;
    expectError((await ask("rollback")).final, "unavailable", /no previous version/);
    const stopped = (await stalledApply).final;
    assert.equal(stopped.status, "error", JSON.stringify(stopped));
    assert.match(stopped.error!.message, /rollback was requested/);
    assert.equal(await dev.slots.active(), "a", "the stopped apply changed nothing");

    const apply = await ask("update-apply", { version: VERSIONS.good }, 90_000);
    // A download that takes over a second also reports the bytes so far in further progress.
    assert.match(apply.all.map((r) => r.status).join(","), /^accepted,progress(,progress)+,done$/);
    const applied = expectDone(apply.final);
    assert.equal(applied.version, VERSIONS.good, "the final reply comes from the new version");
    assert.equal(applied.from, VERSIONS.base);
    let state = await dev.slots.readState();
    assert.equal(state.phase, "committed");
    assert.deepEqual(state.committed, { slot: "b", version: VERSIONS.good });
    assert.equal(expectDone((await ask("ping")).final).version, VERSIONS.good);

    const rollback = await ask("rollback", undefined, 90_000);
    assert.deepEqual(rollback.all.map((r) => r.status), ["accepted", "progress", "done"]);
    assert.deepEqual(rollback.all[0].result, {
      from: VERSIONS.good,
      to: VERSIONS.base,
      slot: "a",
    });
    assert.equal(expectDone(rollback.final).version, VERSIONS.base);
    state = await dev.slots.readState();
    assert.deepEqual(state.committed, { slot: "a", version: VERSIONS.base });
    assert.equal(state.lastRollback?.version, VERSIONS.good);
    assert.match(state.lastRollback!.reason, /by remote command/);
    assert.equal(await dev.slots.active(), "a");
    assert.equal(expectDone((await ask("ping")).final).version, VERSIONS.base);
    // The version rolled back from is not offered again.
    const again = expectDone((await ask("update-check")).final);
    assert.equal(again.available, false);
    assert.equal(again.result, "skipped");
  } finally {
    await dev.close();
    await srv.close();
    await con.close();
    await broker.stop();
  }
});

/**
 * A device that installed 2.0.0 by itself, then restarted with the updater told to hold at `step`
 * of its next trial (see src/update/_test_hooks.ts): the trial a rollback command starts.
 */
async function rollbackRig(
  broker: Broker,
  con: Console,
  tmp: string,
  keys: { key: string; pub: string },
  step: "switch" | "trial",
) {
  const a = await artifacts();
  const channel = await Deno.makeTempDir({ dir: tmp, prefix: "channel-" });
  const hold = await Deno.makeTempDir({ dir: tmp, prefix: "hold-" });
  await publish(channel, a.good, VERSIONS.good, [keys.key]);
  const srv = channelServer(channel);
  // Checks once, a second after each start: enough to install 2.0.0 and to reinstall it after
  // the rollback, were it not recorded as rolled back.
  const dev = await device({
    extraYaml: OPERATOR_YAML,
    channelUrl: srv.url,
    pubkeys: [keys.pub],
    broker: broker.url,
    checkInterval: "1h",
  });
  const committedOn = (version: string) => async () => {
    const s = await dev.status().catch(() => undefined);
    return s?.version === version && s.update.phase === "committed" &&
      s.update.committed.version === version && !!s.uplink?.connected;
  };
  const answering = (version: string) =>
    waitFor(
      `${dev.id}: ${version} answering commands`,
      async () => {
        const r = await con.call(dev.id, "ping", undefined, { timeoutMs: 1000 }).catch(() => null);
        return r?.final.status === "done" && r.final.result &&
          (r.final.result as { version?: string }).version === version;
      },
      60_000,
      100,
    );
  // From the first start, so that it sees every reading the buffer ever held.
  const sub = await dev.subscriber();
  await dev.boot();
  await waitFor(`${dev.id}: 2.0.0 installed by itself`, committedOn(VERSIONS.good), 90_000, 100);
  await dev.powerCut();
  await dev.boot({ OUTPOST_TEST_HOLD: `${step}:${hold}` });
  await waitFor(`${dev.id}: 2.0.0 back`, committedOn(VERSIONS.good), 60_000, 100);
  await answering(VERSIONS.good);
  return { dev, srv, sub, hold, answering };
}

/** Sends `rollback` and waits until the updater holds at `step` of the trial it started. */
async function rollbackHeld(
  con: Console,
  r: { dev: Device; hold: string },
  step: string,
): Promise<string> {
  const id = crypto.randomUUID();
  await con.request(
    r.dev.id,
    "rollback",
    await signRequest(OPERATOR, "rollback", r.dev.id, { id }),
  );
  await waitFor(
    `${r.dev.id}: the rollback's trial held at "${step}"`,
    () => Deno.stat(`${r.hold}/held-${step}`),
    60_000,
    50,
  ).catch(async (e) => {
    throw new Error(`${e.message}\n--- gateway log ---\n${await Deno.readTextFile(r.dev.log)}`);
  });
  assert.deepEqual(con.replies(id).map((x) => x.status), ["accepted", "progress"]);
  return id;
}

/** SIGKILL of the unit while the rolled-back-to version runs on trial: it concludes the trial
 * itself after the restart, commits, and the version rolled back from is not installed again. */
async function rollbackCutDuringTrial(
  broker: Broker,
  con: Console,
  tmp: string,
  keys: { key: string; pub: string },
) {
  const r = await rollbackRig(broker, con, tmp, keys, "trial");
  const { dev } = r;
  try {
    const id = await rollbackHeld(con, r, "trial");
    await dev.waitStatus("the trial child (1.1.0) serving", (s) => s.version === VERSIONS.base);
    const st = await dev.slots.readState();
    assert.equal(st.phase, "trial");
    assert.equal(st.trial?.version, VERSIONS.base);
    assert.equal(st.trial?.rollback?.from, VERSIONS.good);
    assert.equal(await dev.slots.active(), "a");
    assert.match(await Deno.readTextFile(`${dev.slots.root}/trial.env`), /^MAX_ATTEMPTS=3$/m);
    const rows = (await dev.status()).buffer.rows;
    await dev.powerCut();
    const before = bufferContents(dev.buffer);
    assert.ok(before.size >= rows, `${before.size} readings after the cut, ${rows} before`);
    assert.equal(con.replies(id).some((x) => x.final), false, "no verdict before the cut");

    await dev.boot();
    const final = await con.final(id, 90_000).catch(async (e) => {
      throw new Error(`${e.message}\n--- gateway log ---\n${await Deno.readTextFile(dev.log)}`);
    });
    const done = expectDone(final);
    assert.equal(done.version, VERSIONS.base, "the final reply comes from the previous version");
    assert.equal(done.from, VERSIONS.good);
    const state = await dev.slots.readState();
    assert.equal(state.phase, "committed");
    assert.deepEqual(state.committed, { slot: "a", version: VERSIONS.base });
    assert.equal(state.lastRollback?.version, VERSIONS.good);
    assert.match(state.lastRollback!.reason, new RegExp(`by remote command ${id}`));
    assert.deepEqual(
      [state.history[0].result, state.history[0].version],
      ["rolled-back", VERSIONS.good],
    );
    assert.equal(await dev.slots.active(), "a");
    const log = await Deno.readTextFile(dev.log);
    assert.match(log, /outpost-guard: start 2 of at most 3 of the version on trial/);
    assert.match(log, /this version is on trial after a restart; it must become healthy/);
    for (const f of ["trial.env", "trial-boots"]) {
      assert.equal(await Deno.lstat(`${dev.slots.root}/${f}`).then(() => f, () => null), null);
    }
    await assertFlowing(dev, r.sub, before);
    // 2.0.0 is still offered; it is not installed again.
    const check = expectDone((await con.call(dev.id, "update-check")).final);
    assert.equal(check.available, false);
    assert.equal(check.result, "skipped");
    const apply = expectDone(
      (await con.call(dev.id, "update-apply", undefined, {
        timeoutMs: 60_000,
      })).final,
    );
    assert.equal(apply.applied, false);
    assert.equal(apply.result, "skipped");
    assert.equal((await dev.status()).version, VERSIONS.base);
    assert.equal(await dev.slots.active(), "a");
  } finally {
    await dev.close();
    await r.srv.close();
  }
}

/** SIGKILL after the rollback's trial state is written, before `current` moved: the previous
 * version never ran, so nothing changes; 2.0.0 runs on, answers, and is not marked rolled back. */
async function rollbackCutBeforeSwitch(
  broker: Broker,
  con: Console,
  tmp: string,
  keys: { key: string; pub: string },
) {
  const r = await rollbackRig(broker, con, tmp, keys, "switch");
  const { dev } = r;
  try {
    const id = await rollbackHeld(con, r, "switch");
    const st = await dev.slots.readState();
    assert.equal(st.phase, "trial");
    assert.equal(st.trial?.rollback?.from, VERSIONS.good);
    assert.equal(await dev.slots.active(), "b");
    await dev.powerCut();

    await dev.boot();
    expectError(
      await con.final(id, 60_000),
      "failed",
      /1\.1\.0 did not take over: rollback to 1\.1\.0 interrupted: restarted before 1\.1\.0 ran on trial; 2\.0\.0 keeps running/,
    );
    const state = await dev.slots.readState();
    assert.equal(state.phase, "committed");
    assert.deepEqual(state.committed, { slot: "b", version: VERSIONS.good });
    assert.equal(state.lastRollback, undefined, "the rollback never happened");
    assert.equal(state.history[0].result, "interrupted");
    assert.equal(await dev.slots.active(), "b");
    await r.answering(VERSIONS.good);
    const check = expectDone((await con.call(dev.id, "update-check")).final);
    assert.equal(check.result, "current");
  } finally {
    await dev.close();
    await r.srv.close();
  }
}

Deno.test({
  name:
    "a rollback command cut short by SIGKILL ends after the restart: during its trial the previous version commits and the one rolled back from is not installed again; before the switch nothing changes",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const [keys, broker] = await Promise.all([
    keypair(`${tmp}/keys`),
    startMosquitto(),
    artifacts(),
  ]);
  const con = await openConsole(broker.url);
  try {
    await Promise.all([
      rollbackCutDuringTrial(broker, con, tmp, keys),
      rollbackCutBeforeSwitch(broker, con, tmp, keys),
    ]);
  } finally {
    await con.close();
    await broker.stop();
  }
});

Deno.test({
  name:
    "a config-set whose watch a SIGKILL cut short is judged again when the gateway starts, and reverted",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-cmd-" });
  const broker = await startMosquitto();
  const con = await openConsole(broker.url);
  let gw = await startCommandGateway(dir, gatewayYaml("cmd-crash", dir, broker));
  try {
    const original = await Deno.readTextFile(gw.configPath);
    const unreachable = original.replace(broker.url, `mqtt://127.0.0.1:${freePort()}`);
    const id = crypto.randomUUID();
    await con.request(
      "cmd-crash",
      "config-set",
      await signRequest(OPERATOR, "config-set", "cmd-crash", {
        id,
        args: { yaml: unreachable, deadline: 4000 },
      }),
    );
    await waitFor(
      "the new config written",
      async () => (await Deno.readTextFile(gw.configPath)) === unreachable,
    );
    const pending = JSON.parse(await Deno.readTextFile(`${dir}/commands-state.json`));
    assert.equal(pending.pending[0]?.id, id, "the watch is recorded before anything changes");
    await gw.kill();
    assert.equal(con.replies(id).at(-1)?.final ?? false, false, "no verdict before the kill");

    // The file on disk now points at a broker nobody runs; the next start watches it again.
    const httpPort = gw.httpPort;
    // startGateway adds the same http section again: the file stays byte for byte what was set.
    const given = unreachable.replace(/\nhttp:\n {2}listen: 127\.0\.0\.1:\d+\n$/, "");
    gw = await startGateway(dir, given, { httpPort });
    assert.equal(await Deno.readTextFile(gw.configPath), unreachable);
    const final = await con.final(id, 40_000);
    expectError(final, "reverted", /not healthy within 4s/);
    assert.equal(await Deno.readTextFile(gw.configPath), original);
    await waitForSubscribed(gw);
    assert.equal(expectDone((await con.call("cmd-crash", "ping")).final).pid, gw.pid);
    assert.match(gw.output(), /a config-set was not judged before the gateway stopped/);
  } finally {
    await gw.kill();
    await con.close();
    await broker.stop();
  }
});
