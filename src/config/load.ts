import {
  CST,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseDocument,
} from "yaml";
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

/** Largest config file read, in bytes: a config is kilobytes; more is a mistake or an attack. */
export const MAX_CONFIG_BYTES = 256 * 1024;
/** Deepest nesting of mappings and lists (a real config needs under 10). */
export const MAX_CONFIG_DEPTH = 64;
/** Most scalars, mappings and lists in one file. */
export const MAX_CONFIG_NODES = 20_000;
/** Most nodes that aliases (`*name`) may expand to in all, against "billion laughs" files. */
export const MAX_ALIAS_NODES = 10_000;

/** Most problems reported at once; a broken file can have thousands, all alike. */
export const MAX_PROBLEMS = 20;

function capped(problems: ConfigProblem[]): ConfigProblem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const next = problems[MAX_PROBLEMS];
  return [...problems.slice(0, MAX_PROBLEMS), {
    ...next,
    path: "",
    message: `${problems.length - MAX_PROBLEMS} more problems not shown; fix these first`,
  }];
}

/** Where YAML text breaks a limit before it is parsed: the offset and what is wrong. */
interface Refusal {
  offset: number;
  message: string;
}

/**
 * Checks size, node count and nesting depth before the text is parsed: yaml's composer recurses
 * per level and its document costs ~0.5 KB per node, so a 100,000-deep `[[[[…` or 100,000 list
 * items exhaust a 64 MB heap. This runs yaml's streaming lexer alone (constant memory, no
 * recursion) and stops at the first limit broken. Depth counts open flow collections plus block
 * levels, a block level being a column where a line's first node (or a compact `- `/`? ` item)
 * starts deeper than the one it is inside.
 */
export function checkShape(text: string): Refusal | undefined {
  if (text.length > MAX_CONFIG_BYTES) {
    return {
      offset: 0,
      message: `config is ${text.length} characters; at most ${MAX_CONFIG_BYTES} are read`,
    };
  }
  const columns: number[] = [];
  let flow = 0;
  let nodes = 0;
  let offset = 0;
  let col = 0;
  /** The next token starts a block node: first on its line, or after `- ` / `? `. */
  let nodeStart = true;
  let scalarText = false;
  const advance = (lexeme: string) => {
    offset += lexeme.length;
    const nl = lexeme.lastIndexOf("\n");
    if (nl < 0) col += lexeme.length;
    else {
      col = lexeme.length - nl - 1;
      if (flow === 0) nodeStart = true;
    }
  };
  for (const lexeme of new Lexer().lex(text, false)) {
    if (scalarText) {
      scalarText = false;
      advance(lexeme);
      continue;
    }
    const type = CST.tokenType(lexeme);
    if (type === "doc-mode" || type === "flow-error-end") continue;
    if (type === "newline" || type === "space" || type === "comment") {
      advance(lexeme);
      continue;
    }
    if (flow === 0 && nodeStart) {
      while (columns.length && columns[columns.length - 1] > col) columns.pop();
      if (columns.length === 0 || columns[columns.length - 1] < col) columns.push(col);
      nodeStart = type === "seq-item-ind" || type === "explicit-key-ind";
    }
    if (type === "flow-seq-start" || type === "flow-map-start") {
      flow++;
      nodes++;
    } else if (type === "flow-seq-end" || type === "flow-map-end") flow = Math.max(0, flow - 1);
    else if (type === "scalar") {
      nodes++;
      scalarText = true;
      continue;
    } else if (type === "alias" || type?.endsWith("quoted-scalar")) nodes++;
    else if (type === "doc-start") columns.length = 0;
    if (columns.length + flow > MAX_CONFIG_DEPTH) {
      return {
        offset,
        message: `nested deeper than ${MAX_CONFIG_DEPTH} levels of mappings and lists`,
      };
    }
    if (nodes > MAX_CONFIG_NODES) {
      return { offset, message: `more than ${MAX_CONFIG_NODES} values in one config` };
    }
    advance(lexeme);
  }
  return undefined;
}

/** Parses YAML text within the limits above; `problem` says why it is refused. */
function boundedParse(
  text: string,
  lc?: LineCounter,
): { doc: Document.Parsed } | { problem: Refusal } {
  const problem = checkShape(text);
  if (problem) return { problem };
  return { doc: parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false }) };
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

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
    const r = boundedParse(out);
    if ("doc" in r && r.doc.errors.length === 0 && isScalar(r.doc.contents)) {
      return r.doc.contents.value;
    }
  }
  return out;
}

/** State of one conversion: the document (for aliases) and how much aliases expanded so far. */
interface Walk {
  doc: Document.Parsed;
  ctx: Ctx;
  opts: Required<Pick<LoadOptions, "env" | "readFile">>;
  aliasNodes: number;
  failed: boolean;
}

