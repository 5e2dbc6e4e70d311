/** `outpost release`: the release side of self-update (keys, roles, publishing, checks). */
import { type Args, type Command, UsageError } from "../common/cli.ts";
import {
  checkArtifact,
  checkRuntime,
  describeRoot,
  initRelease,
  keygen,
  parseExpires,
  parseVersion,
  publish,
  readPublicKeys,
  readRoot,
  readSigningKey,
  releaseRoleKeys,
  rotateRole,
  TARGET_RE,
  UpdateRefused,
  verifyChannel,
  verifyChannelWithRoot,
  writeTimestamp,
} from "../update/mod.ts";
import type { CliDeps } from "./deps.ts";
import { SIGNING_OPTIONS } from "./release_options.ts";
import { publishDeviceSubcommand } from "./release_device.ts";

function expiresOf(args: Args, name: string): number | undefined {
  const text = args.string(name);
  return text ? parseExpires(text) : undefined;
}

function optionalList(args: Args, name: string): string[] | undefined {
  const list = args.list(name);
  return list.length ? list : undefined;
}

async function releaseKeygen(args: Args): Promise<number> {
  const out = args.string("out");
  if (!out) throw args.usage("keygen: missing --out DIR");
  const k = await keygen(out);
  console.log(`key id ${k.keyid}\nprivate key ${k.key} (mode 0600; keep it offline)`);
  console.log(`public key ${k.pub}:\n${(await Deno.readTextFile(k.pub)).trim()}`);
  return 0;
}

async function releasePublish(args: Args): Promise<number> {
  const v = {
    channel: args.string("channel"),
    artifact: args.string("artifact"),
    version: args.string("version"),
    target: args.string("target"),
    rollout: args.string("rollout"),
    counter: args.string("counter"),
    runtime: args.string("runtime"),
  };
  for (const k of ["channel", "artifact", "version", "target"] as const) {
    if (!v[k]) throw args.usage(`publish: missing --${k}`);
  }
  const keys = args.list("key");
  if (!keys.length && !args.string("root-dir")) {
    throw args.usage("publish: missing --root-dir DIR or --key PRIV");
  }
  const rollout = v.rollout === undefined ? undefined : Number(v.rollout);
  if (rollout !== undefined && !(rollout >= 0 && rollout <= 100)) {
    throw new UsageError(`--rollout: expected a percentage 0–100, got "${v.rollout}"`);
  }
  const counter = v.counter === undefined ? undefined : Number(v.counter);
  if (
    counter !== undefined &&
    !(/^\d+$/.test(v.counter!) && Number.isSafeInteger(counter) && counter >= 0)
  ) {
    throw new UsageError(
      `--counter: expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got "${v.counter}"`,
    );
  }
  if (!parseVersion(v.version!)) {
    throw new UsageError(`--version: expected a semantic version, got "${v.version}"`);
  }
  if (!TARGET_RE.test(v.target!)) {
    throw new UsageError(
      `--target: expected a build target such as x86_64-unknown-linux-gnu, got "${v.target}"`,
    );
  }
  console.log(
    `artifact ok: ${await checkArtifact(v.artifact!, {
      version: v.version!,
      target: v.target!,
      runtime: v.runtime,
    })}`,
  );
  if (v.runtime) console.log(`runtime ok: ${await checkRuntime(v.runtime, v.target!)}`);
  const m = await publish({
    channel: v.channel!,
    artifact: v.artifact!,
    version: v.version!,
    target: v.target!,
    keys,
    rootDir: args.string("root-dir"),
    timestampKeys: optionalList(args, "timestamp-key"),
    timestampExpiresInMs: expiresOf(args, "timestamp-expires"),
    expiresInMs: expiresOf(args, "expires"),
    rollout,
    counter,
    channelName: args.string("channel-name"),
    hardware: optionalList(args, "hardware"),
    runtime: v.runtime,
  });
  console.log(
    `published ${m.signed.version} for ${v.target} on ${v.channel}: counter ${m.signed.counter}, expires ${m.signed.expires}, signed by ${
      m.signatures.map((s) => s.keyid).join(", ")
    }`,
  );
  return 0;
}

