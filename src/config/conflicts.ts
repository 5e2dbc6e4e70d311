/**
 * Checks across adapter entries that each entry's own schema cannot see: two entries with one
 * name, two entries opening one serial port (each would read the other's responses), two servers
 * on one listen address (the second fails at start). Adapters say what they hold through
 * `claims()`; the core knows no adapter by name.
 *
 * @module
 */
import type { AdapterRegistry } from "../adapter.ts";
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

/** Options of {@linkcode checkConflicts}. */
export interface ConflictOptions {
  /** The registry the entries were validated against; its `claims()` name what each holds. */
  adapters: AdapterRegistry;
  realPath?: RealPath;
}

/** Reports every cross-entry conflict of `c`, each naming both places. */
export function checkConflicts(c: ConflictInput, ctx: Ctx, opts: ConflictOptions): void {
  const realPath = opts.realPath ?? defaultRealPath;
  const claims = c.adapters.map((a) =>
    a.enabled ? opts.adapters[a.type]?.claims?.(a.config) ?? {} : {}
  );
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

  // Serial ports: devices of one entry share their line; two entries may not.
  const ports = new Map<string, { entry: number; path: Path; written: string }>();
  c.adapters.forEach((a, i) => {
    const mine = new Set<string>();
    for (const { port, at } of claims[i].serialPorts ?? []) {
      const real = realPath(port);
      if (mine.has(real)) continue;
      mine.add(real);
      const path = ["adapters", i, ...at];
      const other = ports.get(real);
      if (other && other.entry !== i) {
        const via = other.written === port && real === port ? "" : ` (${real})`;
        ctx.conflict(
          path,
          `serial port "${port}"${via} is opened by two adapters, and each would read ` +
            `the other's responses: put all devices of one line in one ${a.type} entry`,
          other.path,
        );
      } else if (!other) ports.set(real, { entry: i, path, written: port });
    }
  });

  // Listen addresses: the gateway's own server, its health listener and adapters' servers.
  const listens: { listen: string; path: Path }[] = [];
  if (c.http.enabled) {
    listens.push({ listen: c.http.listen, path: ["http", "listen"] });
    if (c.http.healthListen) {
      listens.push({ listen: c.http.healthListen, path: ["http", "healthListen"] });
    }
  }
  claims.forEach((claim, i) => {
    for (const { address, at } of claim.listen ?? []) {
      listens.push({ listen: address, path: ["adapters", i, ...at] });
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