function toPlain(
  node: Node | null | undefined,
  path: Path,
  w: Walk,
  depth: number,
  viaAlias: boolean,
): unknown {
  if (node === null || node === undefined || w.failed) return null;
  if (viaAlias && ++w.aliasNodes > MAX_ALIAS_NODES) {
    w.failed = true;
    w.ctx.fail(path, `aliases expand to more than ${MAX_ALIAS_NODES} values; write it out`);
    return null;
  }
  // The text check may count a list written under its key's column as no level: twice the limit
  // is room for that, so only an alias that contains itself gets here.
  if (depth > 2 * MAX_CONFIG_DEPTH) {
    w.failed = true;
    w.ctx.fail(path, `nested deeper than ${MAX_CONFIG_DEPTH} levels (an alias inside itself?)`);
    return null;
  }
  if (isAlias(node)) {
    const target = node.resolve(w.doc);
    if (!target) {
      w.ctx.fail(path, `unknown alias *${node.source}`);
      return undefined;
    }
    return toPlain(target, path, w, depth + 1, true);
  }
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (Object.hasOwn(out, key)) {
        const at = (pair.key as Node | null)?.range?.[0];
        w.ctx.fail([...path, key], `duplicate key "${key}"`, true, at);
      }
      out[key] = toPlain(pair.value as Node, [...path, key], w, depth + 1, viaAlias);
    }
    return out;
  }
  if (isSeq(node)) {
    return node.items.map((n, i) => toPlain(n as Node, [...path, i], w, depth + 1, viaAlias));
  }
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string" && v.includes(REDACTED)) {
      w.ctx.fail(
        path,
        `holds ${REDACTED}, a secret masked on its way out (config-get): put the secret back, ` +
          "best as ${ENV} or ${file:/path}",
      );
      return undefined;
    }
    if (typeof v === "string") {
      const r = substitute(v, path, w.ctx, w.opts);
      return r === INVALID ? undefined : r;
    }
    return v;
  }
  return null;
}

/** Finds the YAML node (or its key) at `path`, for a line and column. */
function locate(doc: Document.Parsed, path: Path, atKey: boolean) {
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
  const parsed = boundedParse(text, lc);
  if ("problem" in parsed) {
    const { offset, message } = parsed.problem;
    throw new ConfigError([{ file, ...lineCol(text, offset), path: "", message }]);
  }
  const doc = parsed.doc;
  if (doc.errors.length) {
    throw new ConfigError(capped(doc.errors.map((e) => {
      const pos = lc.linePos(e.pos[0]);
      return {
        file,
        line: pos.line,
        col: pos.col,
        path: "",
        message: `YAML syntax error: ${e.message.split("\n")[0]}`,
      };
    })));
  }
  const ctx = new Ctx();
  const opts = {
    env: options.env ?? ((n: string) => Deno.env.get(n)),
    readFile: options.readFile ?? ((p: string) => Deno.readTextFileSync(p)),
  };
  const walk: Walk = { doc, ctx, opts, aliasNodes: 0, failed: false };
  const plain = toPlain(doc.contents as Node, [], walk, 0, false);
  if (walk.failed) {
    // The tree is cut short: what the schema would say about it is noise.
    const issue = ctx.issues.at(-1)!;
    const pos = lc.linePos(locate(doc, issue.path, false));
    throw new ConfigError([{
      file,
      line: pos.line,
      col: pos.col,
      path: formatPath(issue.path),
      message: issue.message,
    }]);
  }
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
      let message = issue.message;
      if (issue.also) {
        const other = lc.linePos(locate(doc, issue.also, false));
        message += ` (also ${formatPath(issue.also)} at ${file}:${other.line}:${other.col})`;
      }
      return { file, line: pos.line, col: pos.col, path: formatPath(issue.path), message };
    });
    located.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(capped(located));
  }
  return value as T;
}

/**
 * Reads a text file of at most MAX_CONFIG_BYTES, reading no more than one byte past that, so a
 * huge file (or a device such as /dev/zero) costs no memory.
 */
function readBounded(path: string): string {
  using file = Deno.openSync(path);
  const buf = new Uint8Array(MAX_CONFIG_BYTES + 1);
  let size = 0;
  for (;;) {
    const n = file.readSync(buf.subarray(size));
    if (n === null) break;
    size += n;
    if (size > MAX_CONFIG_BYTES) {
      throw new ConfigError([{
        file: path,
        line: 1,
        col: 1,
        path: "",
        message: `config file is larger than ${MAX_CONFIG_BYTES} bytes (the most read)`,
      }]);
    }
  }
  return new TextDecoder().decode(buf.subarray(0, size));
}

/** Reads and validates a config file; see {@linkcode parseConfig}. */
export function loadConfigFile<T>(path: string, schema: Schema<T>, options: LoadOptions = {}): T {
  let text: string;
  try {
    text = readBounded(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
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
