/**
 * `deno task screenshots`: starts a demo gateway (simulated sensors, 30 days of history in its
 * buffer, an MQTT uplink to a local Mosquitto) and the fleet console, all on loopback, opens both
 * pages in headless Chromium and writes PNG screenshots to docs/img/:
 *
 * - `gateway-page.png`: the gateway page, signed in;
 * - `gateway-history.png`: its history panel, 7 days of one device;
 * - `fleet-page.png`: the fleet page with the gateway;
 * - `gateway-alarms.png`: its alarms panel (two rules, one alarm acknowledged).
 *
 * Needs Debian's `chromium` and `mosquitto` packages (`.ci/run` installs both). Everything it
 * starts is stopped at the end, and its files are removed.
 */
import { Buffer } from "../src/buffer/mod.ts";
import { bufferSchema } from "../src/config/gateway.ts";
import { Ctx, INVALID } from "../src/config/schema.ts";
import { silentLogger } from "../src/log.ts";
import { generateKey } from "../src/update/mod.ts";
import { launchBrowser } from "../test/helpers/browser.ts";
import { startFleetPage } from "../test/helpers/fleet_page.ts";
import { startMosquitto } from "../test/helpers/mosquitto.ts";
import { freePort, waitFor } from "../test/helpers/ports.ts";
import { collectOutput } from "../test/helpers/proc.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const OUT = `${ROOT}docs/img`;
const DAY = 86_400_000;

/** 30 days of the demo's four devices (temperature, pressure, door), one reading per 5 min. */
async function history(path: string): Promise<void> {
  const config = bufferSchema.check({ path, retention: "60d" }, new Ctx(), []);
  if (config === INVALID) throw new Error("buffer config");
  const buf = Buffer.open(config, { log: silentLogger() });
  const end = Date.now() - 60_000;
  const readings = [];
  for (let ts = end - 30 * DAY, i = 0; ts < end; ts += 300_000, i++) {
    for (let d = 1; d <= 4; d++) {
      const day = Math.sin((2 * Math.PI * ((ts % DAY) / DAY)) - Math.PI / 2);
      const t = 22 + 3.5 * day + d * 0.4 + Math.sin(i / 37 + d) * 0.6;
      const p = 4 + Math.sin(i / 500 + d) * 1.2 + Math.sin(i / 9) * 0.15;
      readings.push(
        { device: `sim-${d}`, metric: "temperature", value: round(t), unit: "C", ts },
        { device: `sim-${d}`, metric: "pressure", value: round(p), unit: "bar", ts },
        { device: `sim-${d}`, metric: "door_open", value: (i + d * 7) % 41 < 3, ts },
      );
    }
  }
  for (let i = 0; i < readings.length; i += 10_000) await buf.append(readings.slice(i, i + 10_000));
  buf.close();
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** A child process whose output is kept, stopped by pid. */
function spawn(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { output, drained } = collectOutput(child);
  return {
    output,
    async stop() {
      try {
        Deno.kill(child.pid, "SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await drained;
    },
  };
}

/** Rules for the alarms panel: doors that open now and then, one pressure alarm that holds. */
const ALARM_RULES = `rules:
  - name: door-open
    message: "{device} door open"
    when: { device: "sim-*", metric: door_open, equals: true }
  - name: pressure-high
    severity: critical
    message: "sim-2 pressure {value} bar"
    when: { device: sim-2, metric: pressure, above: 2.2 }
`;

const dir = await Deno.makeTempDir({ prefix: "outpost-screenshots-" });
const broker = await startMosquitto();
const procs: { stop(): Promise<unknown> }[] = [];
const browser = await launchBrowser();
try {
  await Deno.mkdir(`${dir}/data`);
  await history(`${dir}/data/buffer.db`);
  const key = await generateKey();
  await Deno.writeTextFile(`${dir}/operator.key`, JSON.stringify(key), { mode: 0o600 });
  const httpPort = freePort();
  const yaml = (await Deno.readTextFile(`${ROOT}config/demo.yaml`))
    .replace("${OUTPOST_DEMO_DIR:-data}", `${dir}/data`)
    .replace("${OUTPOST_DEMO_BROKER:-mqtt://127.0.0.1:1883}", broker.url)
    .replace("${OUTPOST_DEMO_HTTP:-127.0.0.1:8787}", `127.0.0.1:${httpPort}`)
    .replace("site: your laptop", "site: Pump house 3") +
    `\ncommands:\n  operatorKeys:\n    - { key: "${key.public}", scopes: [read, operate], name: screenshots }\n` +
    ALARM_RULES;
  await Deno.writeTextFile(`${dir}/site.yaml`, yaml);
  const gateway = spawn(["run", "--config", `${dir}/site.yaml`]);
  procs.push(gateway);
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor(
    "the gateway to be healthy",
    async () => (await fetch(`${base}/healthz`).catch(() => null))?.status === 200,
    30_000,
    200,
  );
  const token = (await Deno.readTextFile(`${dir}/data/http-token`)).trim();

  const fleet = await startFleetPage(["--broker", broker.url, "--key", `${dir}/operator.key`]);
  procs.push(fleet);
  const fleetUrl = fleet.url;
  const fleetToken = await waitFor(
    "the fleet page's token",
    () => /access token \(for this run only\): (\S+)/.exec(fleet.output())?.[1],
    30_000,
    100,
  );

  const page = await browser.browser.newPage({
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    colorScheme: "light",
    timezoneId: "UTC",
  });
  await page.goto(base + "/");
  await page.locator("#token").fill(token);
  await page.locator("#login-submit").click();
  await page.locator('[data-device="sim-4"] .badge.presence').waitFor();
  await page.locator('#hist-device option[value="sim-2"]').waitFor({ state: "attached" });
  await page.locator("#hist-device").selectOption("sim-2");
  await page.locator('[data-range="604800000"]').click();
  await waitFor(
    "the 7-day chart",
    async () => (await page.locator("#hist-info").innerText()).includes("sim-2"),
    15_000,
    100,
  );
  // A few samples for the trend lines.
  await page.waitForTimeout(6000);
  await page.locator('#alarms-active tr[data-alarm="pressure-high"]').waitFor({ timeout: 30_000 });
  await page.locator(
    '#alarms-active tr[data-alarm="pressure-high"] button[data-action=acknowledge]',
  )
    .click();
  await page.locator('#alarms-acked tr[data-alarm="pressure-high"]').waitFor();
  await page.screenshot({ path: `${OUT}/gateway-page.png`, fullPage: true });
  await page.locator("#history").screenshot({ path: `${OUT}/gateway-history.png` });
  await page.locator("#alarms").screenshot({ path: `${OUT}/gateway-alarms.png` });
  console.log(`wrote ${OUT}/gateway-page.png, gateway-history.png and gateway-alarms.png`);

  const tab = await browser.browser.newPage({
    viewport: { width: 1280, height: 720 },
    colorScheme: "light",
    timezoneId: "UTC",
  });
  await tab.goto(fleetUrl);
  await tab.locator("#token").fill(fleetToken);
  await tab.locator('#login-form button[type="submit"]').click();
  await tab.locator('tr[data-gateway="demo-gw"][data-state="online"]').waitFor({ timeout: 30_000 });
  await tab.screenshot({ path: `${OUT}/fleet-page.png`, fullPage: true });
  console.log(`wrote ${OUT}/fleet-page.png`);
} finally {
  await browser.close();
  for (const p of procs.reverse()) await p.stop();
  await broker.stop();
  await Deno.remove(dir, { recursive: true });
}
