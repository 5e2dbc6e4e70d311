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
  /** Who cleared the alarm by hand (`page`, or the operator key of a remote command). */
  by?: string;
}

/** An entry of the alarm history: a transition, or an acknowledgement. */
export interface AlarmHistoryEntry {
  /** {@linkcode alarmKey} of the alarm. */
  key: string;
  rule: string;
  instance?: string;
  to: "raised" | "cleared" | "acknowledged";
  severity: string;
  message: string;
  ts: number;
  device?: string;
  metric?: string;
  value?: number | boolean | string;
  /** Who acknowledged or cleared by hand. */
  by?: string;
}

/** An acknowledgement of an active alarm. */
export interface AlarmAck {
  at: number;
  by: string;
}

/** Entries the history keeps; older ones are deleted as new ones come. */
export const ALARM_HISTORY_ROWS = 500;

/** A history entry of a transition. */
function historyOf(e: AlarmEvent): AlarmHistoryEntry {
  return {
    key: alarmKey(e),
    rule: e.rule,
    ...(e.instance !== undefined ? { instance: e.instance } : {}),
    to: e.state,
    severity: e.severity,
    message: e.message,
    ts: e.ts,
    ...(e.device !== undefined ? { device: e.device } : {}),
    ...(e.metric !== undefined ? { metric: e.metric } : {}),
    ...(e.value !== undefined ? { value: e.value } : {}),
    ...(e.by !== undefined ? { by: e.by } : {}),
  };
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
  readonly #trim;

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
      CREATE TABLE IF NOT EXISTS acks (rule TEXT PRIMARY KEY, at INTEGER NOT NULL, by TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL);
    `);
    this.#trim = db.prepare("DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?");
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
    const keys = [...last.keys()];
    // Only the newest entries would stay: write no more than the history keeps.
    const history = list.slice(-ALARM_HISTORY_ROWS)
      .map(({ event }) => JSON.stringify(historyOf(event)));
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#many("del", del.length, "DELETE FROM active WHERE rule IN (", "?", ")", del);
      // A raise is a new occurrence and a clear ends one: an acknowledgement ends with either.
      this.#many("unack", keys.length, "DELETE FROM acks WHERE rule IN (", "?", ")", keys);
      this.#many("hist", history.length, "INSERT INTO history (entry) VALUES ", "(?)", "", history);
      this.#trim.run(ALARM_HISTORY_ROWS);
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

  /** Acknowledges the active alarm `key` and notes it in the history, atomically. */
  acknowledge(entry: AlarmHistoryEntry & { by: string }): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#db.prepare("INSERT OR REPLACE INTO acks (rule, at, by) VALUES (?, ?, ?)")
        .run(entry.key, entry.ts, entry.by);
      this.#db.prepare("INSERT INTO history (entry) VALUES (?)").run(JSON.stringify(entry));
      this.#trim.run(ALARM_HISTORY_ROWS);
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw new AlarmStoreError(`Cannot record the acknowledgement of alarm "${entry.key}"`, {
        cause: e,
      });
    }
  }

  /** Acknowledgements of active alarms, by {@linkcode alarmKey}. */
  acks(): Map<string, AlarmAck> {
    const rows = this.#db.prepare("SELECT rule, at, by FROM acks").all();
    return new Map(rows.map((r) => [String(r.rule), { at: Number(r.at), by: String(r.by) }]));
  }

  /** The newest `limit` history entries, newest first. */
  history(limit = ALARM_HISTORY_ROWS): AlarmHistoryEntry[] {
    return this.#db.prepare("SELECT entry FROM history ORDER BY id DESC LIMIT ?").all(limit)
      .map((r) => JSON.parse(String(r.entry)));
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
