import assert from "node:assert/strict";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { subscribe } from "./helpers/subscriber.ts";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";

type Status = {
  uplink: { connected: boolean; lastError: string | null; target: string };
  buffer: { pending: number };
};

function config(dir: string, url: string, tls: string): string {
  return `
gateway: { id: tls-gw }
buffer: { path: ${dir}/buffer.db }
uplink:
  type: mqtt
  url: ${url}
  reconnect: { min: 200ms, max: 1s }
  tls:
${tls}
adapters:
  - type: simulated
    name: sim
    devices: 2
    interval: 50ms
`;
}

Deno.test("mutual TLS: the right client certificate connects and readings arrive", async () => {
  const broker = await startMosquitto({ tls: true });
  const c = broker.certs!;
  const sub = await subscribe(broker.url);
  const dir = await Deno.makeTempDir();
  const gw = await startGateway(
    dir,
    config(
      dir,
      broker.tlsUrl,
      `    ca: ${c.ca}\n    cert: ${c.clientCert}\n    key: ${c.clientKey}`,
    ),
  );
  try {
    await waitFor("readings over mutual TLS", () => sub.unique().size >= 20, 20_000);
    const s = await gw.status() as unknown as Status;
    assert.equal(s.uplink.connected, true);
  } finally {
    await gw.kill();
    await sub.close();
    await broker.stop();
  }
});

for (
  const [name, tls, reason] of [
    [
      "a client certificate from another CA",
      (c: Record<string, string>) =>
        `    ca: ${c.ca}\n    cert: ${c.rogueCert}\n    key: ${c.rogueKey}`,
      /broker rejected the client certificate/,
    ],
    [
      "no client certificate",
      (c: Record<string, string>) => `    ca: ${c.ca}`,
      /broker requires a client certificate/,
    ],
    [
      "a server certificate the gateway does not trust",
      (c: Record<string, string>) =>
        `    ca: ${c.rogueCa}\n    cert: ${c.clientCert}\n    key: ${c.clientKey}`,
      /server certificate not trusted/,
    ],
  ] as const
) {
  Deno.test(`mutual TLS: ${name} is refused with an error naming the broker and the reason; buffering goes on`, async () => {
    const broker = await startMosquitto({ tls: true });
    const dir = await Deno.makeTempDir();
    const gw = await startGateway(
      dir,
      config(dir, broker.tlsUrl, tls(broker.certs! as unknown as Record<string, string>)),
    );
    try {
      const s = await waitFor("a recorded connection error", async () => {
        const st = await gw.status() as unknown as Status;
        return st.uplink.lastError ? st : undefined;
      }, 20_000);
      assert.equal(s.uplink.connected, false);
      assert.match(s.uplink.lastError!, reason);
      await waitFor(
        "the log line naming the broker",
        () => gw.output().includes(`Cannot connect to broker "${broker.tlsUrl}": `),
      );
      const before = s.buffer.pending;
      await waitFor("readings to keep being buffered", async () => {
        const st = await gw.status() as unknown as Status;
        return st.buffer.pending > before + 20 && !st.uplink.connected;
      }, 20_000);
    } finally {
      await gw.kill();
      await broker.stop();
    }
  });
}
