import { deepEqual, ok } from "node:assert/strict";
import type { DeviceState } from "../../src/adapter.ts";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { silentLogger } from "../../src/log.ts";
import type { Reading } from "../../src/reading.ts";
import { waitFor } from "../../test/helpers/ports.ts";
import { Devices, fullUuid } from "./_devices.ts";
import { type BleConfig, bleSchema } from "./config.ts";
import { fromHex } from "./testdata/fuzz.ts";

const RUUVI_VALID = fromHex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F");

function setup(raw: Record<string, unknown>) {
  const ctx = new Ctx();
  const config = bleSchema.check(raw, ctx, []);
  if (config === INVALID) throw new Error(JSON.stringify(ctx.issues));
  const ac = new AbortController();
  const readings: Reading[] = [];
  const counters = new Map<string, number>();
  const states = new Map<string, [DeviceState, string?]>();
  let clock = Date.now();
  const devices = new Devices({
    config: config as BleConfig,
    emit: (r) => {
      readings.push(...r);
      return Promise.resolve({ accepted: r.length, rejected: 0, seqs: [] });
    },
    log: silentLogger(),
    count: (c, by = 1) => counters.set(c, (counters.get(c) ?? 0) + by),
    setDeviceState: (d, s, reason) => states.set(d, [s, reason]),
    signal: ac.signal,
    now: () => clock,
  });
  return { devices, readings, counters, states, ac, advance: (ms: number) => (clock += ms) };
}

Deno.test("fullUuid() expands 16- and 32-bit UUIDs to BlueZ's 128-bit form", () => {
  deepEqual(fullUuid("FCD2"), "0000fcd2-0000-1000-8000-00805f9b34fb");
  deepEqual(fullUuid("0000FCD2"), "0000fcd2-0000-1000-8000-00805f9b34fb");
  deepEqual(
    fullUuid("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"),
    "6e400001-b5a3-f393-e0a9-e50e24dcca9e",
  );
});

Deno.test("Devices accepts unlisted devices by manufacturer id, named after their address", () => {
  const t = setup({
    rssi: false,
    interval: 0,
    discover: [{ manufacturer: 0x0499, decoder: "ruuvi", prefix: "ruuvi" }],
  });
  try {
    const path = "/org/bluez/hci0/dev_C8_25_2D_8E_9F_4A";
    t.devices.update(path, { rssi: -50, manufacturerData: new Map([[0x0499, RUUVI_VALID]]) }, true);
    deepEqual(t.readings.map((r) => r.device), Array(10).fill("ruuvi-c8252d8e9f4a"));
    ok(!t.readings.some((r) => r.metric === "rssi"), "rssi: false leaves the signal strength out");
  } finally {
    t.ac.abort();
  }
});

Deno.test("Devices does not emit the possibly old data of a snapshot", () => {
  const t = setup({
    interval: 0,
    devices: [{ name: "cold-room", address: "C8:25:2D:8E:9F:4A", decoder: "ruuvi" }],
  });
  try {
    const props = {
      address: "C8:25:2D:8E:9F:4A",
      manufacturerData: new Map([[0x0499, RUUVI_VALID]]),
    };
    t.devices.update("/org/bluez/hci0/dev_C8_25_2D_8E_9F_4A", props, false);
    deepEqual(t.readings, []);
    t.devices.update("/org/bluez/hci0/dev_C8_25_2D_8E_9F_4A", props, true);
    deepEqual(t.readings.length, 10);
  } finally {
    t.ac.abort();
  }
});

Deno.test("Devices marks a silent device offline after staleAfter", async () => {
  const t = setup({
    interval: 0,
    staleAfter: "1s",
    devices: [{ name: "cold-room", address: "C8:25:2D:8E:9F:4A", decoder: "ruuvi" }],
  });
  try {
    t.devices.update("/org/bluez/hci0/dev_C8_25_2D_8E_9F_4A", {
      manufacturerData: new Map([[0x0499, RUUVI_VALID]]),
    }, true);
    deepEqual(t.states.get("cold-room"), ["online", undefined]);
    t.advance(1500);
    await waitFor("offline", () => t.states.get("cold-room")?.[0] === "offline", 3000);
    deepEqual(t.states.get("cold-room")?.[1], "no advertisement for 2s");
  } finally {
    t.ac.abort();
  }
});
