import assert from "node:assert/strict";
import {
  type Command,
  commandHelp,
  commandList,
  parseCommand,
  parseTime,
  UsageError,
} from "./cli.ts";

const ran: string[] = [];
const leaf: Command<void> = {
  name: "get",
  summary: "Gets one",
  usage: "Usage: tool get [--as NAME] [--format csv|json] FILE",
  positionals: 1,
  options: {
    as: { type: "string", short: "a", arg: "NAME", help: "the name to use" },
    format: { type: "string", choices: ["csv", "json"], default: "csv", help: "output format" },
    tag: { type: "string", multiple: true, arg: "T", help: "a tag" },
  },
  run: (args) => (ran.push(args.string("as") ?? ""), 0),
};
const group: Command<void> = {
  name: "keys",
  summary: "Key tools",
  usage: "Usage: tool keys (make --out DIR | show --file F)",
  options: { json: { type: "boolean", help: "JSON output" } },
  defaultSubcommand: "show",
  subcommands: [
    { name: "make", summary: "makes", options: { out: { type: "string", help: "where" } } },
    { name: "show", summary: "shows", options: { file: { type: "string", help: "which" } } },
  ],
};

function usageError(f: () => unknown, re: RegExp): UsageError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof UsageError, `expected a UsageError, got ${caught}`);
  assert.match(caught.message, re);
  return caught;
}

Deno.test("parseCommand() gives typed values, positionals and the raw arguments", () => {
  const inv = parseCommand(leaf, ["-a", "x", "--tag", "t1", "f.csv", "--tag", "t2"]);
  assert.equal(inv.help, false);
  assert.equal(inv.command, leaf);
  assert.equal(inv.args.string("as"), "x");
  assert.deepEqual(inv.args.list("tag"), ["t1", "t2"]);
  assert.deepEqual(inv.args.positionals, ["f.csv"]);
  assert.deepEqual(inv.args.raw, ["-a", "x", "--tag", "t1", "f.csv", "--tag", "t2"]);
  assert.equal(inv.args.flag("as"), false);
  assert.equal(parseCommand(leaf, ["--help"]).help, true);
});

Deno.test("parseCommand() refuses unknown options, extra arguments and values outside the choices", () => {
  const e = usageError(() => parseCommand(leaf, ["--bogus"]), /--bogus/);
  assert.match(e.help ?? "", /^Usage: tool get/);
  usageError(() => parseCommand(leaf, ["a", "b"]), /unexpected argument "b"/);
  const c = usageError(
    () => parseCommand(leaf, ["--format", "xml"]),
    /--format: expected csv or json, got "xml"/,
  );
  assert.equal(c.help, undefined);
});

Deno.test("parseCommand() picks a group's subcommand and refuses another subcommand's options", () => {
  const inv = parseCommand(group, ["--json", "make", "--out", "d"]);
  assert.equal(inv.command.name, "make");
  assert.equal(inv.args.flag("json"), true);
  assert.equal(inv.args.string("out"), "d");
  assert.equal(parseCommand(group, ["--file", "f"]).command.name, "show");
  usageError(() => parseCommand(group, ["make", "--file", "f"]), /make does not take --file/);
  usageError(
    () => parseCommand(group, ["frob"]),
    /unknown subcommand "frob"; expected make or show/,
  );
  assert.equal(parseCommand(group, ["make", "-h"]).help, true);
});

Deno.test("commandHelp() lists every option with its value, choices, default and takers", () => {
  const h = commandHelp(leaf);
  assert.match(h, /^Usage: tool get/);
  assert.match(h, /-a, --as NAME +the name to use/);
  assert.match(h, /--format csv\|json +output format \(default csv\)/);
  assert.match(h, /--tag T … +a tag/);
  const g = commandHelp(group);
  assert.match(g, /--json +JSON output/);
  assert.match(g, /--out VALUE +where \[make\]/);
  assert.match(commandList([leaf, group]), /^ {2}get +Gets one\n {2}keys +Key tools$/);
  for (
    const line of commandHelp({
      ...leaf,
      options: { x: { type: "string", help: "word ".repeat(60) } },
    }).split("\n")
  ) {
    assert.ok(line.length <= 100, line);
  }
});

Deno.test("parseTime() reads ISO 8601, ms since the epoch and durations back from now", () => {
  const now = Date.UTC(2026, 0, 31);
  assert.equal(parseTime("2026-01-01T00:00:00Z", "--from", now), Date.UTC(2026, 0, 1));
  assert.equal(parseTime("1767225600000", "--from", now), 1767225600000);
  assert.equal(parseTime("30d", "--from", now), Date.UTC(2026, 0, 1));
  usageError(() => parseTime("yesterday", "--until", now), /--until: expected ISO 8601/);
});
