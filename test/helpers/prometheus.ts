/** One sample of a metric family. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One metric family: its TYPE, HELP and samples. */
export interface PromFamily {
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string;
  samples: PromSample[];
}

/** A line the strict parser refused. */
export class PromParseError extends Error {
  override name = "PromParseError";
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const NAME_RE = new RegExp(`^${NAME}$`);
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT_RE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseLabels(text: string, at: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new PromParseError(`${at}: label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME_RE.test(name)) throw new PromParseError(`${at}: bad label name "${name}"`);
    if (name in labels) throw new PromParseError(`${at}: duplicate label "${name}"`);
    if (text[eq + 1] !== '"') throw new PromParseError(`${at}: label value not quoted`);
    let value = "";
    let j = eq + 2;
    for (;; j++) {
      if (j >= text.length) throw new PromParseError(`${at}: unterminated label value`);
      const c = text[j];
      if (c === '"') break;
      if (c === "\n") throw new PromParseError(`${at}: raw line feed in label value`);
      if (c === "\\") {
        const n = text[++j];
        if (n === "\\") value += "\\";
        else if (n === '"') value += '"';
        else if (n === "n") value += "\n";
        else throw new PromParseError(`${at}: bad escape "\\${n}" in label value`);
      } else value += c;
    }
    labels[name] = value;
    i = j + 1;
    if (i === text.length) break;
    if (text[i] !== ",") throw new PromParseError(`${at}: expected "," between labels`);
    i++;
    if (i === text.length) break; // a trailing comma is allowed by the format
  }
  return labels;
}

function parseValue(text: string, at: string): number {
  if (!FLOAT_RE.test(text)) throw new PromParseError(`${at}: bad value "${text}"`);
  if (text === "NaN") return NaN;
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

function unescapeHelp(text: string, at: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new PromParseError(`${at}: bad escape "\\${c}" in HELP`);
  });
}

/**
 * Parses Prometheus text exposition format 0.0.4, strictly: every family has TYPE and HELP
 * before its samples, a family's samples are contiguous, no series appears twice, counters are
 * named `_total` and are not negative, label values use only the three escapes, the document
 * ends with a line feed and has no blank lines. Throws {@linkcode PromParseError} otherwise.
 */
export function parsePrometheus(text: string): Map<string, PromFamily> {
  if (!text.endsWith("\n")) throw new PromParseError("document does not end with a line feed");
  const families = new Map<string, PromFamily>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  const open = (name: string, at: string): PromFamily => {
    if (current !== name) {
      if (closed.has(name)) throw new PromParseError(`${at}: family "${name}" split up`);
      if (current) closed.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) families.set(name, f = { type: "untyped", help: "", samples: [] });
    return f;
  };
  const typed = new Set<string>();
  const helped = new Set<string>();
  text.slice(0, -1).split("\n").forEach((line, n) => {
    const at = `line ${n + 1} "${line}"`;
    if (line === "") throw new PromParseError(`${at}: blank line`);
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!NAME_RE.test(name)) throw new PromParseError(`${at}: bad metric name`);
      const f = open(name, at);
      if (f.samples.length) throw new PromParseError(`${at}: ${kind} after samples`);
      if (kind === "TYPE") {
        if (typed.has(name)) throw new PromParseError(`${at}: second TYPE`);
        if (!TYPES.has(rest)) throw new PromParseError(`${at}: unknown type "${rest}"`);
        typed.add(name);
        f.type = rest as PromFamily["type"];
      } else {
        if (helped.has(name)) throw new PromParseError(`${at}: second HELP`);
        helped.add(name);
        f.help = unescapeHelp(rest, at);
      }
      return;
    }
    const m = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    if (!m) throw new PromParseError(`${at}: not a sample line`);
    const [, name, labelText, valueText] = m;
    const labels = labelText === undefined ? {} : parseLabels(labelText, at);
    const value = parseValue(valueText, at);
    const f = open(name, at);
    if (!typed.has(name)) throw new PromParseError(`${at}: sample before TYPE`);
    if (!helped.has(name)) throw new PromParseError(`${at}: sample without HELP`);
    if (f.type === "counter") {
      if (!name.endsWith("_total")) throw new PromParseError(`${at}: counter not named _total`);
      if (!(value >= 0)) throw new PromParseError(`${at}: counter is negative or NaN`);
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new PromParseError(`${at}: duplicate series`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  for (const name of families.keys()) {
    if (!typed.has(name)) throw new PromParseError(`family "${name}" has no TYPE`);
  }
  return families;
}

/**
 * The value of the one sample of `name` whose labels include `labels`; throws when there is
 * none or more than one.
 */
export function sampleValue(
  families: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const f = families.get(name);
  if (!f) throw new Error(`no metric family "${name}"`);
  const hits = f.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) {
    throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`);
  }
  return hits[0].value;
}
