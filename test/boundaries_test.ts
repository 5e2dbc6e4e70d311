/**
 * The layering rules, checked on the import statements of every .ts and .js file in the tree:
 *
 * 1. The core (`src/`) never imports an adapter (`adapters/`).
 * 2. Adapter code imports from `src/` only the public adapter API ({@linkcode ADAPTER_API}); an
 *    adapter's tests, test data and bench may also use the test helpers and the config loader.
 *    Adapters do not import each other (the registry `adapters/mod.ts` imports them all).
 * 3. A folder with a `mod.ts` is reached from outside only through its `mod.ts`.
 * 4. The two products stay apart: `src/commands/` (what a gateway answers) and `src/fleet/` (the
 *    operator's console) never import each other; they share `src/protocol/`, which imports
 *    neither.
 * 5. `src/` holds no bench code.
 *
 * Known violations are listed in {@linkcode EXCEPTIONS} with the reason; an exception that no
 * longer occurs fails the test too, so the list only shrinks.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

/**
 * What an adapter may import from `src/`: the adapter contract (with the shared helpers it
 * re-exports: timing, the MQTT connection and subscriber, the reading queue), readings, logging,
 * input limits, the schema DSL its config is written in, and a seeded random source.
 */
export const ADAPTER_API: readonly string[] = [
  "src/adapter.ts",
  "src/reading.ts",
  "src/log.ts",
  "src/limits.ts",
  "src/rng.ts",
  "src/config/schema.ts",
];

/** What an adapter's tests, test data and bench may import besides {@linkcode ADAPTER_API}. */
const ADAPTER_TEST_API: readonly string[] = [
  "src/config/load.ts",
  "src/config/gateway.ts",
];

/**
 * Known violations, `"from -> to"` (or a file alone for bench code in src/), grouped by why they
 * are still there. Each names the fix; remove a line when it is done.
 */
const EXCEPTION_GROUPS: ReadonlyArray<readonly [why: string, edges: readonly string[]]> = [
  [
    "bench code in src/ (moves to bench/)",
    ["src/edge/bench.ts", "src/edge/bench.ts -> src/buffer/buffer.ts"],
  ],
  [
    // The edge work owns src/edge/; switch these to src/uplink/mod.ts once it merges.
    "src/edge/ reaches src/uplink/uplink.ts past src/uplink/mod.ts",
    [
      "src/edge/alarm_lane.ts -> src/uplink/uplink.ts",
      "src/edge/mod.ts -> src/uplink/uplink.ts",
    ],
  ],
  [
    // src/update/mod.ts exports the key types now; the fleet work owns src/fleet/.
    "src/fleet/ reaches src/update/keys.ts past src/update/mod.ts",
    [
      "src/fleet/cli.ts -> src/update/keys.ts",
      "src/fleet/client.ts -> src/update/keys.ts",
    ],
  ],
];

const EXCEPTIONS: ReadonlyMap<string, string> = new Map(
  EXCEPTION_GROUPS.flatMap(([why, edges]) => edges.map((k) => [k, why] as const)),
);

interface Edge {
  from: string;
  to: string;
}

async function sourceFiles(dir = ROOT, out: string[] = []): Promise<string[]> {
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".") || ["node_modules", "dist"].includes(e.name)) continue;
    const path = join(dir, e.name);
    if (e.isDirectory) await sourceFiles(path, out);
    else if (/\.(ts|js)$/.test(e.name)) out.push(relative(ROOT, path));
  }
  return out.sort();
}

const STATIC = /^\s*(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/gm;
const BARE = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The relative imports of `file`, resolved to paths from the repository root. */
export function importsOf(file: string, text: string): string[] {
  const specs = new Set<string>();
  for (const re of [STATIC, BARE, DYNAMIC]) {
    for (const m of text.matchAll(re)) specs.add(m[1]);
  }
  return [...specs].filter((s) => s.startsWith("./") || s.startsWith("../"))
    .map((s) => normalize(join(dirname(file), s)));
}

async function edges(): Promise<Edge[]> {
  const out: Edge[] = [];
  for (const file of await sourceFiles()) {
    const text = await Deno.readTextFile(join(ROOT, file));
    for (const to of importsOf(file, text)) out.push({ from: file, to });
  }
  return out;
}

const under = (path: string, dir: string) => path.startsWith(dir + "/");
const adapterOf = (path: string) => /^adapters\/([^/]+)\//.exec(path)?.[1];

/**
 * Tests, test data and benchmarks: they may reach a folder's internals to test or measure them,
 * and may wire the core to the adapters as main.ts does. Rule 3 and rule 1 do not apply to them.
 */
export function isTestCode(path: string): boolean {
  return under(path, "test") || under(path, "bench") || /_test\.ts$/.test(path) ||
    /(^|\/)testdata\//.test(path) || /^adapters\/[^/]+\/bench\.ts$/.test(path);
}

/** Every folder that has a `mod.ts`. */
function modFolders(files: readonly string[]): string[] {
  return files.filter((f) => f.endsWith("/mod.ts")).map((f) => dirname(f));
}

/** The innermost folder with a `mod.ts` that holds `path`. */
function ownerFolder(path: string, folders: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const f of folders) {
    if (under(path, f) && (best === undefined || f.length > best.length)) best = f;
  }
  return best;
}

