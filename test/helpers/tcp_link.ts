/** A TCP link opened by a test: forwards `127.0.0.1:port` to a target port until closed. */
export interface TcpLink {
  port: number;
  /** Connections forwarded so far. */
  connections(): number;
  /** Stops listening and cuts every forwarded connection. */
  close(): void;
}

/**
 * Listens on `127.0.0.1:port` and forwards each connection to `127.0.0.1:target`, in this
 * process. Before it is opened, and after it is closed, nothing listens on `port`: a client there
 * sees exactly what it sees when its server is not running (connection refused). Tests use it to
 * bring an uplink back at a moment they choose while their own subscriber stays connected to the
 * broker behind it.
 */
export function openTcpLink(port: number, target: number): TcpLink {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const open = new Set<Deno.Conn>();
  let count = 0;
  let closed = false;
  const drop = (c: Deno.Conn) => {
    if (!open.delete(c)) return;
    try {
      c.close();
    } catch { /* already closed */ }
  };
  (async () => {
    for await (const client of listener) {
      count++;
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: target });
      } catch {
        client.close();
        continue;
      }
      if (closed) {
        client.close();
        server.close();
        continue;
      }
      open.add(client);
      open.add(server);
      const cut = () => {
        drop(client);
        drop(server);
      };
      client.readable.pipeTo(server.writable, { preventClose: true }).then(cut, cut);
      server.readable.pipeTo(client.writable, { preventClose: true }).then(cut, cut);
    }
  })().catch(() => {/* the listener was closed */});
  return {
    port,
    connections: () => count,
    close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const c of [...open]) drop(c);
    },
  };
}
