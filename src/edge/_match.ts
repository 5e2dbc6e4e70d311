/** Whether `pattern` holds a `*` or `?`, i.e. can match more than one name. */
export function isGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/** Compiles a `*`/`?` glob into a whole-string test. */
export function globTest(pattern: string): (name: string) => boolean {
  if (pattern === "*") return () => true;
  if (!isGlob(pattern)) return (name) => name === pattern;
  const re = new RegExp(
    "^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") +
      "$",
  );
  return (name) => re.test(name);
}

/** Something that applies to devices and metrics by glob. */
export interface Matched {
  device: string;
  metric: string;
}

/**
 * Finds the entries that apply to a device/metric pair, compiling globs once and caching the
 * answer per pair, so the per-reading cost is one map lookup.
 */
export class Matcher<T extends Matched> {
  readonly #entries: { entry: T; device: (d: string) => boolean; metric: (m: string) => boolean }[];
  readonly #cache = new Map<string, T[]>();

  constructor(entries: readonly T[]) {
    this.#entries = entries.map((entry) => ({
      entry,
      device: globTest(entry.device),
      metric: globTest(entry.metric),
    }));
  }

  /** The entries matching `device` and `metric`, in config order. */
  match(device: string, metric: string): T[] {
    const key = device + "\0" + metric;
    let hit = this.#cache.get(key);
    if (!hit) {
      hit = this.#entries.filter((e) => e.device(device) && e.metric(metric)).map((e) => e.entry);
      this.#cache.set(key, hit);
    }
    return hit;
  }
}
