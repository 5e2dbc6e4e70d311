/**
 * The command-line table both CLIs (`outpost …` and `outpost fleet …`) are written in: each
 * command is one entry — name, summary, usage text, options with their types, value names,
 * choices and help, and a handler — parsed by `node:util` `parseArgs` (strict) and with its
 * `--help` generated from the same entry, so an option cannot be parsed without being documented.
 *
 * @example
 * ```ts
 * const hello: Command<void> = {
 *   name: "hello",
 *   summary: "Greets",
 *   usage: "Usage: tool hello [--name NAME]",
 *   options: { name: { type: "string", arg: "NAME", help: "who to greet" } },
 *   run: (args) => (console.log(`hello ${args.string("name") ?? "world"}`), 0),
 * };
 * const { command, args } = parseCommand(hello, ["--name", "you"], "tool");
 * ```
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../config/schema.ts";

/** Bad command-line usage: printed (with the help when `help` is set), exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
  /** The help of the command, when the message is worth showing with it. */
  readonly help: string | undefined;

  /** `message` says what was wrong; `opts.help` is the command's help. */
  constructor(message: string, opts: { help?: string } = {}) {
    super(message);
    this.help = opts.help;
  }
}

/** One option of a command. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** May be given more than once (a list). */
  multiple?: boolean;
  /** Name of the value in the help, e.g. `FILE`. */
  arg?: string;
  /** The values a string option takes; anything else is a usage error. */
  choices?: readonly string[];
  /** Shown in the help; not applied (the handler knows its defaults, often from the config). */
  default?: string;
  help: string;
}

/** Options by long name (without `--`). */
export type Options = Record<string, OptionSpec>;

/** The parsed arguments a handler gets. */
export class Args {
  readonly #values: Record<string, string | boolean | string[] | undefined>;
  /** Positional arguments after the (sub)command name. */
  readonly positionals: readonly string[];
  /** The generated help of the command, for usage errors that show it. */
  readonly help: string;
  /** The arguments as given, after the command's name. */
  readonly raw: readonly string[];

  /** Wraps what `parseArgs` returned. */
  constructor(
    values: Record<string, string | boolean | string[] | undefined>,
    opts: { positionals: readonly string[]; help: string; raw: readonly string[] },
  ) {
    this.#values = values;
    this.positionals = opts.positionals;
    this.help = opts.help;
    this.raw = opts.raw;
  }

  /** A string option's value, undefined when not given. */
  string(name: string): string | undefined {
    const v = this.#values[name];
    return typeof v === "string" ? v : undefined;
  }

  /** Whether a boolean option was given. */
  flag(name: string): boolean {
    return this.#values[name] === true;
  }

  /** Every value of a `multiple` option (empty when not given). */
  list(name: string): string[] {
    const v = this.#values[name];
    return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
  }

  /** A usage error that shows this command's help after `message`. */
  usage(message: string): UsageError {
    return new UsageError(message, { help: this.help });
  }
}

/** One command (or subcommand) of a CLI: what it is, what it takes, what runs it. */
export interface Command<D> {
  name: string;
  /** One line for the list of commands. */
  summary: string;
  /**
   * Usage lines and what the command does; the options lists are appended from `options` (a
   * subcommand's usage is part of its group's).
   */
  usage?: string;
  /** Options of this command (of a group: taken by every subcommand). */
  options?: Options;
  /** Title of the options list in the help (default `Options:`). */
  optionsTitle?: string;
  /** How many positional arguments it takes (default 0). */
  positionals?: number;
  /** A group: the first positional names one of these. */
  subcommands?: readonly Command<D>[];
  /** The subcommand when none is named. */
  defaultSubcommand?: string;
  /** Text after the options lists. */
  footer?: string;
  /** Runs the command; returns the exit status. Groups leave it out. */
  run?(args: Args, deps: D): number | Promise<number>;
}

function optionLine(name: string, o: OptionSpec): [string, string] {
  const value = o.type === "string" ? ` ${o.choices ? o.choices.join("|") : o.arg ?? "VALUE"}` : "";
  const left = `${o.short ? `-${o.short}, ` : "    "}--${name}${value}${o.multiple ? " …" : ""}`;
  return [left, `${o.help}${o.default !== undefined ? ` (default ${o.default})` : ""}`];
}

/** Help lines are wrapped to this width. */
const WIDTH = 100;

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  return [...lines, line];
}

function optionList(title: string, options: Options): string {
  const rows = Object.entries(options).map(([k, o]) => optionLine(k, o));
  const width = Math.min(28, Math.max(...rows.map(([l]) => l.length)) + 2);
  const indent = " ".repeat(2 + width);
  return [
    title,
    ...rows.map(([l, r]) => {
      const [first, ...more] = wrap(r, WIDTH - indent.length);
      const head = l.length + 2 > width
        ? `  ${l}\n${indent}${first}`
        : `  ${l.padEnd(width)}${first}`;
      return [head, ...more.map((m) => indent + m)].join("\n");
    }),
  ].join("\n");
}

