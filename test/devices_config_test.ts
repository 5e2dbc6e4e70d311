/** The `devices:` section: the example in docs/devices.md validates, and bad ones are refused
 * with the key path and what was wrong. */
import assert from "node:assert/strict";
import { adapters } from "../adapters/mod.ts";
import { loadGatewayConfig } from "../src/app.ts";
import { ConfigError, formatProblem } from "../src/config/load.ts";
import { devicesBroker } from "../src/devices/mod.ts";

const DOC = new URL("../docs/devices.md", import.meta.url).pathname;

async function load(yaml: string) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/site.yaml`, yaml);
  try {
    return loadGatewayConfig(`${dir}/site.yaml`, adapters);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function problems(yaml: string): Promise<string> {
  try {
    await load(yaml);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map(formatProblem).join("\n");
    throw e;
  }
  throw new Error("the config was accepted");
}

/** The docs' example with its token files and variable provided. */
async function docExample(): Promise<string> {
  const md = await Deno.readTextFile(DOC);
  const yaml = /```yaml\n([\s\S]*?)```/.exec(md)![1];
  const dir = await Deno.makeTempDir();
  for (const id of ["boiler-1", "boiler-2"]) {
    await Deno.writeTextFile(`${dir}/${id}.token`, `${id}-token-0123456789abcdef`);
  }
  for (const f of ["gateway.pem", "gateway.key"]) await Deno.writeTextFile(`${dir}/${f}`, "x");
  Deno.env.set("BOILER_3_TOKEN", "boiler-3-token-0123456789abcdef");
  return yaml.replaceAll("/etc/outpost/devices/", `${dir}/`).replaceAll(
    "/etc/outpost/tls/",
    `${dir}/`,
  );
}

Deno.test("the devices example of docs/devices.md is a valid config", async () => {
  const c = await load(await docExample());
  const d = c.devices!;
  assert.deepEqual(d.list.map((x) => x.id), ["boiler-1", "boiler-2", "boiler-3"]);
  assert.equal(d.list[2].token, "boiler-3-token-0123456789abcdef");
  assert.deepEqual(d.classes["esp32-boiler-v3"].rollout, {
    batch: 1,
    failureThreshold: 1,
    reportTimeout: 1_800_000,
  });
  assert.equal(devicesBroker(c)?.url, "mqtt://127.0.0.1:1883");
});

Deno.test("devices: shared tokens, twice the same id, no update: and both broker forms are refused", async () => {
  const base = await docExample();
  assert.match(
    await problems(base.replace(/boiler-2\.token/, "boiler-1.token")),
    /devices\.list\[1\]\.token: devices "boiler-1" and "boiler-2" share a token: each device needs its own/,
  );
  assert.match(
    await problems(base.replace("{ id: boiler-2,", "{ id: boiler-1,")),
    /devices\.list\[1\]\.id: device "boiler-1" is listed twice/,
  );
  assert.match(
    await problems(base.replace(/update:\n.*\n/, "")),
    /devices: device artifacts come from the release channel .* set update:/,
  );
  assert.match(
    await problems(
      base.replace("mqtt: { adapter: local }", "mqtt: { adapter: local, url: mqtt://h:1 }"),
    ),
    /devices\.mqtt: expected either adapter or url, got both/,
  );
  assert.match(
    await problems(base.replace('"${BOILER_3_TOKEN}"', "short")),
    /devices\.list\[2\]\.token: expected a string of at least 16 characters/,
  );
  assert.match(
    await problems(base.replace("id: boiler-3", "id: boiler/3")),
    /devices\.list\[2\]\.id: expected a name of letters, digits and \._-/,
  );
  const c = await load(base.replace("mqtt: { adapter: local }", "mqtt: { adapter: nope }"));
  assert.throws(
    () => devicesBroker(c),
    /devices\.mqtt\.adapter: no mqtt or zigbee2mqtt adapter named "nope"/,
  );
});
