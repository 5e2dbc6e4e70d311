/**
 * `devices-resume`, the signed remote command that resumes a device rollout stopped at its
 * failure threshold: a real release channel, a real Mosquitto, a real gateway process and
 * simulated ESP32 devices (test/helpers/ota_device.ts). It needs the `operate` scope, is refused
 * unsigned, for an unknown class, for a rollout that is not stopped and with bad args, and on a
 * gateway without `devices:` or whose `commands.allow` leaves it out; every request is audited.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { type CommandReply, type CommandRequest, signRequest } from "../src/protocol/mod.ts";
import { generateKey, importSigningKey } from "../src/update/keys.ts";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { OtaDevice } from "./helpers/ota_device.ts";
import { waitFor } from "./helpers/ports.ts";
import {
  deviceUpdateYaml,
  idleGatewayChannel,
  publishDeviceFirmware,
  writeDeviceTokens,
} from "./helpers/device_site.ts";
import { channelServer } from "./helpers/update.ts";
import { runOutpost } from "./helpers/cli.ts";
import { commandRig, expectError } from "./helpers/commands.ts";

const CLASS = "esp32-boiler-v3";
const GW = "resume-gw";

type Key = Awaited<ReturnType<typeof importSigningKey>>;
interface RolloutView {
  status: string;
  failures: number;
  forgiven: number;
}

Deno.test({
  name:
    "devices-resume: an operate key resumes a stopped rollout and the next device gets its offer; unsigned, read-only, unknown class, not stopped and bad args are refused and audited",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-devices-resume-" });
  const { release, channel, installRoot } = await idleGatewayChannel(dir);
  const server = channelServer(`${dir}/channel`);
  const broker = await startMosquitto();
  const ids = ["boiler-1", "boiler-2", "boiler-3"];
  const tokens = await writeDeviceTokens(dir, ids);
  const operateFile = await generateKey();
  const readFile = await generateKey();
  const operate = await importSigningKey(operateFile);
  const reader = await importSigningKey(readFile);
  const gw = await startGateway(
    dir,
    `gateway: { id: ${GW} }
buffer: { path: ${dir}/buffer.db }
uplink: { type: mqtt, url: ${broker.url}, reconnect: { min: 100ms, max: 500ms } }
commands:
  operatorKeys:
    - { key: "${operateFile.public}", scopes: [operate], name: night-shift }
    - { key: "${readFile.public}", scopes: [read], name: viewer }
${
      deviceUpdateYaml({
        dir,
        brokerUrl: broker.url,
        channelUrl: server.url,
        installRoot,
        cls: CLASS,
        ids,
        rollout: { batch: 1, failureThreshold: 1 },
      })
    }`,
  );
  const devices: OtaDevice[] = [];
  const client = await mqtt.connectAsync(broker.url, { clientId: "devices-resume-test" });
  const replies = new Map<string, CommandReply>();
  client.on("message", (_topic, payload) => {
    const msg = JSON.parse(payload.toString());
    if (msg.final) replies.set(msg.id, msg);
  });
  await client.subscribeAsync(`gateways/${GW}/reply`, { qos: 1 });
  const call = async (key: Key | null, args: Record<string, unknown>): Promise<CommandReply> => {
    const req: CommandRequest = { id: crypto.randomUUID(), args };
    if (key) await signRequest(key, "devices-resume", GW, req);
    await client.publishAsync(`gateways/${GW}/cmd/devices-resume`, JSON.stringify(req), {
      qos: 1,
    });
    return await waitFor("the reply to devices-resume", () => replies.get(req.id), 20_000);
  };
  const rollout = async () =>
    ((await gw.status()) as unknown as {
      deviceUpdates: { rollouts: Record<string, RolloutView> };
    }).deviceUpdates.rollouts[CLASS];
  try {
    await waitFor(
      "request topics subscribed",
      async () =>
        (await gw.status() as unknown as { commands?: { subscribed?: boolean } }).commands
          ?.subscribed === true,
      30_000,
      50,
    );
    const start = (id: string, failAfterInstall = false) =>
      OtaDevice.start({
        id,
        token: tokens[id],
        broker: broker.url,
        dir: `${dir}/dev-${id}`,
        version: "1.0.0",
        failAfterInstall,
      }).then((d) => (devices.push(d), d));
    await start("boiler-1", true);
    const second = await start("boiler-2");
    const third = await start("boiler-3");

    // Nothing has stopped yet: nothing to resume.
    expectError(
      await call(operate, { class: CLASS }),
      "not-stopped",
      /class "esp32-boiler-v3" has no rollout: nothing to resume/,
    );
    expectError(
      await call(operate, { class: "esp8266" }),
      "unknown-class",
      /no device class "esp8266" on this gateway \(classes: esp32-boiler-v3\)/,
    );
    expectError(await call(operate, {}), "bad-args", /args\.class: expected a device class/);
    expectError(await call(operate, { class: 3 }), "bad-args", /args\.class/);
    expectError(
      await call(operate, { class: CLASS, force: true }),
      "bad-args",
      /unknown args force; expected class/,
    );

    await publishDeviceFirmware({
      dir,
      channel,
      rootDir: release,
      cls: CLASS,
      version: "1.1.0",
      bytes: 30_000,
    });
    await waitFor(
      "the rollout stopped",
      async () => (await rollout())?.status === "stopped",
      60_000,
    );
    assert.equal(second.offers.length, 0);

    expectError(await call(null, { class: CLASS }), "unsigned", /operate scope/);
    expectError(
      await call(reader, { class: CLASS }),
      "forbidden",
      /needs the operate scope; operator key "viewer"/,
    );
    assert.equal((await rollout()).status, "stopped");

    // The fleet console sends it as an operator would.
    await Deno.writeTextFile(`${dir}/operate.key`, JSON.stringify(operateFile));
    const sendResume = () =>
      runOutpost([
        "fleet",
        "send",
        "devices-resume",
        "--gateway",
        GW,
        "--args",
        JSON.stringify({ class: CLASS }),
        "--broker",
        broker.url,
        "--key",
        `${dir}/operate.key`,
      ]);
    const sent = await sendResume();
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    assert.match(
      sent.stdout,
      /^resume-gw\s+done\s+\S+\s+resumed esp32-boiler-v3 \(esp32-boiler-v3 1\.1\.0\)/m,
    );
    const whole = /== resume-gw: devices-resume ==\n(\{[^]*?\n\})\n/.exec(sent.stdout);
    assert.ok(whole, sent.stdout);
    assert.deepEqual(JSON.parse(whole[1]), {
      class: CLASS,
      name: CLASS,
      version: "1.1.0",
      was: "stopped",
      status: "running",
      failures: 1,
      forgiven: 1,
    });
    // The next device of the batch order is offered the version and installs it.
    await second.waitFor("1.1.0 on boiler-2", (d) => d.version === "1.1.0", 60_000);
    await third.waitFor("1.1.0 on boiler-3", (d) => d.version === "1.1.0", 60_000);
    await waitFor("the rollout done", async () => (await rollout()).status === "done", 30_000);
    const again = await sendResume();
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.match(
      again.stdout,
      /resume-gw\s+error\s+\S+\s+not-stopped: the rollout of class "esp32-boiler-v3" \(esp32-boiler-v3 1\.1\.0\) is done, not stopped: nothing to resume/,
    );

    type Audit = { cmd: string; result: string; key?: string; verified: boolean };
    const mine = await waitFor(
      "the audit entries of devices-resume",
      async () => {
        const audit = (await (await gw.get("/audit?n=50")).json()).audit as Audit[];
        const list = audit.filter((e) => e.cmd === "devices-resume");
        return list.length >= 9 ? list : undefined;
      },
      10_000,
      50,
    );
    assert.deepEqual(
      mine.map((e) => [e.result, e.key ?? null, e.verified]),
      [
        ["not-stopped", "night-shift", true],
        ["unknown-class", "night-shift", true],
        ["bad-args", "night-shift", true],
        ["bad-args", "night-shift", true],
        ["bad-args", "night-shift", true],
        ["unsigned", null, false],
        ["forbidden", "viewer", true],
        ["done", "night-shift", true],
        ["not-stopped", "night-shift", true],
      ].slice(0, mine.length),
    );
    assert.equal(mine.length, 9);
    assert.match(gw.output(), /rollout resumed by the operator.*esp32-boiler-v3/);
  } finally {
    for (const d of devices) await d.close();
    await client.endAsync(true);
    await gw.stop().catch(() => {});
    await server.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "devices-resume: closed where commands.allow leaves it out; unavailable on a gateway without devices:",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const rig = await commandRig("plain-gw", { commands: ["allow: [ping, status]"] });
  try {
    expectError(
      (await rig.con.call("plain-gw", "devices-resume", { class: CLASS })).final,
      "forbidden",
      /command "devices-resume" is not allowed on this gateway \(commands.allow: ping, status\)/,
    );
    // Opened by the local file (reloaded with SIGHUP): still nothing to resume without devices:.
    const path = rig.gw.configPath;
    await Deno.writeTextFile(
      path,
      (await Deno.readTextFile(path)).replace("  allow: [ping, status]\n", ""),
    );
    Deno.kill(rig.gw.pid, "SIGHUP");
    await waitFor("the config reloaded", () => /config reloaded/.test(rig.gw.output()), 20_000);
    // The uplink reconnects after a reload: a request sent before it subscribed again is lost.
    const reply = await waitFor(
      "the allow-list reloaded",
      async () => {
        const r = (await rig.con.call("plain-gw", "devices-resume", { class: CLASS }, {
          timeoutMs: 5000,
        })).final;
        return r.error?.code === "forbidden" ? undefined : r;
      },
      30_000,
      200,
    ).catch((e) => {
      throw new Error(`${e.message}\n--- gateway ---\n${rig.gw.output()}`);
    });
    expectError(reply, "unavailable", /this gateway has no devices: section/);
  } finally {
    await rig.close();
  }
});
