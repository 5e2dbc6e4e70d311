/** `outpost release publish-device`: a device artifact on a release channel. */
import type { Args, Command } from "../common/cli.ts";
import type { CliDeps } from "./deps.ts";
import { SIGNING_OPTIONS } from "./release_options.ts";
import { parseExpires, publishDevice } from "../update/mod.ts";

async function releasePublishDevice(args: Args): Promise<number> {
  const v = {
    channel: args.string("channel"),
    artifact: args.string("artifact"),
    name: args.string("name"),
    version: args.string("version"),
  };
  for (const k of ["channel", "artifact", "name", "version"] as const) {
    if (!v[k]) throw args.usage(`publish-device: missing --${k}`);
  }
  if (!args.list("class").length) throw args.usage("publish-device: missing --class CLASS");
  if (!args.list("key").length && !args.string("root-dir")) {
    throw args.usage("publish-device: missing --root-dir DIR or --key PRIV");
  }
  const expires = args.string("expires");
  const tsExpires = args.string("timestamp-expires");
  const m = await publishDevice({
    channel: v.channel!,
    artifact: v.artifact!,
    name: v.name!,
    version: v.version!,
    classes: args.list("class"),
    devices: args.list("device"),
    keys: args.list("key"),
    rootDir: args.string("root-dir"),
    timestampKeys: args.list("timestamp-key"),
    expiresInMs: expires ? parseExpires(expires) : undefined,
    timestampExpiresInMs: tsExpires ? parseExpires(tsExpires) : undefined,
    allowDowngrade: args.flag("allow-downgrade"),
  });
  const e = m.signed.devices![v.name!];
  console.log(
    `published ${v.name} ${e.version} (${e.length} bytes, sha256 ${e.sha256}) for ${
      [...e.classes, ...(e.devices ?? [])].join(", ")
    } on ${v.channel}: counter ${m.signed.counter}, expires ${m.signed.expires}`,
  );
  return 0;
}

/** `outpost release publish-device`. */
export const publishDeviceSubcommand: Command<CliDeps> = {
  name: "publish-device",
  summary: "put a device artifact (firmware, model) on a channel",
  options: {
    channel: { type: "string", arg: "DIR", help: "the channel directory (with a release)" },
    artifact: { type: "string", arg: "FILE", help: "the firmware image or model file" },
    name: { type: "string", arg: "NAME", help: "artifact name, e.g. esp32-boiler-v3" },
    version: { type: "string", arg: "X", help: "the version devices report (semantic)" },
    class: { type: "string", multiple: true, arg: "CLASS", help: "a device class it is for" },
    device: { type: "string", multiple: true, arg: "ID", help: "only this device (repeatable)" },
    ...SIGNING_OPTIONS,
    expires: { type: "string", arg: "DURATION", default: "30d", help: "manifest expiry" },
    "allow-downgrade": { type: "boolean", help: "publish a version not newer than the listed" },
  },
  run: releasePublishDevice,
};
