import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteEventSink } from './sqlite-event-sink.ts';
import { eventsDbPath, openEventReader } from './sqlite-event-store.ts';
import { MemoryEventSink } from '../memory-event-sink.ts';
import { makeEvent } from '../test-helpers.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kt-events-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('records through the worker and reads from a separate connection', async (t) => {
  const dir = tempDir(t);
  const sink = new SqliteEventSink(dir);
  t.after(() => sink.close());
  const events = Array.from({ length: 600 }, (_, i) => makeEvent({ latency_ms: i }));
  for (const e of events) sink.record(e);
  await sink.flush();

  const db = new Database(eventsDbPath(dir), { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal((db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n, 600);

  const reader = openEventReader(dir);
  t.after(() => reader.close());
  const last = reader.last(3, {});
  assert.deepEqual(last.map((r) => r.event), events.slice(-3));
  assert.ok(last[0].seq < last[1].seq && last[1].seq < last[2].seq);
  assert.deepEqual(reader.last(1000, {}).map((r) => r.event.id), events.map((e) => e.id));
});

test('every shape of event is stored as recorded, members in their order', async (t) => {
  const dir = tempDir(t);
  const sink = new SqliteEventSink(dir);
  t.after(() => sink.close());
  const rl = { remaining_requests: 9, remaining_tokens: null, limit: 'rpm', scope: 'api_key', limit_value: 10 };
  const events = [
    makeEvent(),
    makeEvent({ rate_limit: { ...rl } }),
    makeEvent({ status: 429, result: 'blocked', reason: 'rate_limited', message: 'Rate limit reached', rate_limit: { ...rl, remaining_requests: 0, retry_after_seconds: 7 } }),
    makeEvent({ rate_limit: { ...rl, remaining_tokens: 120, limit: null, scope: null, limit_value: null, shadow_exceeded: ['user:rpm', 'global:tpm'] } }),
    makeEvent({ consumer_group: null, user: null, team: 'platform', key_id: null, ip: null, model: null, target: null, limiter: null, stream: true }),
    makeEvent({ result: 'flagged', findings: [{ policy: 'pii', type: 'pii_detector', category: 'email', action: 'redact', count: 2 }], latency_ms: 12.34 }),
    makeEvent({ status: 502, result: 'error', reason: 'upstream_error', usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, limiter: 'local_fallback' }),
  ];
  for (const e of events) sink.record(e);
  await sink.flush();

  const db = new Database(eventsDbPath(dir), { readonly: true });
  t.after(() => db.close());
  const bodies = (db.prepare('SELECT body FROM events ORDER BY seq').all() as { body: string }[]).map((r) => r.body);
  assert.deepEqual(bodies, events.map((e) => JSON.stringify(e)));
});

test('reader on a missing database returns nothing and does not create it', () => {
  const dir = join(tmpdir(), `kt-events-missing-${process.pid}-${Date.now()}`);
  const reader = openEventReader(dir);
  assert.deepEqual(reader.last(10, {}), []);
  assert.deepEqual(reader.after(0, {}), []);
  reader.close();
  assert.equal(existsSync(dir), false);
});

test('filters by consumer group and by status (result or reason); after() is exclusive', async (t) => {
  const dir = tempDir(t);
  const sink = new SqliteEventSink(dir);
  t.after(() => sink.close());
  const a = makeEvent({ consumer_group: 'acme' });
  const b = makeEvent({ consumer_group: 'beta', result: 'blocked', reason: 'rate_limited', status: 429 });
  const c = makeEvent({ consumer_group: 'acme', result: 'blocked', reason: 'policy_blocked', status: 400 });
  const d = makeEvent({ consumer_group: null, result: 'error', reason: 'upstream_error', status: 502 });
  for (const e of [a, b, c, d]) sink.record(e);
  await sink.flush();

  const reader = openEventReader(dir);
  t.after(() => reader.close());
  const ids = (rows: { event: { id: string } }[]) => rows.map((r) => r.event.id);
  assert.deepEqual(ids(reader.last(10, { consumerGroup: 'acme' })), [a.id, c.id]);
  assert.deepEqual(ids(reader.last(10, { status: 'blocked' })), [b.id, c.id]);
  assert.deepEqual(ids(reader.last(10, { status: 'rate_limited' })), [b.id]);
  assert.deepEqual(ids(reader.last(10, { status: 'blocked', consumerGroup: 'acme' })), [c.id]);
  assert.deepEqual(ids(reader.last(1, { status: 'blocked' })), [c.id]);
  assert.deepEqual(ids(reader.last(0, {})), []);

  const all = reader.last(10, {});
  assert.deepEqual(ids(reader.after(all[1].seq, {})), [c.id, d.id]);
  assert.deepEqual(ids(reader.after(all[0].seq, { status: 'blocked' })), [b.id, c.id]);
  assert.deepEqual(ids(reader.after(all[3].seq, {})), []);
});

test('prune deletes events older than the cutoff', async (t) => {
  const dir = tempDir(t);
  const sink = new SqliteEventSink(dir);
  t.after(() => sink.close());
  const base = 1_700_000_000_000;
  for (let i = 0; i < 10; i++) sink.record(makeEvent({ ts_ms: base + i * 1000 }));
  await sink.flush();
  sink.prune(base + 4000);
  await sink.flush();
  const reader = openEventReader(dir);
  t.after(() => reader.close());
  assert.deepEqual(
    reader.last(100, {}).map((r) => r.event.ts_ms),
    [4, 5, 6, 7, 8, 9].map((i) => base + i * 1000),
  );
});

test('events survive closing and reopening; sequence numbers keep increasing', async (t) => {
  const dir = tempDir(t);
  const first = new SqliteEventSink(dir);
  const e1 = makeEvent();
  first.record(e1);
  await first.close(); // close() flushes
  first.record(makeEvent()); // ignored after close, must not throw

  const second = new SqliteEventSink(dir);
  const e2 = makeEvent();
  second.record(e2);
  await second.close();

  const reader = openEventReader(dir);
  t.after(() => reader.close());
  const rows = reader.last(10, {});
  assert.deepEqual(rows.map((r) => r.event), [e1, e2]);
  assert.ok(rows[1].seq > rows[0].seq);
});

test('two sinks writing to the same file concurrently lose nothing', async (t) => {
  const dir = tempDir(t);
  const sinks = [new SqliteEventSink(dir, { batchSize: 50 }), new SqliteEventSink(dir, { batchSize: 50 })];
  t.after(() => Promise.all(sinks.map((s) => s.close())));
  const reader = openEventReader(dir);
  t.after(() => reader.close());
  const n = 3000;
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) {
    for (const [k, sink] of sinks.entries()) {
      const e = makeEvent({ consumer_group: `g${k}` });
      ids.add(e.id);
      sink.record(e);
    }
    // Read while writing, and yield now and then so both workers' batches interleave.
    if (i % 500 === 0) {
      reader.last(5, {});
      await new Promise((r) => setImmediate(r));
    }
  }
  await Promise.all(sinks.map((s) => s.flush()));

  const rows = reader.after(0, {});
  assert.equal(rows.length, 2 * n);
  assert.deepEqual(new Set(rows.map((r) => r.event.id)), ids);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i].seq > rows[i - 1].seq);
  assert.equal(reader.last(10 * n, { consumerGroup: 'g0' }).length, n);
  assert.equal(reader.last(10 * n, { consumerGroup: 'g1' }).length, n);
});