async function releaseInit(args: Args): Promise<number> {
  const out = args.string("out");
  if (!out) throw args.usage("init: missing --out DIR");
  const int = (name: string, dflt: number) => {
    const text = args.string(name);
    if (text === undefined) return dflt;
    if (!/^\d+$/.test(text)) {
      throw new UsageError(`--${name}: expected a whole number, got "${text}"`);
    }
    return Number(text);
  };
  const roles = Object.fromEntries(
    (["root", "targets", "timestamp"] as const).map((role) => [role, {
      keys: int(`${role}-keys`, 1),
      threshold: int(`${role}-threshold`, 1),
    }]),
  );
  const root = await initRelease(out, { roles, expiresInMs: expiresOf(args, "expires") });
  console.log(describeRoot(out, root.signed));
  return 0;
}

async function releaseRotate(args: Args): Promise<number> {
  const role = args.string("role");
  const dir = args.string("dir");
  if (!dir || (role !== "root" && role !== "targets" && role !== "timestamp")) {
    throw args.usage("rotate: needs --dir DIR and --role root|targets|timestamp");
  }
  const root = await rotateRole(dir, role, { expiresInMs: expiresOf(args, "expires") });
  console.log(describeRoot(dir, root.signed));
  console.log(
    `publish again (release publish --root-dir ${dir}) to put root/${root.signed.version}.json on the channel`,
  );
  return 0;
}

async function releaseTimestamp(args: Args): Promise<number> {
  const channel = args.string("channel");
  const dir = args.string("root-dir");
  if (!channel || !dir) throw args.usage("timestamp: needs --channel DIR and --root-dir DIR");
  const root = (await readRoot(dir)).signed;
  const keys = args.list("key").length
    ? await Promise.all(args.list("key").map(readSigningKey))
    : await releaseRoleKeys(dir, root, "timestamp");
  const ts = await writeTimestamp(channel, root, keys, {
    expiresInMs: expiresOf(args, "expires"),
  });
  console.log(
    `timestamp version ${ts.signed.version} for manifest counter ${ts.signed.manifest.counter}, expires ${ts.signed.expires}`,
  );
  return 0;
}

async function releaseVerify(args: Args): Promise<number> {
  const channel = args.string("channel");
  const pubkeys = args.list("pubkey");
  const rootFile = args.string("root");
  if (!channel || (!pubkeys.length && !rootFile)) {
    throw args.usage("verify: needs --channel DIR and --root FILE (or --pubkey)");
  }
  try {
    const lines = rootFile
      ? await verifyChannelWithRoot(channel, rootFile)
      : await verifyChannel(channel, await readPublicKeys(pubkeys));
    console.log(lines.join("\n"));
    return 0;
  } catch (e) {
    if (e instanceof UpdateRefused) {
      console.error(`release verify: REFUSED (${e.code}): ${e.message}`);
      return 1;
    }
    throw e;
  }
}

const ROLES = ["root", "targets", "timestamp"] as const;

const EXPIRES = {
  type: "string",
  arg: "DURATION",
  help: "validity of what it signs (init, rotate: 365d; publish: 30d; timestamp: 1d)",
} as const;

