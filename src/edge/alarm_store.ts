import { DatabaseSync, type StatementSync } from "node:sqlite";

/** An alarm event as sent upstream and to actions. */
export interface AlarmEvent {
  /** Rule name: the alarm's id. */
  rule: string;
  /**
   * With a glob in the rule's condition: the instance, i.e. the matching device (or
   * `device/metric` when the metric is a glob too). Absent for a rule without globs.
   */
  instance?: string;
  state: "raised" | "cleared";
  severity: string;
  message: string;
  /** When the transition happened (gateway clock, ms since epoch). */
  ts: number;
  /** When the alarm was raised (equals `ts` for a raise). */
  raisedAt: number;
  /**
   * The reading that caused the transition, when one did (staleness has none). For an instance,
   * `device` is always the instance's device.
   */
  device?: string;
  metric?: string;
  value?: number | boolean | string;
}

/** The key of an alarm in the active set and in status: `rule`, or `rule[instance]`. */
export function alarmKey(e: { rule: string; instance?: string }): string {
  return e.instance === undefined ? e.rule : `${e.rule}[${e.instance}]`;
}

/** An instance of a rule with a glob, remembered so its staleness is watched after a restart. */
export interface KnownInstance {
  rule: string;
  instance: string;
  device: string;
  metric: string | null;
}

/** The alarm state file could not be opened or written. */
export class AlarmStoreError extends Error {
  override name = "AlarmStoreError";
}

/**
 * Alarm state that survives restarts, in its own SQLite file (`<buffer path>.alarms.db`): which
 * alarms are active (keyed by {@linkcode alarmKey}), an outbox of events not yet confirmed
 * upstream, in order, and the instances seen of glob rules that watch for silence. A transition
 * and its outbox row commit together, so a crash never leaves one without the other.
 */
export class AlarmStore {
  readonly #db: DatabaseSync;
  /** Multi-row statements of {@linkcode recordAll}, by kind and row count. */
  readonly #stmts = new Map<string, StatementSync>();
  readonly #peek;
  readonly #ack;
  readonly #count;
  readonly #addInstance;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA wal_autocheckpoint = 0; -- checkpoint() runs on a timer, never inside a dispatch
      CREATE TABLE IF NOT EXISTS active (rule TEXT PRIMARY KEY, event TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS instances (
        rule TEXT NOT NULL, instance TEXT NOT NULL, device TEXT NOT NULL, metric TEXT,
        PRIMARY KEY (rule, instance));
    `);
    this.#peek = db.prepare("SELECT id, event FROM outbox ORDER BY id LIMIT ?");
    this.#ack = db.prepare("DELETE FROM outbox WHERE id = ?");
    this.#count = db.prepare("SELECT count(*) AS n FROM outbox");
    this.#addInstance = db.prepare(
      "INSERT OR IGNORE INTO instances (rule, instance, device, metric) VALUES (?, ?, ?, ?)",
    );
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

  /** Active alarms by {@linkcode alarmKey}, with the event that raised them. */
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

  /**
   * Records several transitions in one transaction, in order. A handful of multi-row statements
   * rather than two per transition: when many rules flip together the transaction stays short,
   * and so does the dispatch behind it.
   */
  recordAll(list: { event: AlarmEvent; queue: boolean }[]): void {
    // The last transition of an alarm in the list decides whether it is active.
    const last = new Map<string, string | null>();
    const out: string[] = [];
    for (const { event, queue } of list) {
      const text = JSON.stringify(event);
      last.set(alarmKey(event), event.state === "raised" ? text : null);
      if (queue) out.push(text);
    }
    const set: string[] = [];
    const del: string[] = [];
    for (const [key, text] of last) {
      if (text === null) del.push(key);
      else set.push(key, text);
    }
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#many("del", del.length, "DELETE FROM active WHERE rule IN (", "?", ")", del);
      this.#many(
        "set",
        set.length / 2,
        "INSERT OR REPLACE INTO active (rule, event) VALUES ",
        "(?, ?)",
        "",
        set,
      );
      this.#many("out", out.length, "INSERT INTO outbox (event) VALUES ", "(?)", "", out);
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      const names = list.map(({ event }) => `"${event.rule}" ${event.state}`).join(", ");
      throw new AlarmStoreError(`Cannot record alarm transitions ${names}`, { cause: e });
    }
  }

  /** Runs `head` + `n` × `item` + `tail` with `params`, in statements of at most 100 items. */
  #many(
    kind: string,
    n: number,
    head: string,
    item: string,
    tail: string,
    params: string[],
  ): void {
    const per = params.length / Math.max(1, n);
    for (let i = 0; i < n; i += 100) {
      const k = Math.min(100, n - i);
      const key = `${kind}:${k}`;
      let stmt = this.#stmts.get(key);
      if (!stmt) {
        stmt = this.#db.prepare(head + Array(k).fill(item).join(", ") + tail);
        this.#stmts.set(key, stmt);
      }
      stmt.run(...params.slice(i * per, (i + k) * per));
    }
  }

  /** Remembers an instance of a glob rule (once; later calls for it change nothing). */
  addInstance(i: KnownInstance): void {
    this.#addInstance.run(i.rule, i.instance, i.device, i.metric);
  }

  /** The instances remembered with {@linkcode addInstance}. */
  instances(): KnownInstance[] {
    return this.#db.prepare("SELECT rule, instance, device, metric FROM instances").all()
      .map((r) => ({
        rule: String(r.rule),
        instance: String(r.instance),
        device: String(r.device),
        metric: r.metric === null ? null : String(r.metric),
      }));
  }

  /** Forgets a remembered instance (its rule changed or is gone). */
  forgetInstance(rule: string, instance: string): void {
    this.#db.prepare("DELETE FROM instances WHERE rule = ? AND instance = ?").run(rule, instance);
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
