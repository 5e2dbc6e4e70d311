/**
 * Topic patterns of the `mqtt` adapter: MQTT filters whose `+` levels may be named
 * (`sensors/{device}/{metric}`), and templates (`esp-{1}`, `{device}`) built from a matched topic.
 */

type Level =
  | { kind: "literal"; text: string }
  | { kind: "one"; name?: string }
  | { kind: "rest"; name?: string };

/** A compiled topic pattern. */
export interface TopicPattern {
  /** The MQTT filter to subscribe to (named levels become `+`). */
  filter: string;
  /** Names of the `{name}` levels. */
  names: string[];
  /** Number of levels before a trailing `#`, or all of them. */
  fixedLevels: number;
  hasRest: boolean;
  levels: Level[];
}

/** What a matched topic provides to templates: its levels by index and named levels by name. */
export interface TopicMatch {
  levels: string[];
  named: Record<string, string>;
}

const NAME_RE = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** Compiles a pattern, or returns why it is not one. */
export function compileTopic(pattern: string): TopicPattern | string {
  if (pattern.length === 0) return "expected a topic filter, got an empty string";
  if (pattern.includes("\u0000")) return "a topic may not contain NUL";
  const parts = pattern.split("/");
  const levels: Level[] = [];
  const names: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const named = NAME_RE.exec(p);
    if (p === "#") {
      if (i !== parts.length - 1) return `"#" must be the last level of "${pattern}"`;
      levels.push({ kind: "rest" });
    } else if (p === "+") levels.push({ kind: "one" });
    else if (named) {
      if (names.includes(named[1])) return `level name {${named[1]}} appears twice in "${pattern}"`;
      names.push(named[1]);
      levels.push({ kind: "one", name: named[1] });
    } else if (/[+#{}]/.test(p)) {
      return `level "${p}" of "${pattern}": wildcards and {name} must fill a whole level`;
    } else levels.push({ kind: "literal", text: p });
  }
  const hasRest = levels.at(-1)?.kind === "rest";
  return {
    filter: levels.map((l) => l.kind === "literal" ? l.text : l.kind === "one" ? "+" : "#")
      .join("/"),
    names,
    fixedLevels: hasRest ? levels.length - 1 : levels.length,
    hasRest,
    levels,
  };
}

/** Matches a topic against a compiled pattern, as a broker would. */
export function matchTopic(p: TopicPattern, topic: string): TopicMatch | undefined {
  const parts = topic.split("/");
  if (parts.length < p.fixedLevels || (!p.hasRest && parts.length !== p.fixedLevels)) {
    return undefined;
  }
  // MQTT: wildcards at the first level do not match topics starting with "$".
  if (p.levels[0].kind !== "literal" && topic.startsWith("$")) return undefined;
  const named: Record<string, string> = {};
  for (let i = 0; i < p.fixedLevels; i++) {
    const l = p.levels[i];
    if (l.kind === "literal") {
      if (parts[i] !== l.text) return undefined;
    } else if (l.kind === "one" && l.name) named[l.name] = parts[i];
  }
  return { levels: parts, named };
}

/** A template such as `esp-{1}` or `{device}`, compiled. */
export interface Template {
  source: string;
  parts: (string | { index: number } | { name: string })[];
}

const PLACEHOLDER_RE = /\{([^{}]*)\}/g;

/**
 * Compiles a template against a topic pattern: `{N}` is topic level N (from 0), `{name}` a named
 * level. Returns why it cannot work, e.g. a name the pattern does not define.
 */
export function compileTemplate(source: string, topic: TopicPattern): Template | string {
  const parts: Template["parts"] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER_RE)) {
    if (m.index > last) parts.push(source.slice(last, m.index));
    const key = m[1];
    if (/^\d+$/.test(key)) {
      const index = Number(key);
      if (!topic.hasRest && index >= topic.fixedLevels) {
        return `{${key}} is past the last level of "${topic.filter}" (levels count from 0)`;
      }
      parts.push({ index });
    } else if (topic.names.includes(key)) parts.push({ name: key });
    else {
      return `{${key}} is not a level of the topic${
        topic.names.length ? ` (named levels: ${topic.names.join(", ")})` : ""
      }; use {N} for level N or name a level in the topic as {${key}}`;
    }
    last = m.index + m[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  if (parts.some((p) => typeof p === "string" && /[{}]/.test(p))) {
    return `unbalanced braces in "${source}"`;
  }
  return { source, parts };
}

/** Fills a template from a matched topic; undefined when a level is missing or empty. */
export function renderTemplate(t: Template, m: TopicMatch): string | undefined {
  let out = "";
  for (const p of t.parts) {
    if (typeof p === "string") out += p;
    else {
      const v = "index" in p ? m.levels[p.index] : m.named[p.name];
      if (v === undefined || v === "") return undefined;
      out += v;
    }
  }
  return out;
}
