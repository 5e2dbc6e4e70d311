// The release side of a gateway that manages device updates, for the device-update tests.
import { createHash } from "node:crypto";
import { initRelease, publish, publishDevice } from "../../src/update/mod.ts";
import { Slots } from "../../src/update/slots.ts";

/**
 * A release directory (`dir/release`) and channel (`dir/channel/stable`) whose gateway release is
 * the version the install root (`dir/opt`, trusting the release's root) runs, so the gateway's
 * own self-updater has nothing to do.
 */
export async function idleGatewayChannel(
  dir: string,
): Promise<{ release: string; channel: string; installRoot: string }> {
  const release = `${dir}/release`;
  const channel = `${dir}/channel/stable`;
  await Deno.mkdir(channel, { recursive: true });
  await initRelease(release);
  await Deno.writeTextFile(`${dir}/outpost.js`, "#!/usr/bin/env -S deno run\n");
  await publish({
    channel,
    artifact: `${dir}/outpost.js`,
    version: "0.1.0-dev",
    target: Deno.build.target,
    keys: [],
    rootDir: release,
  });
  const installRoot = `${dir}/opt`;
  await new Slots(installRoot).init(`${dir}/outpost.js`, "0.1.0-dev");
  await Deno.copyFile(`${release}/root.json`, `${installRoot}/root.json`);
  return { release, channel, installRoot };
}

/** A random token per device id, each written to `dir/<id>.token` (mode 0600). */
export async function writeDeviceTokens(
  dir: string,
  ids: string[],
): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const id of ids) {
    tokens[id] = createHash("sha256").update(`${id}-${Math.random()}`).digest("hex");
    await Deno.writeTextFile(`${dir}/${id}.token`, tokens[id], { mode: 0o600 });
  }
  return tokens;
}

/**
 * The `adapters`, `update` and `devices` sections of a gateway that updates devices `ids` of
 * class `cls` (tokens in `dir/<id>.token`) over an `mqtt` adapter named `local` on `brokerUrl`,
 * from the `stable` channel at `channelUrl` into `installRoot`.
 */
export function deviceUpdateYaml(o: {
  dir: string;
  brokerUrl: string;
  channelUrl: string;
  installRoot: string;
  cls: string;
  ids: string[];
  rollout: { batch: number; failureThreshold: number };
}): string {
  const list = o.ids.map((id) =>
    `    - { id: ${id}, class: ${o.cls}, token: "\${file:${o.dir}/${id}.token}" }`
  );
  return `adapters:
  - type: mqtt
    name: local
    url: ${o.brokerUrl}
    subscriptions: [{ topic: "sensors/{device}/{metric}", format: number }]
update:
  channel: ${o.channelUrl}/stable/
  channelName: stable
  installRoot: ${o.installRoot}
  checkInterval: 1h
  allowInsecure: true
devices:
  checkInterval: 1s
  mqtt: { adapter: local }
  classes:
    ${o.cls}: { rollout: { batch: ${o.rollout.batch}, failureThreshold: ${o.rollout.failureThreshold} } }
  list:
${list.join("\n")}
`;
}

/**
 * Publishes `bytes` random bytes as device firmware `version` of class `cls` (its name too) to
 * `channel`, signed with the release in `rootDir`; the image is kept as `dir/fw.bin`.
 */
export async function publishDeviceFirmware(o: {
  dir: string;
  channel: string;
  rootDir: string;
  cls: string;
  version: string;
  bytes: number;
}): Promise<void> {
  await Deno.writeFile(`${o.dir}/fw.bin`, crypto.getRandomValues(new Uint8Array(o.bytes)));
  await publishDevice({
    channel: o.channel,
    artifact: `${o.dir}/fw.bin`,
    name: o.cls,
    version: o.version,
    classes: [o.cls],
    keys: [],
    rootDir: o.rootDir,
  });
}
