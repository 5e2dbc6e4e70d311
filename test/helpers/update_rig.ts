/**
 * The setup most self-update tests share: release artifacts, a channel directory served over
 * loopback HTTP, release keys from `release init`, a Mosquitto, and a {@linkcode device} on 1.1.0
 * that follows the channel and forwards to the broker.
 */
import { type Broker, startMosquitto } from "./mosquitto.ts";
import {
  type ArtifactName,
  artifacts,
  type ChannelServer,
  channelServer,
  type Device,
  device,
  type DeviceOptions,
  releaseDir,
} from "./update.ts";

/** What {@linkcode updateRig} set up; `close()` stops the device, the channel and the broker. */
export interface UpdateRig {
  /** The release artifacts by name. */
  a: Record<ArtifactName, string>;
  /** A temporary directory of the test's own. */
  tmp: string;
  /** The channel directory the server serves (publish into it). */
  channel: string;
  /** The release directory (`release init`): `key` signs, `pub` is its root.json. */
  key: { key: string; pub: string };
  broker: Broker;
  srv: ChannelServer;
  dev: Device;
  close(): Promise<void>;
}

/**
 * Sets up an {@linkcode UpdateRig}; `opts` go to {@linkcode device} (checks every second unless
 * `checkInterval` says otherwise). On a failure half-way, what was started is stopped.
 */
export async function updateRig(
  prefix: string,
  opts: Partial<Omit<DeviceOptions, "channelUrl" | "pubkeys" | "broker">> = {},
): Promise<UpdateRig> {
  const a = await artifacts();
  const tmp = await Deno.makeTempDir({ prefix });
  const channel = `${tmp}/stable`;
  await Deno.mkdir(channel);
  const [broker, key] = await Promise.all([startMosquitto(), releaseDir(`${tmp}/keys`)]);
  const srv = channelServer(channel);
  try {
    const dev = await device({
      channelUrl: srv.url,
      pubkeys: [key.pub],
      broker: broker.url,
      checkInterval: "1s",
      ...opts,
    });
    return {
      a,
      tmp,
      channel,
      key,
      broker,
      srv,
      dev,
      async close() {
        await dev.close();
        await srv.close();
        await broker.stop();
      },
    };
  } catch (e) {
    await srv.close();
    await broker.stop();
    throw e;
  }
}
