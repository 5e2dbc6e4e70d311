import { type Infer, s } from "../config/schema.ts";

const NAME = { pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/, patternName: "a name such as stable" };

/** The last path segment of a channel URL (`…/stable/` → `stable`), when it is a valid name. */
export function channelNameOf(url: string): string | undefined {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const last = path.split("/").filter(Boolean).pop() ?? "";
  return NAME.pattern.test(last) ? last : undefined;
}

/** Config schema of the optional `update:` section. */
export const updateSchema = s.object({
  channel: s.string({
    pattern: /^https?:\/\/\S+$/,
    patternName: "an https:// URL of a release channel directory",
  }).describe("Release channel: the directory URL that holds manifest.json"),
  channelName: s.string(NAME).optional()
    .describe(
      "The channel this device follows: a manifest naming another is refused; the last path " +
        "segment of `channel` when absent",
    ),
  hardwareClass: s.string(NAME).default("generic")
    .describe("This device's hardware class: only artifacts listing it are installed"),
  checkInterval: s.duration({ min: 1000 }).default(6 * 3_600_000)
    .describe("How often to look for a new release"),
  installRoot: s.string({ min: 1 }).default("/opt/outpost")
    .describe("Holds slots/a, slots/b, the `current` symlink and state.json"),
  maxArtifactBytes: s.bytes({ min: 1024 }).default(256 * 1024 ** 2)
    .describe("Refuse artifacts larger than this"),
  maxMetadataBytes: s.bytes({ min: 1024, max: 16 * 1024 ** 2 }).default(512 * 1024)
    .describe("Refuse release metadata (manifest.json) larger than this; checked while reading"),
  minDownloadRate: s.bytes({ min: 1 }).default(4 * 1024)
    .describe(
      "Give up a download slower than this many bytes per second over 30 s (kept for resume)",
    ),
  downloadTimeout: s.duration({ min: 1000 }).default(3_600_000)
    .describe("Give up a download not done within this time (kept for resume)"),
  healthDeadline: s.duration({ min: 1000, max: 3_600_000 }).default(60_000)
    .describe("How long a new version has to report healthy before it is rolled back"),
  maxAttempts: s.integer({ min: 1, max: 20 }).default(3)
    .describe("Starts of a version on trial before the guard restores the previous slot"),
  target: s.string({ min: 1 }).optional()
    .describe("Manifest target to install; the running build's target when absent"),
  allowInsecure: s.boolean().default(false)
    .describe("Allow an http:// channel (tests only; the manifest is still signature-checked)"),
  trustedKeys: s.array(
    s.string({ pattern: /^ed25519:[A-Za-z0-9+/=]+$/, patternName: "ed25519:BASE64" }),
  )
    .default([]).describe(
      "Without a pinned root (root.json in installRoot): public keys that may sign manifest.json " +
        "alone (threshold 1, no timestamp, no freeze detection)",
    ),
}, {
  refine(v, ctx, path) {
    // A device must know which channel it follows: a mirror or a mistake serving another
    // channel's (validly signed) manifest would otherwise be installed.
    v.channelName ??= channelNameOf(v.channel);
    if (!v.channelName) {
      ctx.fail(
        path,
        `set update.channelName: the channel URL "${v.channel}" does not end with the channel's name`,
      );
    }
  },
});

/** Validated `update:` config. */
export type UpdateConfig = Infer<typeof updateSchema>;
