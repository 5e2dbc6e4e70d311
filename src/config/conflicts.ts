/**
 * Checks across adapter entries that each entry's own schema cannot see: two entries with one
 * name, two entries opening one serial port (each would read the other's responses), two servers
 * on one listen address (the second fails at start).
 *
 * @module
 */
import type { Ctx, Path } from "./schema.ts";

/** What the checks need of a validated config. */
export interface ConflictInput {
  adapters: readonly { type: string; name: string; enabled: boolean; config: unknown }[];
  http: { enabled: boolean; listen: string; healthListen?: string };
}

/** Resolves a device path through symlinks (`/dev/serial/by-id/…` → `/dev/ttyUSB0`). */
export type RealPath = (path: string) => string;

function defaultRealPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    // Absent (not plugged in, another machine) or not allowed: compare the path as written.
    return path;
  }
}

const WILDCARD = new Set(["0.0.0.0", "::", ""]);

function splitListen(listen: string): { host: string; port: string } {
  const at = listen.lastIndexOf(":");
  let host = listen.slice(0, at).replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost") host = "127.0.0.1";
  return { host, port: listen.slice(at + 1) };
}

/** True when two `host:port` addresses cannot both be bound: same port, same or wildcard host. */
export function listenOverlaps(a: string, b: string): boolean {
  const x = splitListen(a);
  const y = splitListen(b);
  return x.port === y.port && (x.host === y.host || WILDCARD.has(x.host) || WILDCARD.has(y.host));
}

/** Reports every cross-entry conflict of `c`, each naming both places. */
export function checkConflicts(c: ConflictInput, ctx: Ctx, realPath = defaultRealPath): void {
  const names = new Map<string, number>();
  c.adapters.forEach((a, i) => {
    const prev = names.get(a.name);
    if (prev !== undefined) {
      ctx.conflict(["adapters", i, "name"], `duplicate adapter name "${a.name}"`, [
        "adapters",
        prev,
        "name",
      ]);
    } else names.set(a.name, i);
  });

  // Serial ports: devices of one modbus entry share their line; two entries may not.
  const ports = new Map<string, { entry: number; path: Path; written: string }>();
  c.adapters.forEach((a, i) => {
    if (!a.enabled || a.type !== "modbus") return;
    const devices = (a.config as { devices?: { rtu?: { port: string } }[] }).devices ?? [];
    const mine = new Set<string>();
    devices.forEach((d, j) => {
      if (!d.rtu) return;
      const real = realPath(d.rtu.port);
      if (mine.has(real)) return;
      mine.add(real);
      const path = ["adapters", i, "devices", j, "rtu", "port"];
      const other = ports.get(real);
      if (other && other.entry !== i) {
        const via = other.written === d.rtu.port && real === d.rtu.port ? "" : ` (${real})`;
        ctx.conflict(
          path,
          `serial port "${d.rtu.port}"${via} is opened by two adapters, and each would read ` +
            `the other's responses: put all devices of one line in one modbus entry`,
          other.path,
        );
      } else if (!other) ports.set(real, { entry: i, path, written: d.rtu.port });
    });
  });

  // Listen addresses: the gateway's own server, its health listener and http adapters.
  const listens: { listen: string; path: Path }[] = [];
  if (c.http.enabled) {
    listens.push({ listen: c.http.listen, path: ["http", "listen"] });
    if (c.http.healthListen) {
      listens.push({ listen: c.http.healthListen, path: ["http", "healthListen"] });
    }
  }
  c.adapters.forEach((a, i) => {
    const listen = (a.config as { listen?: unknown }).listen;
    if (a.enabled && a.type === "http" && typeof listen === "string") {
      listens.push({ listen, path: ["adapters", i, "listen"] });
    }
  });
  listens.forEach((l, i) => {
    const other = listens.slice(0, i).find((o) => listenOverlaps(o.listen, l.listen));
    // http.healthListen === http.listen is reported by the http schema itself.
    if (!other || (l.path[0] === "http" && other.path[0] === "http")) return;
    ctx.conflict(
      l.path,
      `listen address "${l.listen}" is taken by another server ("${other.listen}"); ` +
        `the second one could not start`,
      other.path,
    );
  });
}