/** The rule an edge breaks, or undefined. */
export function violation(e: Edge, folders: readonly string[]): string | undefined {
  const test = isTestCode(e.from);
  if (!test && under(e.from, "src") && under(e.to, "adapters")) {
    return "the core imports an adapter";
  }
  const a = adapterOf(e.from);
  if (a !== undefined) {
    if (under(e.to, "src")) {
      const allowed = test ? [...ADAPTER_API, ...ADAPTER_TEST_API] : ADAPTER_API;
      if (!allowed.includes(e.to)) return "an adapter imports src/ beyond the adapter API";
    }
    const b = adapterOf(e.to);
    if (b !== undefined && b !== a) return "an adapter imports another adapter";
  }
  if (
    (under(e.from, "src/commands") && under(e.to, "src/fleet")) ||
    (under(e.from, "src/fleet") && under(e.to, "src/commands"))
  ) {
    return "commands and fleet import each other (they share src/protocol only)";
  }
  if (under(e.from, "src/protocol") && (under(e.to, "src/commands") || under(e.to, "src/fleet"))) {
    return "the protocol imports one of the products that speak it";
  }
  const folder = ownerFolder(e.to, folders);
  if (
    !test && folder !== undefined && !under(e.from, folder) && e.to !== `${folder}/mod.ts`
  ) {
    return `${folder}/ is reached other than through its mod.ts`;
  }
  return undefined;
}

Deno.test("boundaries: the import rules hold for every file, apart from the listed exceptions", async () => {
  const files = await sourceFiles();
  const folders = modFolders(files);
  const found = new Map<string, string>();
  for (const f of files) {
    if (under(f, "src") && /(^|\/|_)bench[^/]*\.ts$/.test(f)) found.set(f, "bench code in src/");
  }
  for (const e of await edges()) {
    const why = violation(e, folders);
    if (why !== undefined) found.set(`${e.from} -> ${e.to}`, why);
  }
  const unexpected = [...found].filter(([k]) => !EXCEPTIONS.has(k)).map(([k, why]) =>
    `${k}: ${why}`
  );
  assert.deepEqual(unexpected, [], `imports that break the layering:\n${unexpected.join("\n")}`);
  const stale = [...EXCEPTIONS.keys()].filter((k) => !found.has(k));
  assert.deepEqual(
    stale,
    [],
    `exceptions that no longer occur (remove them):\n${stale.join("\n")}`,
  );
});

Deno.test("boundaries: the checker sees each kind of violation", () => {
  const folders = ["src/buffer", "adapters/mqtt"];
  assert.match(
    violation({ from: "src/gateway.ts", to: "adapters/mqtt/mod.ts" }, folders) ?? "",
    /core imports an adapter/,
  );
  assert.match(
    violation({ from: "adapters/http/mod.ts", to: "src/buffer/mod.ts" }, folders) ?? "",
    /beyond the adapter API/,
  );
  assert.equal(
    violation({ from: "adapters/http/mod.ts", to: "src/reading.ts" }, folders),
    undefined,
  );
  assert.match(
    violation({ from: "src/fleet/serve.ts", to: "src/commands/mod.ts" }, folders) ?? "",
    /commands and fleet/,
  );
  assert.match(
    violation({ from: "src/gateway.ts", to: "src/buffer/buffer.ts" }, folders) ?? "",
    /src\/buffer\/ is reached other than through its mod\.ts/,
  );
  assert.match(
    violation({ from: "src/protocol/mod.ts", to: "src/fleet/run.ts" }, folders) ?? "",
    /protocol imports one of the products/,
  );
  assert.equal(violation({ from: "src/gateway.ts", to: "src/buffer/mod.ts" }, folders), undefined);
  assert.equal(
    violation({ from: "src/buffer/buffer.ts", to: "src/buffer/wal.ts" }, folders),
    undefined,
  );
  assert.deepEqual(
    importsOf(
      "src/a/b.ts",
      'import x from "../c.ts";\nexport { y } from "./d.ts";\nimport "npm:z";\nconst m = await import("../../e.ts");\n',
    ),
    ["src/c.ts", "src/a/d.ts", "e.ts"],
  );
});
