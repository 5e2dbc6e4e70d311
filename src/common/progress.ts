/**
 * A progress line for long command-line jobs: `export: 1,250,000 of 6,500,000 rows (19%)`, at most
 * once per interval, to a writer that is not the job's output (stderr while stdout carries the
 * data). On a terminal the line is redrawn in place; elsewhere each update is a line of its own.
 *
 * @module
 */

/** Options of {@linkcode ProgressLine}. */
export interface ProgressOptions {
  /** What is being counted, for the line: `export`. */
  label: string;
  /** The unit: `rows`. */
  unit: string;
  /** Writes one piece of text (no newline added). */
  write: (text: string) => void;
  /** Redraw in place (`\r`) instead of one line per update. */
  tty: boolean;
  /** Least time between two updates, ms (1 s). */
  everyMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const count = (n: number) => n.toLocaleString("en-US");

/** Counts done of a known total and shows it now and then. */
export class ProgressLine {
  readonly #o: ProgressOptions;
  readonly #now: () => number;
  readonly #every: number;
  #total: number | null = null;
  #shownAt: number;
  #shown = false;

  constructor(opts: ProgressOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#every = opts.everyMs ?? 1000;
    this.#shownAt = this.#now();
  }

  /** Sets the total once it is known (`null`: unknown, the line shows the count alone). */
  set total(n: number | null) {
    this.#total = n;
  }

  /** The line for `done`. */
  text(done: number): string {
    const t = this.#total;
    if (t === null) return `${this.#o.label}: ${count(done)} ${this.#o.unit}`;
    // Rows stored while the job runs can take it past the total counted at its start.
    const pct = t === 0 ? 100 : Math.min(100, Math.floor(done * 100 / t));
    return `${this.#o.label}: ${count(done)} of ${
      count(Math.max(t, done))
    } ${this.#o.unit} (${pct}%)`;
  }

  /** Shows `done` if the interval has passed since the last update. */
  update(done: number): void {
    const now = this.#now();
    if (now - this.#shownAt < this.#every) return;
    this.#shownAt = now;
    this.#show(done);
  }

  /** Shows the final count, and ends the line. */
  finish(done: number): void {
    if (this.#total !== null && done > this.#total) this.#total = done;
    this.#show(done);
    if (this.#o.tty) this.#o.write("\n");
  }

  #show(done: number): void {
    this.#shown = true;
    this.#o.write(this.#o.tty ? `\r\x1b[2K${this.text(done)}` : `${this.text(done)}\n`);
  }

  /** Whether anything was written. */
  get shown(): boolean {
    return this.#shown;
  }
}
