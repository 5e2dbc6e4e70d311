import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { REDACTED } from "../redact.ts";
import { Ctx, INVALID, type Issue, type Path, type Schema } from "./schema.ts";

/** One located config problem. */
export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

/** The config could not be read or is invalid; `problems` lists every problem found. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: ConfigProblem[], options?: ErrorOptions) {
    super(problems.map(formatProblem).join("\n"), options);
  }
}

/** Renders a key path as `adapters[1].port`. */
export function formatPath(path: Path): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${p}` : p;
  }
  return out;
}

/** Renders `site.yaml:14:7 adapters[1].port: expected …`. */
export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col} ${p.path ? p.path + ": " : ""}${p.message}`;
}

/** Where secrets and variables come from; tests pass their own. */
export interface LoadOptions {
  env?: (name: string) => string | undefined;
  readFile?: (path: string) => string;
  /** Name shown in errors; defaults to the path as given. */
  displayName?: string;
}

const REF_RE = /\$\{([^}]*)\}/g;

/**
 * Replaces `${NAME}`, `${NAME:-default}` and `${file:/path}` in a string. A scalar that is exactly
 * one reference is re-read as YAML so `port: ${PORT}` gives a number.
 */
function substitute(
  text: string,
  path: Path,
  ctx: Ctx,
  opts: Required<Pick<LoadOptions, "env" | "readFile">>,
): unknown {
  if (!text.includes("${")) return text;
  let failed = false;
  const out = text.replace(REF_RE, (_m, ref: string) => {
    if (ref.startsWith("file:")) {
      const file = ref.slice(5).trim();
      try {
        return opts.readFile(file).replace(/\r?\n$/, "");
      } catch (e) {
        failed = true;
        ctx.fail(path, `cannot read secret file "${file}": ${(e as Error).message}`);
        return "";
      }
    }
    const [name, fallback] = ref.split(":-", 2) as [string, string | undefined];
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      failed = true;
      ctx.fail(
        path,
        `bad reference "\${${ref}}": expected \${NAME}, \${NAME:-default} or \${file:/path}`,
      );
      return "";
    }
    const value = opts.env(name) ?? fallback;
    if (value === undefined) {
      failed = true;
      ctx.fail(path, `environment variable ${name} is not set (referenced as \${${ref}})`);
      return "";
    }
    return value;
  });
  if (failed) return INVALID;
  const whole = /^\$\{[^}]*\}$/.test(text.trim());
  if (whole) {
    const doc = parseDocument(out);
    if (doc.errors.length === 0 && isScalar(doc.contents)) return doc.contents.value;
  }
  return out;
}

function toPlain(
  node: Node | null | undefined,
  path: Path,
  ctx: Ctx,
  opts: Required<Pick<LoadOptions, "env" | "readFile">>,
): unknown {
  if (node === null || node === undefined) return null;
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (Object.hasOwn(out, key)) {
        const at = (pair.key as Node | null)?.range?.[0];
        ctx.fail([...path, key], `duplicate key "${key}"`, true, at);
      }
      out[key] = toPlain(pair.value as Node, [...path, key], ctx, opts);
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((n, i) => toPlain(n as Node, [...path, i], ctx, opts));
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string" && v.includes(REDACTED)) {
      ctx.fail(
        path,
        `holds ${REDACTED}, a secret masked on its way out (config-get): put the secret back, ` +
          "best as ${ENV} or ${file:/path}",
      );
      return undefined;
    }
    if (typeof v === "string") {
      const r = substitute(v, path, ctx, opts);
      return r === INVALID ? undefined : r;
    }
    return v;
  }
  return null;
}

/** Finds the YAML node (or its key) at `path`, for a line and column. */
function locate(doc: ReturnType<typeof parseDocument>, path: Path, atKey: boolean) {
  let node: unknown = doc.contents;
  let best: [number, number] | undefined = (doc.contents as Node | null)?.range as
    | [number, number]
    | undefined;
  for (let i = 0; i < path.length; i++) {
    const p = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(p));
      if (!pair) break;
      const keyRange = (pair.key as Node).range;
      const valRange = (pair.value as Node | null)?.range;
      best = (last && atKey ? keyRange : valRange ?? keyRange) as [number, number] | undefined;
      node = pair.value;
    } else if (isSeq(node) && typeof p === "number") {
      const item = node.items[p] as Node | undefined;
      if (!item) break;
      best = item.range as [number, number] | undefined;
      node = item;
    } else break;
  }
  return best?.[0] ?? 0;
}

/**
 * Parses YAML `text` and validates it against `schema`. Throws a {@linkcode ConfigError} that lists
 * every problem as `file:line:col path: message`.
 */
export function parseConfig<T>(text: string, schema: Schema<T>, options: LoadOptions = {}): T {
  const file = options.displayName ?? "config.yaml";
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => {
      const pos = lc.linePos(e.pos[0]);
      return {
        file,
        line: pos.line,
        col: pos.col,
        path: "",
        message: `YAML syntax error: ${e.message.split("\n")[0]}`,
      };
    }));
  }
  const ctx = new Ctx();
  const opts = {
    env: options.env ?? ((n: string) => Deno.env.get(n)),
    readFile: options.readFile ?? ((p: string) => Deno.readTextFileSync(p)),
  };
  const plain = toPlain(doc.contents as Node, [], ctx, opts);
  const early = ctx.issues.map((i) => formatPath(i.path));
  const value = schema.check(plain ?? {}, ctx, []);
  if (ctx.issues.length || value === INVALID) {
    // A reference that failed to resolve was reported once; drop what the schema says about it.
    const issues = ctx.issues.filter((issue, n) => {
      if (n < early.length) return true;
      const p = formatPath(issue.path);
      return !early.some((e) =>
        p === e || p.startsWith(e + ".") || p.startsWith(e + "[") ||
        issue.message.startsWith("missing required key") &&
          early.some((k) => k.endsWith(`.${issue.message.split('"')[1]}`) && k.startsWith(p))
      );
    });
    const located = issues.map((issue: Issue) => {
      const pos = lc.linePos(issue.offset ?? locate(doc, issue.path, issue.atKey ?? false));
      return {
        file,
        line: pos.line,
        col: pos.col,
        path: formatPath(issue.path),
        message: issue.message,
      };
    });
    located.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(located);
  }
  return value as T;
}

/** Reads and validates a config file; see {@linkcode parseConfig}. */
export function loadConfigFile<T>(path: string, schema: Schema<T>, options: LoadOptions = {}): T {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new ConfigError([{
      file: path,
      line: 1,
      col: 1,
      path: "",
      message: `cannot read config: ${reason}`,
    }], {
      cause: e,
    });
  }
  return parseConfig(text, schema, { displayName: path, ...options });
}
