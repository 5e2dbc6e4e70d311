/**
 * Splits a byte stream into lines with bounded memory: a line longer than the limit is skipped
 * up to its newline instead of being buffered.
 */

/** What the splitter reports for each chunk. */
export interface LineSink {
  /** A complete line without its newline (and without a trailing CR). */
  line(text: string): void;
  /** A line longer than the limit was skipped; `bytes` is how much of it was seen. */
  tooLong(bytes: number): void;
}

const NL = 0x0a;

/** An incremental splitter; feed it chunks, then `end()` for a last line without a newline. */
export class LineSplitter {
  readonly #max: number;
  readonly #sink: LineSink;
  readonly #decoder = new TextDecoder();
  #parts: Uint8Array[] = [];
  #size = 0;
  /** Bytes of the line being skipped, or -1 when not skipping. */
  #skipped = -1;

  /** Creates a splitter for lines of at most `maxLength` bytes. */
  constructor(maxLength: number, sink: LineSink) {
    this.#max = maxLength;
    this.#sink = sink;
  }

  /** Feeds bytes; complete lines go to the sink at once. */
  push(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl < 0 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (this.#skipped >= 0) this.#skipped += piece.length;
      else if (this.#size + piece.length > this.#max) {
        this.#skipped = this.#size + piece.length;
        this.#parts = [];
        this.#size = 0;
      } else if (piece.length) {
        // Copy: the caller may reuse its buffer.
        this.#parts.push(piece.slice());
        this.#size += piece.length;
      }
      if (nl < 0) break;
      this.#finishLine();
      start = nl + 1;
    }
  }

  /** Flushes a last line that had no newline. */
  end(): void {
    if (this.#size > 0 || this.#skipped >= 0) this.#finishLine();
  }

  #finishLine(): void {
    if (this.#skipped >= 0) {
      this.#sink.tooLong(this.#skipped);
      this.#skipped = -1;
      return;
    }
    const bytes = this.#parts.length === 1 ? this.#parts[0] : concat(this.#parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    let text = this.#decoder.decode(bytes);
    if (text.endsWith("\r")) text = text.slice(0, -1);
    this.#sink.line(text);
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
