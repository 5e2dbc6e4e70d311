/**
 * `deno task demo --devices`: a release channel on loopback with a firmware image for the
 * class `esp32-demo`, and two simulated ESP32 boards (test/helpers/ota_device.ts) that the
 * gateway updates: one good, one whose new image fails its self-test and rolls back, which stops
 * the rollout (batch 1, failureThreshold 1).
 */
import { initRelease, publish, publishDevice, Slots } from "../src/update/mod.ts";
import { OtaDevice } from "../test/helpers/ota_device.ts";

/** What the demo adds to the gateway's config and runs beside it. */
export interface DeviceDemo {
  /** YAML sections `update:` and `devices:` for the demo config. */
  yaml: string;
  /** Boots the boards (after the gateway is up) and prints what they report. */
  start(brokerUrl: string): Promise<void>;
  stop(): Promise<void>;
}

/** Lays out a channel, keys and an install root under `dir` (made afresh) and serves it. */
export async function deviceDemo(dir: string): Promise<DeviceDemo> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const channel = `${dir}/channel/stable`;
  await Deno.mkdir(channel, { recursive: true });
  await initRelease(`${dir}/release`);
  // The gateway's own release is the version it runs: its self-updater has nothing to do.
  await Deno.writeTextFile(`${dir}/outpost.js`, "#!/usr/bin/env -S deno run\n");
  await publish({
    channel,
    artifact: `${dir}/outpost.js`,
    version: "0.1.0-dev",
    target: Deno.build.target,
    keys: [],
    rootDir: `${dir}/release`,
  });
  const image = new Uint8Array(256 * 1024);
  for (let i = 0; i < image.length; i += 65536) {
    crypto.getRandomValues(image.subarray(i, i + 65536));
  }
  await Deno.writeFile(`${dir}/boiler-1.1.0.bin`, image);
  await publishDevice({
    channel,
    artifact: `${dir}/boiler-1.1.0.bin`,
    name: "esp32-demo",
    version: "1.1.0",
    classes: ["esp32-demo"],
    keys: [],
    rootDir: `${dir}/release`,
  });
  await new Slots(`${dir}/opt`).init(`${dir}/outpost.js`, "0.1.0-dev");
  await Deno.copyFile(`${dir}/release/root.json`, `${dir}/opt/root.json`);
  const ids = ["board-1", "board-2", "board-3"];
  for (const id of ids) {
    const token = Array.from(
      crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    await Deno.writeTextFile(`${dir}/${id}.token`, token, { mode: 0o600 });
  }
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path.includes("..")) return new Response("no", { status: 400 });
      const data = await Deno.readFile(`${dir}/channel${path}`).catch(() => undefined);
      return data ? new Response(data) : new Response("not found", { status: 404 });
    },
  );
  const boards: OtaDevice[] = [];
  return {
    yaml: `
# Added by deno task demo --devices: a release channel with a firmware image for three boards.
update:
  channel: http://127.0.0.1:${server.addr.port}/stable/
  installRoot: ${dir}/opt
  checkInterval: 1h
  allowInsecure: true
devices:
  dataDir: ${dir}/artifacts
  checkInterval: 2s
  mqtt: { url: "\${OUTPOST_DEMO_BROKER:-mqtt://127.0.0.1:1883}" }
  classes:
    esp32-demo: { rollout: { batch: 1, failureThreshold: 1 } }
  list:
${
      ids.map((id) =>
        `    - { id: ${id}, class: esp32-demo, token: "\${file:${dir}/${id}.token}" }`
      ).join("\n")
    }
`,
    async start(brokerUrl) {
      for (const [i, id] of ids.entries()) {
        const board = await OtaDevice.start({
          id,
          token: (await Deno.readTextFile(`${dir}/${id}.token`)).trim(),
          broker: brokerUrl,
          dir: `${dir}/${id}`,
          version: "1.0.0",
          // The second board's new image fails its self-test: the rollout stops there.
          failAfterInstall: i === 1,
        });
        boards.push(board);
      }
      const shown = new Map<string, number>();
      const watch = setInterval(() => {
        for (const b of boards) {
          const r = b.reports.slice(shown.get(b.o.id) ?? 0);
          shown.set(b.o.id, b.reports.length);
          for (const x of r) {
            console.log(
              `board ${b.o.id} → ${x.state}, runs ${x.version}${x.error ? ` (${x.error})` : ""}`,
            );
          }
        }
      }, 500);
      ac.signal.addEventListener("abort", () => clearInterval(watch));
    },
    async stop() {
      for (const b of boards) await b.close();
      ac.abort();
      await server.finished;
    },
  };
}
