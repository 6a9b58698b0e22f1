/**
 * identify through the real gateway over HTTP: api_keys (plaintext and SHA-256), the four ways a key
 * may be presented, unknown and missing keys, a key's consumer-group binding and model list, trusted
 * headers (with and without keys), and X-Forwarded-For for the per_ip tier only through trusted
 * proxies. Targets are `provider: mock`; every gateway runs in-process on a ManualClock so no window
 * rolls over mid-test.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chat, eventually, post, startTestGateway, tempDir, writeConfig, type HttpResult } from '../helpers/harness.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { GatewayEvent } from '../../src/events/types.ts';
import type { Gateway } from '../../src/server/gateway.ts';

const MOCK_TARGET = ['providers:', '  targets:', '    - id: mock', '      provider: mock'].join('\n');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function gateway(yaml: string, events?: MemoryEventSink): Promise<Gateway> {
  const dir = tempDir();
  return startTestGateway({ configFile: writeConfig(dir, `version: '1'\n${MOCK_TARGET}\n${yaml}\n`), clock: new ManualClock(), events });
}

const send = (gw: Gateway, headers: Record<string, string> = {}, model?: string) => post(`${gw.url}/v1/chat/completions`, chat('hello', model), headers);

async function eventOf(events: MemoryEventSink, r: HttpResult): Promise<GatewayEvent> {
  const id = r.headers['x-request-id'];
  assert.ok(id, 'the response carries X-Request-Id');
  return eventually(() => events.events.find((e) => e.id === id));
}

function assert429(r: HttpResult, scope: string, subject?: string): void {
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.equal(r.json.error.code, 'rate_limit_exceeded');
  assert.equal(r.json.error.details.scope, scope, r.text);
  if (subject !== undefined) assert.ok(r.json.error.message.includes(subject), `message names ${subject}: ${r.json.error.message}`);
}

describe('api_keys', () => {
  const PLAIN = 'kt_plain_key_0001';
  const HASHED = 'kt_hashed_key_0002';
  const BOUND = 'kt_bound_key_0003';
  const GROUP_KEY = 'kt_cg_gold_0004';
  const RESTRICTED = 'kt_restricted_key_0005';
  const events = new MemoryEventSink();
  let gw: Gateway;

  before(async () => {
    gw = await gateway(
      [
        'consumer_groups:',
        '  - name: gold',
        `    api_key: ${GROUP_KEY}`,
        '    rate_limits:',
        '      requests_per_minute: 3',
        'api_keys:',
        '  - id: plain',
        `    key: ${PLAIN}`,
        '    user: alice',
        '    team: red',
        '    groups: [free]',
        '  - id: hashed',
        `    key_sha256: ${sha256(HASHED)}`,
        '    user: bob',
        '    team: blue',
        '  - id: bound',
        `    key: ${BOUND}`,
        '    user: carol',
        '    consumer_group: gold',
        '  - id: restricted',
        `    key: ${RESTRICTED}`,
        '    user: dave',
        '    allowed_models: [gpt-4o-mini]',
      ].join('\n'),
      events,
    );
  });
  after(async () => {
    await gw?.close();
  });

  it('a plaintext `key` authenticates and binds user, team and key id', async () => {
    const r = await send(gw, { authorization: `Bearer ${PLAIN}` });
    assert.equal(r.status, 200, r.text);
    const ev = await eventOf(events, r);
    assert.equal(ev.key_id, 'plain');
    assert.equal(ev.user, 'alice');
    assert.equal(ev.team, 'red');
    assert.ok(!JSON.stringify(ev).includes(PLAIN), 'the event never holds the key');
  });

  it('a `key_sha256` entry authenticates the key whose hash it holds', async () => {
    const r = await send(gw, { authorization: `Bearer ${HASHED}` });
    assert.equal(r.status, 200, r.text);
    const ev = await eventOf(events, r);
    assert.equal(ev.key_id, 'hashed');
    assert.equal(ev.user, 'bob');
    assert.equal(ev.team, 'blue');
  });

  it('the hash itself is not a key', async () => {
    const r = await send(gw, { authorization: `Bearer ${sha256(HASHED)}` });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.code, 'invalid_api_key');
  });

  it('an unknown key is 401 invalid_api_key (no rate_limit_defaults), without echoing the key', async () => {
    const bogus = 'kt_unknown_key_9999';
    const r = await send(gw, { authorization: `Bearer ${bogus}` });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.type, 'authentication_error');
    assert.equal(r.json.error.code, 'invalid_api_key');
    assert.ok(!r.text.includes(bogus), 'the response does not echo the key');
    const ev = await eventOf(events, r);
    assert.equal(ev.result, 'blocked');
    assert.equal(ev.reason, 'unauthenticated');
    assert.equal(ev.key_id, null);
    assert.ok(!JSON.stringify(ev).includes(bogus), 'the event does not hold the key');
  });

  it('a missing key is 401 with a message naming the accepted headers', async () => {
    const r = await send(gw);
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.type, 'authentication_error');
    assert.equal(r.json.error.code, 'unauthenticated');
    const m: string = r.json.error.message;
    for (const h of ['Authorization: Bearer', 'Authorization: APIKEY', 'X-API-Key', 'X-Consumer-Group']) assert.ok(m.includes(h), `message names ${h}: ${m}`);
  });

  for (const [how, headers] of [
    ['Authorization: Bearer', { authorization: `Bearer ${PLAIN}` }],
    ['Authorization: APIKEY', { authorization: `APIKEY ${PLAIN}` }],
    ['X-API-Key', { 'x-api-key': PLAIN }],
    ['X-Consumer-Group', { 'x-consumer-group': PLAIN }],
  ] as const) {
    it(`the key is accepted as ${how}`, async () => {
      const r = await send(gw, headers);
      assert.equal(r.status, 200, r.text);
      const ev = await eventOf(events, r);
      assert.equal(ev.key_id, 'plain');
      assert.equal(ev.user, 'alice');
    });
  }

  it('a key bound to a consumer_group shares that group\'s limits with the group\'s own key', async () => {
    const a = await send(gw, { authorization: `Bearer ${BOUND}` });
    assert.equal(a.status, 200, a.text);
    const ev = await eventOf(events, a);
    assert.equal(ev.consumer_group, 'gold');
    assert.equal(ev.user, 'carol');
    assert.equal((await send(gw, { 'x-consumer-group': GROUP_KEY })).status, 200);
    assert.equal((await send(gw, { 'x-api-key': BOUND })).status, 200);
    const fourth = await send(gw, { authorization: `Bearer ${BOUND}` });
    assert429(fourth, 'consumer_group');
    assert.equal(fourth.json.error.details.consumer_group, 'gold');
    assert.equal(fourth.json.error.details.limit, 'requests_per_minute');
    assert.equal(fourth.json.error.details.limit_value, 3);
    assert429(await send(gw, { 'x-consumer-group': GROUP_KEY }), 'consumer_group');
    // A key outside the group is not affected.
    assert.equal((await send(gw, { authorization: `Bearer ${HASHED}` })).status, 200);
  });

  it('key-level allowed_models: another model is 403 model_not_allowed with the allowed list', async () => {
    const denied = await send(gw, { authorization: `Bearer ${RESTRICTED}` }, 'gpt-4o');
    assert.equal(denied.status, 403, denied.text);
    assert.equal(denied.json.error.type, 'access_denied');
    assert.equal(denied.json.error.code, 'model_not_allowed');
    assert.deepEqual(denied.json.error.allowed_models, ['gpt-4o-mini']);
    const ev = await eventOf(events, denied);
    assert.equal(ev.result, 'blocked');
    assert.equal(ev.reason, 'model_not_allowed');
    assert.equal((await send(gw, { authorization: `Bearer ${RESTRICTED}` }, 'gpt-4o-mini')).status, 200);
    // Other keys are not restricted.
    assert.equal((await send(gw, { authorization: `Bearer ${HASHED}` }, 'gpt-4o')).status, 200);
  });
});

describe('trusted headers without keys (user_rate_limit.header: X-User-Id)', () => {
  let gw: Gateway;
  const events = new MemoryEventSink();
  before(async () => {
    gw = await gateway(['user_rate_limit:', '  header: X-User-Id', 'rate_limits:', '  per_user:', '    rpm: 2', '  per_team:', '    rpm: 3'].join('\n'), events);
  });
  after(async () => {
    await gw?.close();
  });

  it('X-User-Id selects the per_user counter: alice is cut at her rpm, bob is not', async () => {
    const first = await send(gw, { 'x-user-id': 'alice' });
    assert.equal(first.status, 200, first.text);
    assert.equal((await eventOf(events, first)).user, 'alice');
    assert.equal((await send(gw, { 'x-user-id': 'alice' })).status, 200);
    assert429(await send(gw, { 'x-user-id': 'alice' }), 'user', 'user: alice');
    assert.equal((await send(gw, { 'x-user-id': 'bob' })).status, 200);
    assert.equal((await send(gw, { 'x-user-id': 'bob' })).status, 200);
  });

  it('X-Team-Id selects the per_team counter (implied by the trusted user header)', async () => {
    for (const u of ['t1', 't2', 't3']) {
      const r = await send(gw, { 'x-user-id': u, 'x-team-id': 'engineering' });
      assert.equal(r.status, 200, r.text);
    }
    const r = await send(gw, { 'x-user-id': 't4', 'x-team-id': 'engineering' });
    assert429(r, 'team', 'team: engineering');
    const ok = await send(gw, { 'x-user-id': 't4', 'x-team-id': 'marketing' });
    assert.equal(ok.status, 200, 'another team has its own counter');
    assert.equal((await eventOf(events, ok)).team, 'marketing');
  });
});

describe('X-User-Id without trusted headers configured', () => {
  let gw: Gateway;
  before(async () => {
    gw = await gateway(['rate_limits:', '  per_user:', '    rpm: 2'].join('\n'));
  });
  after(async () => {
    await gw?.close();
  });

  it('does not create user counters: all anonymous callers share the per_user counter keyed by IP', async () => {
    assert.equal((await send(gw, { 'x-user-id': 'alice' })).status, 200);
    assert.equal((await send(gw, { 'x-user-id': 'bob' })).status, 200);
    const third = await send(gw, { 'x-user-id': 'carol', 'x-team-id': 'nobody' });
    assert429(third, 'user', 'ip:127.0.0.1');
    assert429(await send(gw), 'user');
  });
});

describe('trusted headers under a verified api key', () => {
  const A = 'kt_tenant_a_key';
  const B = 'kt_tenant_b_key';
  const C = 'kt_tenant_c_key';
  const events = new MemoryEventSink();
  let gw: Gateway;
  before(async () => {
    gw = await gateway(
      [
        'user_rate_limit:',
        '  header: X-User-Id',
        'rate_limits:',
        '  per_user:',
        '    rpm: 2',
        'api_keys:',
        `  - key: ${A}`,
        '    user: tenant-a',
        '    team: team-a',
        `  - key: ${B}`,
        '    user: tenant-b',
        `  - key: ${C}`,
        '    user: tenant-c',
        '    rate_limits:',
        '      rpm: 3',
      ].join('\n'),
      events,
    );
  });
  after(async () => {
    await gw?.close();
  });

  it('X-User-Id: mallory becomes a sub-user of the key (<key user>/mallory) and is cut at the per_user limit', async () => {
    const first = await send(gw, { authorization: `Bearer ${A}`, 'x-user-id': 'mallory', 'x-team-id': 'team-b' });
    assert.equal(first.status, 200, first.text);
    const ev = await eventOf(events, first);
    assert.equal(ev.user, 'tenant-a/mallory');
    assert.equal(ev.team, 'team-a', 'the team stays the key\'s');
    assert.equal((await send(gw, { authorization: `Bearer ${A}`, 'x-user-id': 'mallory' })).status, 200);
    assert429(await send(gw, { authorization: `Bearer ${A}`, 'x-user-id': 'mallory' }), 'user', 'user: tenant-a/mallory');
  });

  it('naming another tenant in X-User-Id does not touch that tenant\'s counter', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await send(gw, { authorization: `Bearer ${A}`, 'x-user-id': 'tenant-b' })).status, 200);
    assert429(await send(gw, { authorization: `Bearer ${A}`, 'x-user-id': 'tenant-b' }), 'user', 'user: tenant-a/tenant-b');
    // tenant-b's own quota is intact.
    const b1 = await send(gw, { authorization: `Bearer ${B}` });
    assert.equal(b1.status, 200, b1.text);
    assert.equal((await eventOf(events, b1)).user, 'tenant-b');
    assert.equal((await send(gw, { authorization: `Bearer ${B}` })).status, 200);
    assert429(await send(gw, { authorization: `Bearer ${B}` }), 'user', 'user: tenant-b');
  });

  it('the key-level limit (api_keys[].rate_limits.rpm) binds all sub-users of the key together', async () => {
    for (const u of ['s1', 's2', 's3']) {
      const r = await send(gw, { authorization: `Bearer ${C}`, 'x-user-id': u });
      assert.equal(r.status, 200, r.text);
    }
    const r = await send(gw, { authorization: `Bearer ${C}`, 'x-user-id': 's4' });
    assert429(r, 'api_key');
    assert.equal(r.json.error.details.limit, 'rpm');
    assert.equal(r.json.error.details.limit_value, 3);
    assert429(await send(gw, { authorization: `Bearer ${C}` }), 'api_key');
  });
});

describe('per_key tier together with api_keys[].rate_limits', () => {
  it('count on separate counters: a key-level rpm of 3 admits exactly 3 under a per_key rpm of 10', async () => {
    const gw = await gateway(
      ['rate_limits:', '  per_key:', '    rpm: 10', 'api_keys:', '  - key: kt_tight', '    rate_limits:', '      rpm: 3', '  - key: kt_loose'].join('\n'),
    );
    try {
      for (let i = 0; i < 3; i++) {
        const r = await send(gw, { authorization: 'Bearer kt_tight' });
        assert.equal(r.status, 200, `request ${i + 1}: ${r.text}`);
      }
      const r = await send(gw, { authorization: 'Bearer kt_tight' });
      assert429(r, 'api_key');
      assert.equal(r.json.error.details.limit_value, 3);
      // The per_key tier binds a key without its own limits at 10.
      for (let i = 0; i < 10; i++) assert.equal((await send(gw, { authorization: 'Bearer kt_loose' })).status, 200);
      const t = await send(gw, { authorization: 'Bearer kt_loose' });
      assert429(t, 'api_key');
      assert.equal(t.json.error.details.limit_value, 10);
    } finally {
      await gw.close();
    }
  });
});

describe('X-Forwarded-For and the per_ip tier', () => {
  const perIp = ['rate_limits:', '  per_ip:', '    rpm: 1'];

  it('is honoured when the socket peer (127.0.0.1) is a trusted proxy: two clients, two counters', async () => {
    const gw = await gateway([...perIp, 'identity:', '  trusted_proxies: [127.0.0.1]'].join('\n'));
    try {
      assert.equal((await send(gw, { 'x-forwarded-for': '203.0.113.5' })).status, 200);
      assert.equal((await send(gw, { 'x-forwarded-for': '198.51.100.7' })).status, 200);
      assert429(await send(gw, { 'x-forwarded-for': '203.0.113.5' }), 'ip', 'IP: 203.0.113.5');
      // The client is the hop nearest the trusted proxy, not a hop the client wrote itself.
      assert429(await send(gw, { 'x-forwarded-for': '192.0.2.99, 198.51.100.7' }), 'ip', 'IP: 198.51.100.7');
    } finally {
      await gw.close();
    }
  });

  it('is ignored without trusted_proxies: every caller on one socket address shares one counter', async () => {
    const gw = await gateway(perIp.join('\n'));
    try {
      assert.equal((await send(gw, { 'x-forwarded-for': '203.0.113.5' })).status, 200);
      assert429(await send(gw, { 'x-forwarded-for': '198.51.100.7' }), 'ip', 'IP: 127.0.0.1');
    } finally {
      await gw.close();
    }
  });

  it('is ignored when the socket peer is not in trusted_proxies', async () => {
    const gw = await gateway([...perIp, 'identity:', '  trusted_proxies: [10.0.0.0/8]'].join('\n'));
    try {
      assert.equal((await send(gw, { 'x-forwarded-for': '203.0.113.5' })).status, 200);
      assert429(await send(gw, { 'x-forwarded-for': '198.51.100.7' }), 'ip', 'IP: 127.0.0.1');
    } finally {
      await gw.close();
    }
  });
});
