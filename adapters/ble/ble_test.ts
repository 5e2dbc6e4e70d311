import { deepEqual, ok } from "node:assert/strict";
import type { AdapterContext, DeviceState, EmitResult } from "../../src/adapter.ts";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { silentLogger } from "../../src/log.ts";
import type { Reading } from "../../src/reading.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { type BleConfig, bleSchema } from "./config.ts";
import { ble } from "./mod.ts";
import { BluezPeer } from "./testdata/bluez_peer.ts";

const RUUVI = "C4:00:00:00:00:01";
const BTHOME = "C4:00:00:00:00:02";
const NORDIC = "C4:00:00:00:00:03";
const STRANGER = "C4:00:00:00:00:04";
const DISCOVERED = "C4:00:00:00:00:05";

/** Ruuvi's published RAWv2 "valid data" test vector. */
const RUUVI_VALID = "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F";

const FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb";

/** A BTHome v2 payload with one temperature object (0x02, sint16 LE, 0.01 °C). */
function bthomeTemperature(celsius: number): string {
  const raw = Math.round(celsius * 100);
  return "4002" +
    [raw & 0xff, (raw >> 8) & 0xff].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function validConfig(raw: unknown): BleConfig {
  const ctx = new Ctx();
  const config = bleSchema.check(raw, ctx, []);
  deepEqual(ctx.issues, []);
  if (config === INVALID) throw new Error("config is invalid");
  return config;
}

interface Batch {
  at: number;
  readings: Reading[];
}

function fakeContext(config: BleConfig, signal: AbortSignal) {
  const batches: Batch[] = [];
  const counters = new Map<string, number>();
  const states = new Map<string, { state: DeviceState; reason?: string }>();
  const ctx: AdapterContext<BleConfig> = {
    name: "ble",
    config,
    emit: (readings): Promise<EmitResult> => {
      batches.push({ at: Date.now(), readings });
      return Promise.resolve({ accepted: readings.length, rejected: 0, seqs: [] });
    },
    log: silentLogger(),
    signal,
    setDeviceState: (device, state, reason) => states.set(device, { state, reason }),
    count: (counter, by = 1) => counters.set(counter, (counters.get(counter) ?? 0) + by),
    setWriter: () => {},
  };
  const values = (device: string, metric: string) =>
    batches.flatMap((b) => b.readings).filter((r) => r.device === device && r.metric === metric)
      .map((r) => r.value);
  return { ctx, batches, counters, states, values };
}

Deno.test({
  name: "ble adapter decodes advertisements from BlueZ and survives adapter and BlueZ restarts",
  // dbus-next closes its socket asynchronously after disconnect().
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const peer = await BluezPeer.start();
    const ac = new AbortController();
    let running: Promise<void> | undefined;
    try {
      await peer.startBluez();
      const config = validConfig({
        busAddress: peer.address,
        adapter: "hci0",
        interval: "0ms",
        retryInterval: "100ms",
        layouts: {
          "nordic-tank": {
            manufacturer: 0x0059,
            fields: [
              { metric: "level", offset: 2, type: "int16le", scale: 0.01, unit: "%" },
              { metric: "battery", offset: 4, type: "uint8", unit: "%" },
            ],
          },
        },
        devices: [
          { name: "ruuvi-1", address: RUUVI.toLowerCase(), decoder: "ruuvi" },
          { name: "fridge", address: BTHOME, decoder: "bthome", interval: "400ms" },
          { name: "tank", address: NORDIC, decoder: "nordic-tank" },
        ],
        discover: [{ serviceUuid: "fcd2", decoder: "bthome", prefix: "bthome" }],
      });
      const f = fakeContext(config, ac.signal);
      running = ble.start(f.ctx);
      const calls = () => peer.cmd<string[]>("calls", { adapter: "hci0" });

      await t.step("starts LE discovery with duplicate data once the adapter appears", async () => {
        await peer.cmd("add_adapter", { adapter: "hci0" });
        await waitFor(
          "StartDiscovery on hci0",
          async () => (await calls()).includes("StartDiscovery"),
        );
        deepEqual((await calls()).filter((c) => c !== "GetAll" && c !== "Get"), [
          "SetDiscoveryFilter",
          "StartDiscovery",
        ]);
        deepEqual(await peer.cmd("discovery_filter", { adapter: "hci0" }), {
          Transport: "le",
          DuplicateData: true,
        });
        for (const a of [RUUVI, BTHOME, NORDIC, STRANGER, DISCOVERED]) {
          await peer.cmd("add_device", { adapter: "hci0", address: a });
        }
      });

      await t.step("decodes Ruuvi, BTHome and a YAML layout, with RSSI", async () => {
        await peer.cmd("advertise", {
          adapter: "hci0",
          address: RUUVI,
          rssi: -61,
          manufacturer: { 1177: RUUVI_VALID },
        });
        await peer.cmd("advertise", {
          adapter: "hci0",
          address: BTHOME,
          rssi: -70,
          service: { [FCD2]: "40000901610" + "2ca0903bf13" },
        });
        await peer.cmd("advertise", {
          adapter: "hci0",
          address: NORDIC,
          rssi: -80,
          manufacturer: { 89: "01022909" + "57" },
        });
        await waitFor(
          "readings of three devices",
          () =>
            f.values("ruuvi-1", "temperature").length && f.values("fridge", "temperature").length &&
            f.values("tank", "level").length,
        );
        deepEqual(f.values("ruuvi-1", "temperature"), [24.3]);
        deepEqual(f.values("ruuvi-1", "pressure"), [1000.44]);
        deepEqual(f.values("ruuvi-1", "rssi"), [-61]);
        deepEqual(f.values("fridge", "temperature"), [25.06]);
        deepEqual(f.values("fridge", "humidity"), [50.55]);
        deepEqual(f.values("fridge", "battery"), [97]);
        deepEqual(f.values("tank", "level"), [23.45]);
        deepEqual(f.values("tank", "battery"), [87]);
        const r = f.batches.flatMap((b) => b.readings).find((r) =>
          r.device === "tank" && r.metric === "level"
        )!;
        deepEqual(r.unit, "%");
        ok(Math.abs(r.ts - Date.now()) < 10_000);
        deepEqual(f.states.get("tank")?.state, "online");
      });

      await t.step(
        "counts malformed and encrypted payloads and unknown devices, emits nothing for them",
        async () => {
          const before = f.batches.length;
          await peer.cmd("advertise", {
            adapter: "hci0",
            address: RUUVI,
            manufacturer: { 1177: "0512FC" },
          });
          await peer.cmd("advertise", {
            adapter: "hci0",
            address: NORDIC,
            manufacturer: { 89: "0102" },
          });
          await peer.cmd("advertise", {
            adapter: "hci0",
            address: BTHOME,
            service: { [FCD2]: "41a47266c95f730011223378237214" },
          });
          await peer.cmd("advertise", {
            adapter: "hci0",
            address: STRANGER,
            manufacturer: { 1177: RUUVI_VALID },
          });
          await waitFor(
            "malformed, encrypted and unknown counters",
            () =>
              f.counters.get("malformed") === 2 && f.counters.get("encrypted") === 1 &&
              f.counters.get("unknown_devices") === 1,
          );
          deepEqual(f.batches.length, before);
        },
      );

      await t.step("accepts an unlisted device by its advertised service UUID", async () => {
        await peer.cmd("advertise", {
          adapter: "hci0",
          address: DISCOVERED,
          service: { [FCD2]: "40" + "0c020c" },
        });
        await waitFor("discovered device", () => f.values("bthome-c40000000005", "voltage").length);
        deepEqual(f.values("bthome-c40000000005", "voltage"), [3.074]);
      });

      await t.step("emits a device at most once per interval, with its latest values", async () => {
        const emitted = (c: number) =>
          f.batches.find((b) => b.readings.some((r) => r.device === "fridge" && r.value === c));
        const advertise = (c: number) =>
          peer.cmd("advertise", {
            adapter: "hci0",
            address: BTHOME,
            service: { [FCD2]: bthomeTemperature(c) },
          });
        await advertise(19);
        const first = await waitFor("an emission of 19 °C", () => emitted(19));
        // These arrive within the 400ms that follow that emission: only the last may go out.
        for (const c of [20, 21, 22]) await advertise(c);
        const second = await waitFor("the throttled emission", () => emitted(22));
        deepEqual(f.values("fridge", "temperature"), [25.06, 19, 22]);
        ok(second.at - first.at >= 390, `second emission after ${second.at - first.at}ms`);
      });

      await t.step("restarts discovery after the adapter is removed and comes back", async () => {
        await peer.cmd("remove_adapter", { adapter: "hci0" });
        await waitFor(
          "devices unavailable",
          () => f.states.get("ruuvi-1")?.state === "unavailable",
        );
        ok(f.states.get("ruuvi-1")?.reason?.includes("removed"));
        await peer.cmd("add_adapter", { adapter: "hci0" });
        await waitFor(
          "StartDiscovery on the new hci0",
          async () => (await calls()).includes("StartDiscovery"),
        );
        await peer.cmd("advertise", {
          adapter: "hci0",
          address: RUUVI,
          manufacturer: { 1177: RUUVI_VALID },
        });
        await waitFor("a new Ruuvi reading", () => f.values("ruuvi-1", "temperature").length === 2);
        deepEqual(f.states.get("ruuvi-1")?.state, "online");
      });

      await t.step("waits while the adapter is powered off and resumes when it is on", async () => {
        const starts = (await calls()).filter((c) => c === "StartDiscovery").length;
        await peer.cmd("set_powered", { adapter: "hci0", powered: false });
        await waitFor(
          "devices unavailable",
          () => f.states.get("ruuvi-1")?.state === "unavailable",
        );
        ok(f.states.get("ruuvi-1")?.reason?.includes("powered off"));
        await peer.cmd("set_powered", { adapter: "hci0", powered: true });
        await waitFor(
          "StartDiscovery after power on",
          async () => (await calls()).filter((c) => c === "StartDiscovery").length > starts,
        );
      });

      await t.step("resubscribes and restarts discovery when BlueZ restarts", async () => {
        await peer.stopBluez();
        await waitFor("devices unavailable", () => f.states.get("tank")?.state === "unavailable");
        await peer.startBluez();
        await peer.cmd("add_adapter", { adapter: "hci0" });
        await waitFor(
          "StartDiscovery on the new BlueZ",
          async () => (await calls()).includes("StartDiscovery"),
        );
        await peer.cmd("add_device", { adapter: "hci0", address: NORDIC });
        await peer.cmd("advertise", {
          adapter: "hci0",
          address: NORDIC,
          manufacturer: { 89: "0000e803" + "64" },
        });
        await waitFor("a reading after the restart", () => f.values("tank", "level").includes(10));
        deepEqual(f.values("tank", "battery"), [87, 100]);
      });

      ac.abort();
      await running;
      running = undefined;
    } finally {
      ac.abort();
      await running?.catch(() => {});
      await peer.close();
    }
  },
});

