/** A stand-in for systemd's notification socket (`NOTIFY_SOCKET`), for tests of sd_notify. */

/** One datagram as it arrived. */
export interface Datagram {
  /** Arrival, `performance.now()` ms. */
  at: number;
  text: string;
  /** For READY=1 when `healthz` was given: whether /healthz answered at the moment it arrived. */
  served?: boolean;
}

/** What {@linkcode notifySocket} gives. */
export interface NotifySocket {
  /** Every datagram so far, in arrival order. */
  got: Datagram[];
  /** The datagrams with a `KEY=` line. */
  lines(key: string): Datagram[];
  close(): Promise<void>;
}

/**
 * Listens on `path` (a leading NUL: an abstract address) and records every datagram; with
 * `healthz`, probes that URL when READY=1 arrives.
 */
export function notifySocket(
  path: string,
  opts: { healthz?: () => string | undefined } = {},
): NotifySocket {
  const conn = Deno.listenDatagram({ transport: "unixpacket", path });
  const got: Datagram[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const [buf] = await conn.receive();
        const d: Datagram = { at: performance.now(), text: new TextDecoder().decode(buf) };
        got.push(d);
        const url = opts.healthz?.();
        if (d.text.split("\n").includes("READY=1") && url) {
          const r = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
          await r?.body?.cancel();
          d.served = r !== undefined;
        }
      }
    } catch { /* closed */ }
  })();
  return {
    got,
    lines: (key) =>
      got.flatMap((d) => d.text.split("\n").filter((l) => l.startsWith(`${key}=`)).map(() => d)),
    close: async () => {
      conn.close();
      await done;
    },
  };
}