/**
 * The `--help` of a command: its usage, then its options (of a group: every subcommand's too,
 * each marked with the subcommands that take it), then its footer.
 */
export function commandHelp<D>(cmd: Command<D>): string {
  const parts = cmd.usage ? [cmd.usage] : [];
  if (cmd.options && Object.keys(cmd.options).length) {
    parts.push(optionList(cmd.optionsTitle ?? "Options:", cmd.options));
  }
  const subs = cmd.subcommands ?? [];
  const bySub: Options = {};
  for (const sub of subs) {
    for (const [k, o] of Object.entries(sub.options ?? {})) {
      if (k in (cmd.options ?? {}) || k in bySub) continue;
      const takers = subs.filter((s) => s.options && k in s.options).map((s) => s.name);
      bySub[k] = takers.length === subs.length
        ? o
        : { ...o, help: `${o.help} [${takers.join(", ")}]` };
    }
  }
  if (Object.keys(bySub).length) {
    parts.push(optionList(cmd.options ? "Options of the subcommands:" : "Options:", bySub));
  }
  if (cmd.footer) parts.push(cmd.footer);
  return parts.join("\n\n");
}

/** A list of commands with their summaries, for a top-level help. */
export function commandList<D>(commands: readonly Command<D>[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 3;
  return commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n");
}

function orList(items: readonly string[]): string {
  return items.length < 2
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

/** What {@linkcode parseCommand} found: the command to run (a leaf) and its arguments. */
export interface Invocation<D> {
  /** The leaf command, or the group itself when `--help` was asked. */
  command: Command<D>;
  args: Args;
  /** `--help` (or `-h`) was given: print `args.help` instead of running. */
  help: boolean;
}

/**
 * Parses `argv` (the arguments after the command's name) for `cmd`. A group's options and all of
 * its subcommands' options are recognised anywhere on the line; the first positional picks the
 * subcommand, which must take every option given. Throws {@linkcode UsageError}.
 */
export function parseCommand<D>(cmd: Command<D>, argv: readonly string[]): Invocation<D> {
  const help = commandHelp(cmd);
  const subs = cmd.subcommands ?? [];
  const all: Options = { ...cmd.options };
  for (const s of subs) Object.assign(all, s.options);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        ...Object.fromEntries(
          Object.entries(all).map((
            [k, o],
          ) => [k, {
            type: o.type,
            ...(o.short ? { short: o.short } : {}),
            ...(o.multiple ? { multiple: true } : {}),
          }]),
        ),
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message, { help });
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  let positionals = parsed.positionals;
  let leaf = cmd;
  if (values.help) {
    return { command: cmd, args: new Args(values, { positionals, help, raw: argv }), help: true };
  }
  if (subs.length) {
    const name = positionals[0] ?? cmd.defaultSubcommand;
    const names = subs.map((s) => s.name);
    const sub = subs.find((s) => s.name === name);
    if (!sub) {
      throw new UsageError(
        `${name === undefined ? "missing subcommand" : `unknown subcommand "${name}"`}; expected ${
          orList(names)
        }`,
        { help },
      );
    }
    leaf = sub;
    positionals = positionals.slice(positionals.length ? 1 : 0);
    for (const k of Object.keys(values)) {
      if (values[k] !== undefined && !(k in (cmd.options ?? {})) && !(k in (sub.options ?? {}))) {
        throw new UsageError(`${sub.name} does not take --${k}`, { help });
      }
    }
  }
  const max = leaf.positionals ?? 0;
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument "${positionals[max]}"`, { help });
  }
  for (const [k, o] of Object.entries(all)) {
    const v = values[k];
    if (o.choices && typeof v === "string" && !o.choices.includes(v)) {
      throw new UsageError(`--${k}: expected ${orList(o.choices)}, got "${v}"`);
    }
  }
  return { command: leaf, args: new Args(values, { positionals, help, raw: argv }), help: false };
}

/**
 * Parses a time bound given on a command line: ISO 8601, ms since the epoch, or a duration back
 * from `now` ("30d"). Throws {@linkcode UsageError} naming `flag`.
 */
export function parseTime(text: string, flag: string, now = Date.now()): number {
  if (/^\d{12,}$/.test(text)) return Number(text);
  const d = parseDuration(text);
  if (d !== undefined) return now - d;
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new UsageError(
      `${flag}: expected ISO 8601 time, ms since epoch or a duration like 30d, got "${text}"`,
    );
  }
  return t;
}
