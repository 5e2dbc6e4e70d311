/** `outpost export`: buffered readings of a buffer file as CSV or JSON lines. */
import { countReadings, CSV_HEADER, csvLine, exportReadings } from "../buffer/mod.ts";
import { type Args, type Command, parseTime, UsageError } from "../common/cli.ts";
import { ProgressLine } from "../common/progress.ts";
import { parseDuration } from "../config/schema.ts";
import { type CliDeps, loadConfig } from "./deps.ts";

async function exportReadingsCmd(args: Args, deps: CliDeps): Promise<number> {
  const since = args.string("since");
  const fromText = args.string("from");
  const config = args.string("config");
  const db = args.string("db") ?? (config ? loadConfig(config, deps).buffer.path : undefined);
  if (!db) throw args.usage("missing --config FILE or --db FILE");
  const format = args.string("format") ?? "csv";
  if (since && fromText) throw new UsageError("use either --since or --from, not both");
  const now = Date.now();
  const from = since
    ? (() => {
      const d = parseDuration(since);
      if (d === undefined) {
        throw new UsageError(`--since: expected a duration such as 30d or 12h, got "${since}"`);
      }
      return now - d;
    })()
    : fromText
    ? parseTime(fromText, "--from", now)
    : undefined;
  const until = args.string("until");
  const to = until ? parseTime(until, "--until", now) : undefined;
  const out = args.string("out");
  const file = out
    ? await Deno.open(out, { write: true, create: true, truncate: true })
    : undefined;
  const enc = new TextEncoder();
  let chunk = "";
  let n = 0;
  const write = async (force: boolean) => {
    if (!force && chunk.length < 65536) return;
    const bytes = enc.encode(chunk);
    chunk = "";
    if (file) {
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
    } else {
      let off = 0;
      while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
    }
  };
  const filter = { device: args.string("device"), metric: args.string("metric"), from, to };
  // Progress goes to stderr (stdout may be the CSV): on a terminal, or when asked for.
  const tty = Deno.stderr.isTerminal();
  const progress = args.flag("progress") || tty
    ? new ProgressLine({
      label: "export",
      unit: "rows",
      tty,
      write: (t) => Deno.stderr.writeSync(enc.encode(t)),
    })
    : undefined;
  try {
    if (progress) progress.total = countReadings(db, filter);
    if (format === "csv") chunk += CSV_HEADER + "\n";
    for (const r of exportReadings(db, filter)) {
      chunk += (format === "csv" ? csvLine(r) : JSON.stringify(r)) + "\n";
      n++;
      progress?.update(n);
      await write(false);
    }
    await write(true);
  } finally {
    file?.close();
  }
  progress?.finish(n);
  if (out) console.error(`exported ${n} readings to ${out}`);
  return 0;
}

/** `outpost export`. */
export const exportCommand: Command<CliDeps> = {
  name: "export",
  summary: "Export buffered readings as CSV or JSON lines",
  usage: `Usage: outpost export (--config FILE | --db FILE) [--device ID] [--metric NAME]
                      [--since DURATION | --from TIME] [--until TIME]
                      [--format csv|jsonl] [--out FILE] [--progress]

Exports buffered readings (forwarded or not) in sequence order. Progress (rows done of the
total, once a second) goes to stderr when it is a terminal, or with --progress. TIME is ISO 8601 or ms since
the epoch; DURATION such as 30d, 12h. Example — the last 30 days of pump-3 as CSV:
  outpost export --config site.yaml --device pump-3 --since 30d --out pump-3.csv`,
  options: {
    config: { type: "string", short: "c", arg: "FILE", help: "read the buffer of this config" },
    db: { type: "string", arg: "FILE", help: "read this buffer file" },
    device: { type: "string", arg: "ID", help: "only this device" },
    metric: { type: "string", arg: "NAME", help: "only this metric" },
    since: { type: "string", arg: "DURATION", help: "from this long ago" },
    from: { type: "string", arg: "TIME", help: "from this time on" },
    until: { type: "string", arg: "TIME", help: "up to this time" },
    format: { type: "string", choices: ["csv", "jsonl"], default: "csv", help: "output format" },
    out: { type: "string", short: "o", arg: "FILE", help: "write here instead of stdout" },
    progress: { type: "boolean", help: "show progress on stderr even when it is not a terminal" },
  },
  run: exportReadingsCmd,
};