/** `outpost release`. */
export const releaseCommand: Command<CliDeps> = {
  name: "release",
  summary: "Release tooling: keygen, publish, verify",
  usage:
    `Usage: outpost release init --out DIR [--ROLE-keys N] [--ROLE-threshold K] [--expires 365d]
       outpost release rotate --dir DIR --role root|targets|timestamp [--expires 365d]
       outpost release publish --channel DIR --artifact FILE --version X --target T
                               (--root-dir DIR [--key TARGETS.key]… [--timestamp-key TS.key]
                                [--timestamp-expires 1d] | --key PRIV [--key PRIV2])
                               [--expires 30d] [--rollout 100] [--hardware CLASS]…
                               [--channel-name NAME] [--counter N] [--runtime DENO]
       outpost release publish-device --channel DIR --artifact FILE --name NAME --version X
                               --class CLASS… [--device ID]… (--root-dir DIR | --key PRIV)
       outpost release timestamp --channel DIR --root-dir DIR [--key TS.key] [--expires 1d]
       outpost release keygen --out DIR
       outpost release verify --channel DIR (--root root.json | --pubkey FILE|ed25519:…)

init makes a release directory: new keys for the root, targets and timestamp roles (ROLE is
root, targets or timestamp; 1 key, threshold 1 each unless given) and root.json version 1, the
file devices pin (update init --root). rotate replaces one role's keys with a root version
signed by the old and the new root keys. timestamp re-signs timestamp.json (run it daily with
the timestamp key: devices report the channel stale once it expires).
keygen writes DIR/<keyid>.key (Ed25519 private key, mode 0600) and DIR/<keyid>.pub and prints
the public key. publish checks the artifact is an Outpost build of that version for that target,
verifies the channel's current manifest.json and its artifacts, copies the artifact into the
channel and writes a signed manifest.json with the next counter (with --root-dir also the root
chain and timestamp.json). With --runtime (a bundle's Deno, the pinned version for the target,
checked with its --version, under qemu for another architecture) the runtime is published beside
the bundle and the manifest names it. verify checks the channel as a device pinning --root would (or the
manifest alone with --pubkey) and every artifact's length and SHA-256. publish-device lists a
firmware image or model file for device classes in the channel's signed manifest (docs/devices.md).
See docs/releasing.md.`,
  subcommands: [
    {
      name: "init",
      summary: "make a release directory",
      options: {
        out: { type: "string", arg: "DIR", help: "the release directory to create" },
        expires: EXPIRES,
        ...Object.fromEntries(ROLES.flatMap((role) => [
          [`${role}-keys`, { type: "string", arg: "N", default: "1", help: `${role} keys` }],
          [`${role}-threshold`, {
            type: "string",
            arg: "K",
            default: "1",
            help: `${role} signatures needed`,
          }],
        ])),
      },
      run: releaseInit,
    },
    {
      name: "rotate",
      summary: "replace one role's keys",
      options: {
        dir: { type: "string", arg: "DIR", help: "the release directory" },
        role: { type: "string", arg: "ROLE", help: "root, targets or timestamp" },
        expires: EXPIRES,
      },
      run: releaseRotate,
    },
    {
      name: "publish",
      summary: "put a build on a channel",
      options: {
        channel: { type: "string", arg: "DIR", help: "the channel directory" },
        artifact: { type: "string", arg: "FILE", help: "the build to publish" },
        version: { type: "string", arg: "X", help: "its version (semantic)" },
        target: { type: "string", arg: "T", help: "its build target" },
        ...SIGNING_OPTIONS,
        expires: EXPIRES,
        rollout: { type: "string", arg: "PERCENT", default: "100", help: "share of devices" },
        hardware: { type: "string", multiple: true, arg: "CLASS", help: "only this hardware" },
        "channel-name": { type: "string", arg: "NAME", help: "the channel's name" },
        counter: { type: "string", arg: "N", help: "the manifest counter (default: next)" },
        runtime: { type: "string", arg: "FILE", help: "the Deno runtime a bundle runs on" },
      },
      run: releasePublish,
    },
    publishDeviceSubcommand,
    {
      name: "timestamp",
      summary: "re-sign timestamp.json",
      options: {
        channel: { type: "string", arg: "DIR", help: "the channel directory" },
        "root-dir": { type: "string", arg: "DIR", help: "the release directory" },
        key: { type: "string", multiple: true, arg: "FILE", help: "a timestamp key" },
        expires: EXPIRES,
      },
      run: releaseTimestamp,
    },
    {
      name: "keygen",
      summary: "make an Ed25519 key pair",
      options: { out: { type: "string", arg: "DIR", help: "where the key files go" } },
      run: releaseKeygen,
    },
    {
      name: "verify",
      summary: "check a channel",
      options: {
        channel: { type: "string", arg: "DIR", help: "the channel directory" },
        root: { type: "string", arg: "FILE", help: "the root.json a device pins" },
        pubkey: {
          type: "string",
          multiple: true,
          arg: "FILE|ed25519:…",
          help: "a manifest key (without --root)",
        },
      },
      run: releaseVerify,
    },
  ],
};
