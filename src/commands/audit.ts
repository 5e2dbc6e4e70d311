/**
 * The audit trail of remote commands: every request the gateway received, accepted or refused,
 * with the operator key that signed it, the command, its target, the result and the time. Kept
 * as JSON lines in `commands-audit.jsonl` beside the buffer (bounded by rows: the file is cut back
 * to the newest `maxRows` once it holds a fifth more), read by `logs {audit: true}` and `/audit`.
 */
import { writeFileAtomic } from "../update/mod.ts";

/** One remote command as the audit trail records it. */
export interface AuditEntry {
  /** When the outcome was known, ms since epoch. */
  ts: number;
  /** The request id; null when the request was too malformed to read one. */
  id: string | null;
  cmd: string;
  /** The gateway id or `fleet`, as in the request topic. */
  target: string;
  /** Key id the request named (`keyid`); null when unsigned. */
  keyid: string | null;
  /** Whether the signature of `keyid` verified (false: a claim, e.g. an unknown key). */
  verified: boolean;
  /** The key's `name` in the config, when it has one. */
  key?: string;
  /** `done`, `accepted` (final reply after a restart), or the error code of the refusal/failure. */
  result: string;
  /** Why, for refusals and failures. */
  message?: string;
}

/** Rows kept by default. */
export const AUDIT_ROWS = 1000;

/** The audit file of a gateway whose buffer is at `bufferPath`. */
export function auditPath(bufferPath: string): string {
  const dir = bufferPath.includes("/") ? bufferPath.slice(0, bufferPath.lastIndexOf("/")) : ".";
  return `${dir}/commands-audit.jsonl`;
}

function parseLines(text: string): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line);
      if (e && typeof e === "object" && typeof e.cmd === "string") out.push(e as AuditEntry);
    } catch { /* a line torn by a crash: skipped */ }
  }
  return out;
}

/** The newest `limit` entries of an audit file, oldest first; none when it does not exist. */
export async function readAuditFile(path: string, limit = AUDIT_ROWS): Promise<AuditEntry[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return parseLines(text).slice(-Math.max(0, limit));
}

/** The bounded audit table: newest rows in memory, every row appended to the file. */
export class AuditTrail {
  readonly path: string;
  readonly maxRows: number;
  #rows: AuditEntry[] = [];
  #onDisk = 0;
  #queue: AuditEntry[] = [];
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string, opts: { maxRows?: number } = {}) {
    this.path = path;
    this.maxRows = opts.maxRows ?? AUDIT_ROWS;
  }

  /** Reads the file; returns why it could not be read (it then starts empty). */
  load(): string | undefined {
    let text: string;
    try {
      text = Deno.readTextFileSync(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      return `Cannot read "${this.path}": ${(e as Error).message}`;
    }
    const all = parseLines(text);
    this.#onDisk = all.length;
    this.#rows = all.slice(-this.maxRows);
    return undefined;
  }

  /** Records an entry; resolves once it is in the file. */
  record(entry: AuditEntry): Promise<void> {
    this.#rows.push(entry);
    if (this.#rows.length > this.maxRows) this.#rows.splice(0, this.#rows.length - this.maxRows);
    this.#queue.push(entry);
    this.#writing = this.#writing.catch(() => {}).then(() => this.#flush());
    return this.#writing;
  }

  /** Writes what is queued: appended, or the file rewritten with the newest rows when too long. */
  async #flush(): Promise<void> {
    const batch = this.#queue;
    if (!batch.length) return;
    this.#queue = [];
    if (this.#onDisk + batch.length > this.maxRows + Math.ceil(this.maxRows / 5)) {
      // #rows already holds the batch: the snapshot and the drained queue agree.
      const keep = this.#rows.slice();
      await writeFileAtomic(this.path, keep.map((e) => JSON.stringify(e) + "\n").join(""), 0o600);
      this.#onDisk = keep.length;
      return;
    }
    await Deno.writeTextFile(this.path, batch.map((e) => JSON.stringify(e) + "\n").join(""), {
      append: true,
      create: true,
      mode: 0o600,
    });
    this.#onDisk += batch.length;
  }

  /** The newest `limit` entries, oldest first. */
  recent(limit = this.maxRows): AuditEntry[] {
    return this.#rows.slice(-Math.max(0, limit));
  }
}
