/**
 * The embedded event store: one SQLite file, `<dataDir>/events.db`, shared by every gateway process
 * (writers, through `SqliteEventSink`'s worker) and every CLI reader (`kt events tail`).
 * WAL mode lets readers run while a writer commits; `busy_timeout` makes concurrent writers from
 * several processes wait for the write lock instead of failing.
 * `seq` is assigned inside the writer's transaction and SQLite serializes writers, so sequence
 * numbers become visible in increasing order: a follower that remembers the last `seq` it saw
 * never misses a row.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { EventFilter, EventReader, GatewayEvent } from '../types.ts';

export type Db = Database.Database;

export const EVENTS_DB_FILE = 'events.db';
export const BUSY_TIMEOUT_MS = 5000;
const SCHEMA_VERSION = 1;

export function eventsDbPath(dataDir: string): string {
  return join(dataDir, EVENTS_DB_FILE);
}

/** Blocks the opening thread between attempts of `migrate` (at start-up only). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * Sets the connection pragmas and creates the schema if missing. Safe to run from many processes at
 * once: SQLite answers SQLITE_BUSY without waiting in a few cases `busy_timeout` does not cover (seen
 * when several connections open a new file and switch it to WAL at the same time), so the set-up is
 * tried again every 20 ms until BUSY_TIMEOUT_MS has passed.
 */
export function migrate(db: Db): void {
  const until = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return setUp(db);
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (!code.startsWith('SQLITE_BUSY') || Date.now() >= until) throw err;
      Atomics.wait(PAUSE, 0, 0, 20);
    }
  }
}

function setUp(db: Db): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  if (!db.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  }
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version >= SCHEMA_VERSION || db.readonly) return;
  // IMMEDIATE takes the write lock up front, so two processes migrating at once serialize cleanly.
  db.transaction(() => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL,
        consumer_group TEXT,
        result TEXT NOT NULL,
        reason TEXT,
        body TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS events_ts_ms ON events (ts_ms);
      CREATE INDEX IF NOT EXISTS events_consumer_group ON events (consumer_group);
    `);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** Opens (creating if needed) the store for writing. Used by the sink's worker. */
export function openEventDb(dataDir: string): Db {
  const db = new Database(eventsDbPath(dataDir));
  migrate(db);
  return db;
}

/** Inserts a batch in one transaction and returns how many rows were written. */
export function insertEvents(db: Db, events: readonly GatewayEvent[]): number {
  const stmt = db.prepare('INSERT INTO events (ts_ms, consumer_group, result, reason, body) VALUES (?, ?, ?, ?, ?)');
  db.transaction((batch: readonly GatewayEvent[]) => {
    for (const e of batch) stmt.run(e.ts_ms, e.consumer_group ?? null, e.result, e.reason ?? null, JSON.stringify(e));
  }).immediate(events);
  return events.length;
}

/** Deletes events with `ts_ms` below `olderThanMs`; returns how many were deleted. */
export function pruneEvents(db: Db, olderThanMs: number): number {
  return db.prepare('DELETE FROM events WHERE ts_ms < ?').run(olderThanMs).changes;
}

function whereClause(filter: EventFilter, extra?: string): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (extra) parts.push(extra);
  if (filter.consumerGroup !== undefined) {
    parts.push('consumer_group = ?');
    params.push(filter.consumerGroup);
  }
  if (filter.status !== undefined) {
    parts.push('(result = ? OR reason = ?)');
    params.push(filter.status, filter.status);
  }
  return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

interface Row {
  seq: number;
  body: string;
}

function toEntries(rows: Row[]): { seq: number; event: GatewayEvent }[] {
  return rows.map((r) => ({ seq: r.seq, event: JSON.parse(r.body) as GatewayEvent }));
}

class SqliteEventReader implements EventReader {
  private db: Db | null = null;
  private closed = false;
  private readonly path: string;

  constructor(dataDir: string) {
    this.path = eventsDbPath(dataDir);
  }

  /** Opens lazily: before any gateway has written, the file does not exist and there is nothing to read. */
  private conn(): Db | null {
    if (this.db || this.closed) return this.db;
    if (!existsSync(this.path)) return null;
    // Read-write (not `readonly`) so the WAL index can be created if no writer is open, but the
    // reader never writes rows; migrate() only creates the schema if a writer has not yet.
    const db = new Database(this.path, { fileMustExist: true });
    try {
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;
    return db;
  }

  last(n: number, filter: EventFilter): { seq: number; event: GatewayEvent }[] {
    const db = this.conn();
    if (!db || n <= 0) return [];
    const w = whereClause(filter);
    const rows = db
      .prepare(`SELECT seq, body FROM events ${w.sql} ORDER BY seq DESC LIMIT ?`)
      .all(...w.params, Math.floor(n)) as Row[];
    return toEntries(rows.reverse());
  }

  after(seq: number, filter: EventFilter): { seq: number; event: GatewayEvent }[] {
    const db = this.conn();
    if (!db) return [];
    const w = whereClause(filter, 'seq > ?');
    const rows = db
      .prepare(`SELECT seq, body FROM events ${w.sql} ORDER BY seq ASC`)
      .all(seq, ...w.params) as Row[];
    return toEntries(rows);
  }

  close(): void {
    this.closed = true;
    this.db?.close();
    this.db = null;
  }
}

/** A reader on `<dataDir>/events.db`; if the file does not exist yet, `last`/`after` return []. */
export function openEventReader(dataDir: string): EventReader {
  return new SqliteEventReader(dataDir);
}
