import type { Options } from "../common/cli.ts";

/** The options of `release publish` and `release publish-device` that choose the signers. */
export const SIGNING_OPTIONS: Options = {
  "root-dir": { type: "string", arg: "DIR", help: "the release directory (role keys)" },
  key: { type: "string", multiple: true, arg: "FILE", help: "a signing key" },
  "timestamp-key": { type: "string", multiple: true, arg: "FILE", help: "a timestamp key" },
  "timestamp-expires": {
    type: "string",
    arg: "DURATION",
    default: "1d",
    help: "timestamp.json expiry",
  },
};
