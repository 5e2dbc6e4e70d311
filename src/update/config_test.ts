import assert from "node:assert/strict";
import { parseConfig } from "../config/load.ts";
import { updateSchema } from "./config.ts";

Deno.test("update.channelName is taken from the channel URL, or must be set", () => {
  const c = parseConfig("channel: https://releases.example.com/outpost/stable/", updateSchema);
  assert.equal(c.channelName, "stable");
  assert.equal(c.hardwareClass, "generic");
  const set = parseConfig(
    "channel: https://releases.example.com/\nchannelName: beta",
    updateSchema,
  );
  assert.equal(set.channelName, "beta");
  assert.throws(
    () => parseConfig("channel: https://releases.example.com/", updateSchema),
    /set update\.channelName: the channel URL "https:\/\/releases\.example\.com\/" does not end with the channel's name/,
  );
});
