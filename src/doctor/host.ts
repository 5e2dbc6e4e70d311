/**
 * The host's files as the doctor reads them: every absolute path is taken under a root prefix
 * ("/" on a real run, a prepared directory in tests), so each check can run against a fake
 * `/proc`, `/sys` and `/etc`.
 */

/** Reads files under a root prefix; a missing file is `undefined`, other errors throw. */
export class Host {
  /** The root prefix, without a trailing slash ("" for "/"). */
  readonly #root: string;
  /** The root prefix as given. */
  readonly root: string;

  /** `root` is a directory; "/" reads the real machine. */
  constructor(root = "/") {
    this.root = root;
    this.#root = root === "/" ? "" : root.replace(/\/+$/, "");
  }

  /** The path of `path` (absolute, as on the host) under the root. */
  path(path: string): string {
    return this.#root + (path.startsWith("/") ? path : `/${path}`);
  }

  /** A file's text, or undefined when it does not exist. */
  read(path: string): string | undefined {
    try {
      return Deno.readTextFileSync(this.path(path));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw new Error(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** A directory's entry names, sorted; undefined when it does not exist. */
  list(path: string): string[] | undefined {
    try {
      return [...Deno.readDirSync(this.path(path))].map((e) => e.name).sort();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw new Error(`cannot list ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** A file's metadata (following links), or undefined when it does not exist. */
  stat(path: string): Deno.FileInfo | undefined {
    try {
      return Deno.statSync(this.path(path));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw new Error(`cannot stat ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** True when `path` exists. */
  exists(path: string): boolean {
    return this.stat(path) !== undefined;
  }

  /**
   * The canonical path of `path` as seen on the host (links resolved), or of its nearest existing
   * ancestor when it does not exist yet (a buffer before the first start).
   */
  realpath(path: string): string {
    let p = normalize(path);
    for (;;) {
      try {
        const real = Deno.realPathSync(this.path(p));
        const root = this.#root ? Deno.realPathSync(this.#root) : "";
        return real.startsWith(root) ? real.slice(root.length) || "/" : real;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound) || p === "/") throw e;
        p = p.slice(0, p.lastIndexOf("/")) || "/";
      }
    }
  }
}

/** `path` without `.`, `..` and repeated slashes (absolute). */
export function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** `path` made absolute against `dir` (a config's relative paths, against the working directory). */
export function resolvePath(path: string, dir: string): string {
  return normalize(path.startsWith("/") ? path : `${dir}/${path}`);
}
