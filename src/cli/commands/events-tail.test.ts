import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { eventsTail, type EventsTailOptions } from './events-tail.ts';
import { SqliteEventSink } from '../../events/stores/sqlite-event-sink.ts';
import { makeEvent } from '../../events/test-helpers.ts';
import type { GatewayEvent } from '../../events/types.ts';

function capture(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  let buf = '';
  out.setEncoding('utf8');
  out.on('data', (c: string) => (buf += c));
  return { out, text: () => buf };
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Fixture {
  dir: string;
  sink: SqliteEventSink;
  events: GatewayEvent[];
}

async function fixture(t: { after: (fn: () => unknown) => void }): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'kt-tail-'));
  const sink = new SqliteEventSink(dir);
  t.after(async () => {
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const events = [
    makeEvent({ consumer_group: 'acme', user: 'alice' }),
    makeEvent({
      consumer_group: 'beta',
      result: 'blocked',
      reason: 'rate_limited',
      status: 429,
      rate_limit: {
        remaining_requests: 0,
        remaining_tokens: 900,
        limit: 'rpm',
        scope: 'consumer_group',
        limit_value: 60,
        retry_after_seconds: 12,
      },
      message: 'rate limit exceeded',
    }),
    makeEvent({
      consumer_group: 'acme',
      result: 'blocked',
      reason: 'policy_blocked',
      status: 400,
      findings: [{ policy: 'pii', type: 'regex', category: 'credit_card', action: 'block', count: 2 }],
    }),
    makeEvent({ consumer_group: 'acme', user: 'bob', usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } }),
  ];
  for (const e of events) sink.record(e);
  await sink.flush();
  return { dir, sink, events };
}

async function run(dir: string, opts: Partial<EventsTailOptions>): Promise<string> {
  const c = capture();
  await eventsTail({ dataDir: dir, last: 20, format: 'table', follow: false, verbose: false, out: c.out, ...opts });
  await new Promise((r) => setImmediate(r));
  return c.text();
}

test('json prints one array of the last N events, oldest first', async (t) => {
  const f = await fixture(t);
  const all = JSON.parse(await run(f.dir, { format: 'json' })) as GatewayEvent[];
  assert.deepEqual(all, f.events);
  const last2 = JSON.parse(await run(f.dir, { format: 'json', last: 2 })) as GatewayEvent[];
  assert.deepEqual(last2, f.events.slice(2));
  const text = await run(f.dir, { format: 'json', last: 1 });
  assert.ok(text.startsWith('[\n  {\n    "id"'), 'pretty-printed with 2 spaces');
});

test('jsonl prints one parseable event per line', async (t) => {
  const f = await fixture(t);
  const lines = (await run(f.dir, { format: 'jsonl' })).trimEnd().split('\n');
  assert.equal(lines.length, 4);
  assert.deepEqual(lines.map((l) => JSON.parse(l)), f.events);
});

test('filters: consumer group, and status matching result or reason', async (t) => {
  const f = await fixture(t);
  const ids = async (opts: Partial<EventsTailOptions>) =>
    (JSON.parse(await run(f.dir, { format: 'json', ...opts })) as GatewayEvent[]).map((e) => e.id);
  const [a, b, c, d] = f.events.map((e) => e.id);
  assert.deepEqual(await ids({ consumerGroup: 'acme' }), [a, c, d]);
  assert.deepEqual(await ids({ status: 'blocked' }), [b, c]);
  assert.deepEqual(await ids({ status: 'rate_limited' }), [b]);
  assert.deepEqual(await ids({ status: 'blocked', consumerGroup: 'acme' }), [c]);
  assert.deepEqual(await ids({ status: 'nothing' }), []);
});

