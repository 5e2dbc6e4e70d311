import { DatabaseSync } from "node:sqlite";

/** An alarm event as sent upstream and to actions. */
export interface AlarmEvent {
  /** Rule name: the alarm's id. */
  rule: string;
  state: "raised" | "cleared";
  severity: string;
  message: string;
  /** When the transition happened (gateway clock, ms since epoch). */
  ts: number;
  /** When the alarm was raised (equals `ts` for a raise). */
  raisedAt: number;
  /** The reading that caused the transition, when one did (staleness has none). */
  device?: string;
  metric?: string;
  value?: number | boolean | string;
}

/** The alarm state file could not be opened or written. */
export class AlarmStoreError extends Error {
  override name = "AlarmStoreError";
}

/**
 * Alarm state that survives restarts, in its own SQLite file (`<buffer path>.alarms.db`): which
 * alarms are active, and an outbox of events not yet confirmed upstream, in order. A transition
 * and its outbox row commit together, so a crash never leaves one without the other.
 */
export class AlarmStore {
  readonly #db: DatabaseSync;
  readonly #insertOut;
  readonly #setActive;
  readonly #delActive;
  readonly #peek;
  readonly #ack;
  readonly #count;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA wal_autocheckpoint = 0; -- checkpoint() runs on a timer, never inside a dispatch
      CREATE TABLE IF NOT EXISTS active (rule TEXT PRIMARY KEY, event TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);
    `);
    this.#insertOut = db.prepare("INSERT INTO outbox (event) VALUES (?)");
    this.#setActive = db.prepare("INSERT OR REPLACE INTO active (rule, event) VALUES (?, ?)");
    this.#delActive = db.prepare("DELETE FROM active WHERE rule = ?");
    this.#peek = db.prepare("SELECT id, event FROM outbox ORDER BY id LIMIT ?");
    this.#ack = db.prepare("DELETE FROM outbox WHERE id = ?");
    this.#count = db.prepare("SELECT count(*) AS n FROM outbox");
  }

  /** Opens (or creates) the store at `path`. */
  static open(path: string): AlarmStore {
    try {
      return new AlarmStore(new DatabaseSync(path));
    } catch (e) {
      throw new AlarmStoreError(`Cannot open alarm state "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Active alarms by rule name, with the event that raised them. */
  active(): Map<string, AlarmEvent> {
    const rows = this.#db.prepare("SELECT rule, event FROM active").all() as {
      rule: string;
      event: string;
    }[];
    return new Map(rows.map((r) => [r.rule, JSON.parse(r.event)]));
  }

  /** Records a transition: updates the active set and queues the event for upstream, atomically. */
  record(event: AlarmEvent, queue: boolean): void {
    this.recordAll([{ event, queue }]);
  }

  /** Records several transitions in one transaction, in order. */
  recordAll(list: { event: AlarmEvent; queue: boolean }[]): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      for (const { event, queue } of list) {
        const text = JSON.stringify(event);
        if (event.state === "raised") this.#setActive.run(event.rule, text);
        else this.#delActive.run(event.rule);
        if (queue) this.#insertOut.run(text);
      }
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      const names = list.map(({ event }) => `"${event.rule}" ${event.state}`).join(", ");
      throw new AlarmStoreError(`Cannot record alarm transitions ${names}`, { cause: e });
    }
  }

  /** The oldest `limit` events not yet confirmed upstream, oldest first. */
  pending(limit: number): { id: number; event: AlarmEvent }[] {
    return (this.#peek.all(limit) as { id: number; event: string }[]).map((r) => ({
      id: r.id,
      event: JSON.parse(r.event),
    }));
  }

  /** Removes a confirmed event from the outbox. */
  ack(id: number): void {
    this.#ack.run(id);
  }

  /** Events waiting for the uplink. */
  get queued(): number {
    return (this.#count.get() as { n: number }).n;
  }

  /** Folds the write-ahead log back into the file; called on a timer, off the dispatch path. */
  checkpoint(): void {
    this.#db.exec("PRAGMA wal_checkpoint(PASSIVE)");
  }

  /** Closes the file. */
  close(): void {
    this.checkpoint();
    this.#db.close();
  }
}
