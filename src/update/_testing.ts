/**
 * TEST-ONLY: the update config and signed manifest the update unit tests start from.
 *
 * @module
 */
import type { UpdateConfig } from "./config.ts";
import { generateKey, importSigningKey, type PublicKeyText } from "./keys.ts";
import { type Manifest, type SignedManifest, signManifest } from "./manifest.ts";

/** An update config for a channel at `channel` (plain HTTP allowed) and an install root at
 * `installRoot`, with test-sized limits; `over` replaces any key. */
export function testUpdateConfig(
  channel: string,
  installRoot: string,
  over: Partial<UpdateConfig> = {},
): UpdateConfig {
  return {
    channel,
    channelName: "stable",
    checkInterval: 3_600_000,
    installRoot,
    hardwareClass: "generic",
    maxArtifactBytes: 1024 ** 2,
    maxMetadataBytes: 512 * 1024,
    minDownloadRate: 1024,
    downloadTimeout: 60_000,
    healthDeadline: 10_000,
    maxAttempts: 3,
    allowInsecure: true,
    trustedKeys: [],
    ...over,
  };
}

/**
 * A manifest of channel "stable" offering version 2.0.0 of `artifact` (its path "artifact") for
 * this machine's target and hardware "generic", published a second ago and valid for a day,
 * signed by a fresh key whose public half comes back with it; `over` replaces any field.
 */
export async function signedOffer(
  artifact: { sha256: string; length: number },
  over: Partial<SignedManifest> = {},
): Promise<{ manifest: Manifest; publicKey: PublicKeyText }> {
  const file = await generateKey();
  const manifest = await signManifest({
    _type: "outpost-release",
    channel: "stable",
    version: "2.0.0",
    counter: 7,
    published: new Date(Date.now() - 1000).toISOString(),
    expires: new Date(Date.now() + 86_400_000).toISOString(),
    targets: {
      [Deno.build.target]: {
        path: "artifact",
        sha256: artifact.sha256,
        length: artifact.length,
        hardware: ["generic"],
      },
    },
    ...over,
  }, [await importSigningKey(file)]);
  return { manifest, publicKey: file.public };
}

/** A response whose body sends `data` `step` bytes every `everyMs` ms and ends after the last;
 * the timer stops when the client goes away. */
export function dripResponse(
  data: Uint8Array<ArrayBuffer>,
  opts: { step: number; everyMs: number },
): Response {
  let i = 0;
  let timer: ReturnType<typeof setInterval>;
  return new Response(
    new ReadableStream({
      start(c) {
        timer = setInterval(() => {
          try {
            c.enqueue(data.subarray(i, i += opts.step));
            if (i >= data.length) c.close();
          } catch {
            clearInterval(timer);
          }
        }, opts.everyMs);
      },
      cancel() {
        clearInterval(timer);
      },
    }),
  );
}

/** An HTTP server on a free loopback port answering with `handler`: its base URL (no trailing
 * slash) and `close()`, which stops it and waits until it has. */
export function serveLocal(
  handler: (req: Request) => Response | Promise<Response>,
): { url: string; close(): Promise<void> } {
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    handler,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}
