import { type Infer, s } from "../config/schema.ts";
import { BROKER_URL } from "../common/mqtt.ts";

const DEVICE_ID = {
  min: 1,
  max: 64,
  pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  patternName: "a name of letters, digits and ._- (it becomes a topic level and a URL segment)",
};

const rolloutSchema = s.object({
  batch: s.integer({ min: 0, max: 100_000 }).default(0)
    .describe(
      "Devices offered the new version at a time; the next batch waits until each of them " +
        "reported success or failure. 0: every device at once",
    ),
  failureThreshold: s.integer({ min: 1, max: 100_000 }).default(1)
    .describe(
      "Failed or rolled-back devices that stop the rollout of a version in this class " +
        "(resume with `outpost devices resume` or the signed `devices-resume` command)",
    ),
  reportTimeout: s.duration({ min: 1000 }).default(3_600_000)
    .describe("A device offered a version that reports nothing within this counts as failed"),
});

/** Config schema of the optional `devices:` section: artifacts for local field devices. */
export const devicesSchema = s.object({
  dataDir: s.string({ min: 1 }).optional()
    .describe("Where verified artifacts and device states are kept; `artifacts` beside the buffer"),
  checkInterval: s.duration({ min: 1000 }).default(600_000)
    .describe("How often the release channel is read for device artifacts"),
  maxArtifactBytes: s.bytes({ min: 1024 }).default(64 * 1024 ** 2)
    .describe("Refuse device artifacts larger than this"),
  baseUrl: s.string({
    pattern: /^https?:\/\/[^\s/]+\/?$/,
    patternName: "a URL such as https://192.168.10.1:8787",
  }).optional()
    .describe(
      "How devices reach the gateway's HTTP server (in notifications); from http.listen when absent",
    ),
  mqtt: s.object({
    adapter: s.id().optional()
      .describe("The mqtt or zigbee2mqtt adapter entry whose broker the devices use"),
    url: s.string({
      pattern: BROKER_URL,
      patternName: "a broker URL such as mqtt://127.0.0.1:1883",
    })
      .optional().describe("The broker's URL, when no adapter entry names it"),
    username: s.string().optional().describe("Username; use ${ENV} or ${file:...}"),
    password: s.string().optional().describe("Password; use ${ENV} or ${file:...}"),
    topicPrefix: s.string({
      min: 1,
      max: 128,
      pattern: /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
      patternName: "topic levels without wildcards, such as outpost/devices",
    }).default("outpost/devices")
      .describe("Topics are <prefix>/<device>/update/available and <prefix>/<device>/update/state"),
  }).optional().describe("Notifications and state reports over the local broker"),
  exec: s.object({
    command: s.string({ min: 1 }).describe("Program run for each offer (a vendor flashing tool)"),
    args: s.array(s.string()).default([])
      .describe("Its arguments; OUTPOST_DEVICE, OUTPOST_ARTIFACT_* are in its environment"),
    timeout: s.duration({ min: 1000 }).default(600_000).describe("Stop it after this long"),
  }).optional()
    .describe(
      "A program run for each offer, for devices that need a vendor tool; only from the local " +
        "config file (a remote config-set may not change it)",
    ),
  classes: s.record(s.object({
    rollout: rolloutSchema.default({ batch: 0, failureThreshold: 1, reportTimeout: 3_600_000 }),
  })).default({}).describe("Per device class: staged rollout"),
  list: s.array(
    s.object({
      id: s.string(DEVICE_ID).describe("Device id: its topic level and its name in /status"),
      class: s.string(DEVICE_ID).describe(
        "Device class that artifacts name (e.g. esp32-boiler-v3)",
      ),
      token: s.string({ min: 16, max: 256 })
        .describe("The device's download and report token; use ${file:...} or ${ENV}"),
    }),
    { max: 10_000 },
  ).default([]).describe("The field devices served"),
}, {
  refine(v, ctx, path) {
    const ids = new Map<string, number>();
    const tokens = new Map<string, number>();
    v.list.forEach((d, i) => {
      const at = ids.get(d.id);
      if (at !== undefined) {
        ctx.conflict([...path, "list", i, "id"], `device "${d.id}" is listed twice`, [
          ...path,
          "list",
          at,
          "id",
        ]);
      } else ids.set(d.id, i);
      const t = tokens.get(d.token);
      if (t !== undefined) {
        ctx.conflict(
          [...path, "list", i, "token"],
          `devices "${v.list[t].id}" and "${d.id}" share a token: each device needs its own`,
          [...path, "list", t, "token"],
        );
      } else tokens.set(d.token, i);
    });
    if (v.mqtt?.adapter && v.mqtt.url) {
      ctx.fail([...path, "mqtt"], "expected either adapter or url, got both");
    }
  },
});

/** Validated `devices:` config. */
export type DevicesConfig = Infer<typeof devicesSchema>;