test('a dead worker is logged once; record never throws and flush rejects', async (t) => {
  const dir = tempDir(t);
  const notADir = join(dir, 'file');
  writeFileSync(notADir, 'x');
  const logged: string[] = [];
  const sink = new SqliteEventSink(join(notADir, 'sub'), { log: (l) => logged.push(l) });
  sink.record(makeEvent());
  await assert.rejects(sink.flush());
  for (let i = 0; i < 10; i++) sink.record(makeEvent());
  sink.prune(Date.now());
  await assert.rejects(sink.flush());
  await sink.close();
  assert.equal(logged.length, 1);
  assert.match(logged[0], /event store worker failed/);
});

test('each row holds the event as JSON text, exactly as JSON.stringify writes it', async (t) => {
  const dir = tempDir(t);
  const sink = new SqliteEventSink(dir);
  t.after(() => sink.close());
  const e = makeEvent({ consumer_group: 'acme', user: 'caf\u00e9 "quoted"\n', message: null, latency_ms: 12.34 });
  sink.record(e);
  await sink.flush();
  const db = new Database(eventsDbPath(dir), { readonly: true });
  t.after(() => db.close());
  const row = db.prepare('SELECT ts_ms, consumer_group, result, reason, body FROM events').get() as Record<string, unknown>;
  assert.deepEqual(row, { ts_ms: e.ts_ms, consumer_group: 'acme', result: e.result, reason: e.reason, body: JSON.stringify(e) });
});

test('a batch the worker cannot receive fails like a failed write; the sink goes on', async (t) => {
  const dir = tempDir(t);
  const logged: string[] = [];
  const sink = new SqliteEventSink(dir, { log: (l) => logged.push(l) });
  t.after(() => sink.close());
  // A function cannot be cloned to the worker thread.
  sink.record({ ...makeEvent(), message: (() => 'x') as unknown as string });
  await assert.rejects(sink.flush(), /1 write\(s\) failed/);
  const ok = makeEvent();
  sink.record(ok);
  await sink.flush();
  assert.equal(logged.length, 1);
  assert.match(logged[0]!, /event store batch failed: .*could not be cloned/);
  const reader = openEventReader(dir);
  t.after(() => reader.close());
  assert.deepEqual(reader.last(10, {}).map((r) => r.event.id), [ok.id]);
});

test('MemoryEventSink records, filters, prunes', async () => {
  const sink = new MemoryEventSink();
  const a = makeEvent({ ts_ms: 1000, consumer_group: 'acme' });
  const b = makeEvent({ ts_ms: 2000, result: 'blocked', reason: 'rate_limited' });
  sink.record(a);
  sink.record(b);
  await sink.flush();
  assert.deepEqual(sink.events, [a, b]);
  assert.deepEqual(sink.last(10, { status: 'rate_limited' }).map((r) => r.event), [b]);
  assert.deepEqual(sink.last(10, { consumerGroup: 'acme' }).map((r) => r.event), [a]);
  assert.deepEqual(sink.after(1, {}).map((r) => r.event), [b]);
  sink.prune(1500);
  assert.deepEqual(sink.events, [b]);
  await sink.close();
  sink.clear();
  assert.deepEqual(sink.events, []);
  sink.record(a);
  assert.deepEqual(sink.last(1, {}), [{ seq: 3, event: a }]);
});