Deno.test("ble adapter fails with the bus address when D-Bus is not there", async () => {
  const config = validConfig({
    busAddress: "unix:path=/nonexistent/outpost-ble-bus",
    devices: [{ name: "x", address: RUUVI, decoder: "ruuvi" }],
  });
  const ac = new AbortController();
  const f = fakeContext(config, ac.signal);
  try {
    await ble.start(f.ctx);
    ok(false, "start() resolved");
  } catch (e) {
    deepEqual((e as Error).name, "BleBusError");
    ok((e as Error).message.includes("/nonexistent/outpost-ble-bus"), (e as Error).message);
  } finally {
    ac.abort();
  }
});

Deno.test("ble adapter fails, without taking the process down, when Deno lacks a permission", async () => {
  const script = `
    import { ble } from ${JSON.stringify(new URL("./mod.ts", import.meta.url).href)};
    import { silentLogger } from ${
    JSON.stringify(new URL("../../src/log.ts", import.meta.url).href)
  };
    const config = ${
    JSON.stringify(validConfig({ devices: [{ name: "x", address: RUUVI, decoder: "ruuvi" }] }))
  };
    const ctx = { name: "ble", config, log: silentLogger(), signal: new AbortController().signal,
      emit: () => Promise.resolve({ accepted: 0, rejected: 0, seqs: [] }),
      setDeviceState() {}, count() {}, setWriter() {} };
    await ble.start(ctx).then(() => console.log("resolved"), (e) => console.log(e.name + ": " + e.message));
  `;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, script);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      "--allow-read",
      // The gateway always has env access (the npm MQTT client reads it when loaded).
      "--allow-env",
      file,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(file));
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  ok(out.success, text);
  ok(
    text.startsWith(
      'BleBusError: Cannot connect to D-Bus at "unix:path=/run/dbus/system_bus_socket": Deno lacks --allow-sys=uid --allow-net=unix:/run/dbus/system_bus_socket --allow-write=',
    ),
    text,
  );
});
