/**
 * The `ble` adapter: listens to Bluetooth Low Energy advertisements through BlueZ on D-Bus and
 * decodes BTHome v2, RuuviTag RAWv2 and byte layouts declared in YAML.
 *
 * @module
 */
import { defineAdapter } from "../../src/adapter.ts";
import { BleBusError, watchBluez } from "./_bluez.ts";
import { Devices } from "./_devices.ts";
import { type BleConfig, bleSchema } from "./config.ts";

/** The D-Bus connection failed, dropped, or Deno lacks a permission to open it. */
export { BleBusError } from "./_bluez.ts";

const SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket";

/** An environment variable, or undefined when unset or not readable under Deno's permissions. */
function env(variable: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return undefined;
  return Deno.env.get(variable);
}

/** Resolves the D-Bus address the config asks for. */
function busAddressOf(config: BleConfig): string {
  if (config.busAddress) return config.busAddress;
  if (config.bus === "system") return env("DBUS_SYSTEM_BUS_ADDRESS") ?? SYSTEM_BUS;
  const session = env("DBUS_SESSION_BUS_ADDRESS");
  if (!session) {
    throw new BleBusError(
      'Cannot use "bus: session": DBUS_SESSION_BUS_ADDRESS is not set or not readable',
    );
  }
  return session;
}

/**
 * BLE sensors through BlueZ: discovery with duplicate reporting, devices picked by address or
 * by advertised service UUID / manufacturer id, one decoder per device, RSSI as a metric, and a
 * per-device interval that keeps the latest values and emits at most once per interval.
 */
export const ble = defineAdapter<BleConfig>({
  type: "ble",
  schema: bleSchema,
  async start(ctx) {
    const { config, log } = ctx;
    // Ends the throttle timers however start() ends, not only when the gateway aborts.
    const done = new AbortController();
    const signal = AbortSignal.any([ctx.signal, done.signal]);
    try {
      const busAddress = busAddressOf(config);
      const devices = new Devices({ ...ctx, signal });
      log.info("starting", {
        bus: busAddress,
        adapter: config.adapter ?? "any",
        devices: config.devices.length,
        discover: config.discover.length,
      });
      await watchBluez({
        busAddress,
        adapter: config.adapter,
        retryMs: config.retryInterval,
        log,
        signal,
      }, {
        device: (path, props, live) => devices.update(path, props, live),
        deviceRemoved: (path) => devices.removed(path),
        state: (scanning, reason) => {
          if (!scanning) devices.unavailable(reason);
        },
      });
    } finally {
      done.abort();
    }
  },
});