test('table prints a header and one line per event; verbose adds details', async (t) => {
  const f = await fixture(t);
  const lines = (await run(f.dir, {})).trimEnd().split('\n');
  assert.equal(lines.length, 5);
  assert.match(lines[0], /^TIME\s+RESULT\s+STATUS\s+GROUP\s+USER\s+MODEL\s+TOKENS\s+LATENCY$/);
  assert.match(lines[2], /blocked\/rate_limited\s+429\s+beta\s+alice\s+gpt-4o-mini\s+15\s+42ms$/);
  assert.match(lines[4], /allowed\s+200\s+acme\s+bob\s+gpt-4o-mini\s+10\s+42ms$/);

  const verbose = await run(f.dir, { verbose: true, status: 'blocked' });
  assert.match(verbose, /\n {4}rate_limit: limit=rpm scope=consumer_group limit_value=60 remaining_requests=0 remaining_tokens=900 retry_after=12s\n/);
  assert.match(verbose, /\n {4}message: rate limit exceeded\n/);
  assert.match(verbose, /\n {4}finding: pii regex credit_card action=block count=2\n/);
  assert.match(verbose, /\n {4}usage: prompt=10 completion=5 total=15\n/);
});

test('a missing database prints an empty result', async () => {
  const dir = join(tmpdir(), `kt-tail-missing-${process.pid}-${Date.now()}`);
  assert.deepEqual(JSON.parse(await run(dir, { format: 'json' })), []);
  assert.equal(await run(dir, { format: 'jsonl' }), '');
});

test('follow prints new matching events as they arrive and stops on abort', async (t) => {
  const f = await fixture(t);
  for (const format of ['json', 'jsonl', 'table'] as const) {
    const c = capture();
    const ac = new AbortController();
    const done = eventsTail({
      dataDir: f.dir,
      last: 1,
      format,
      consumerGroup: 'acme',
      follow: true,
      verbose: false,
      out: c.out,
      signal: ac.signal,
      pollMs: 5,
    });
    t.after(() => ac.abort()); // never leave a follower polling if an assertion fails
    const marker = (e: GatewayEvent): string => (format === 'table' ? e.user! : e.id);
    await waitFor(() => c.text().includes(marker(f.events[3])));
    const other = makeEvent({ consumer_group: 'beta' });
    const fresh = makeEvent({ consumer_group: 'acme', user: `carol-${format}` });
    f.sink.record(other);
    f.sink.record(fresh);
    await f.sink.flush();
    await waitFor(() => c.text().includes(marker(fresh)));
    ac.abort();
    await done;

    const text = c.text();
    assert.ok(!text.includes(other.id) && !text.includes('beta'), `${format}: filter applies while following`);
    if (format === 'json') {
      const [array, line] = text.split(/\n(?=\{)/);
      assert.deepEqual(JSON.parse(array), [f.events[3]]);
      assert.deepEqual(JSON.parse(line), fresh);
    } else if (format === 'jsonl') {
      assert.deepEqual(text.trimEnd().split('\n').map((l) => JSON.parse(l)), [f.events[3], fresh]);
    } else {
      assert.equal(text.trimEnd().split('\n').length, 3);
    }
    f.events[3] = fresh; // the newest acme event for the next round
  }
});

test('follow with last 0 only prints events recorded after start', async (t) => {
  const f = await fixture(t);
  const c = capture();
  const ac = new AbortController();
  const done = eventsTail({
    dataDir: f.dir, last: 0, format: 'table', status: 'blocked', follow: true, verbose: false,
    out: c.out, signal: ac.signal, pollMs: 5,
  });
  t.after(() => ac.abort());
  await waitFor(() => c.text().startsWith('TIME')); // the header: the initial read is done
  const fresh = makeEvent({ result: 'blocked', reason: 'model_not_allowed', status: 403, user: 'dave' });
  f.sink.record(makeEvent({ user: 'erin' })); // allowed: filtered out
  f.sink.record(fresh);
  await f.sink.flush();
  await waitFor(() => c.text().includes('dave'));
  ac.abort();
  await done;
  const lines = c.text().trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[1], /blocked\/model_not_allowed\s+403\s+default\s+dave/);
});
