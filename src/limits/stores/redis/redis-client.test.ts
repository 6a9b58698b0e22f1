import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, Redis } from 'ioredis';
import { createRedisClient, parseRedisUrl, reconnectDelayMs } from './redis-client.ts';

describe('parseRedisUrl', () => {
  it('reads host, port, password and db; rediss means TLS', () => {
    assert.deepEqual(parseRedisUrl('redis://:yourpassword@redis.internal:6379/0'), {
      sentinel: false,
      tls: false,
      hosts: [{ host: 'redis.internal', port: 6379 }],
      username: undefined,
      password: 'yourpassword',
      db: 0,
    });
    const tls = parseRedisUrl('rediss://app:p%40ss@cache.example.com/3');
    assert.equal(tls.tls, true);
    assert.equal(tls.username, 'app');
    assert.equal(tls.password, 'p@ss');
    assert.deepEqual(tls.hosts, [{ host: 'cache.example.com', port: 6379 }]);
    assert.equal(tls.db, 3);
    assert.deepEqual(parseRedisUrl('redis://[::1]:7000').hosts, [{ host: '::1', port: 7000 }]);
  });

  it('reads redis+sentinel URLs: several sentinels, the master name, then the db', () => {
    const s = parseRedisUrl('redis+sentinel://:pw@s1:26379,s2/mymaster/2');
    assert.equal(s.sentinel, true);
    assert.deepEqual(s.hosts, [
      { host: 's1', port: 26379 },
      { host: 's2', port: 26379 },
    ]);
    assert.equal(s.master, 'mymaster');
    assert.equal(s.db, 2);
  });

  it('refuses what it cannot read, without echoing a password', () => {
    assert.throws(() => parseRedisUrl('http://:secret@host'), (e: Error) => !e.message.includes('secret'));
    assert.throws(() => parseRedisUrl('redis://:secret@host/notadb'), (e: Error) => !e.message.includes('secret') && /database/.test(e.message));
  });
});

describe('createRedisClient', () => {
  const noConnect = { connectTimeoutMs: 50 };

  it('takes the URL from redis_url_env, fails fast by design, and describes it without the password', () => {
    const { client, description, commandTimeoutMs } = createRedisClient(
      { enabled: true, redis_url_env: 'KT_TEST_URL', command_timeout_ms: 120 },
      { KT_TEST_URL: 'redis://:hunter2@127.0.0.1:1/4' },
      noConnect,
    );
    try {
      assert.ok(client instanceof Redis);
      assert.equal(description, 'redis://127.0.0.1:1/4');
      assert.ok(!description.includes('hunter2'));
      assert.equal(commandTimeoutMs, 120);
      const o = (client as Redis).options;
      assert.equal(o.enableOfflineQueue, false);
      assert.equal(o.maxRetriesPerRequest, 0);
      // The store keeps the deadline (lag-aware); ioredis's own timeout would fail answered calls.
      assert.equal(o.commandTimeout, undefined);
      assert.equal(o.password, 'hunter2');
      assert.equal(o.db, 4);
    } finally {
      client.disconnect();
    }
  });

  it('names a missing environment variable', () => {
    assert.throws(() => createRedisClient({ enabled: true, redis_url_env: 'KT_NOPE' }, {}), /KT_NOPE, which is not set/);
  });

  it('builds Sentinel and Cluster clients', () => {
    const s = createRedisClient({ enabled: true, sentinel: { name: 'mymaster', nodes: ['127.0.0.1:1'], password_env: 'SPW' } }, { SPW: 'spw' }, noConnect);
    try {
      assert.equal(s.description, 'redis+sentinel://127.0.0.1:1/mymaster');
      assert.equal((s.client as Redis).options.name, 'mymaster');
      assert.equal((s.client as Redis).options.sentinelPassword, 'spw');
    } finally {
      s.client.disconnect();
    }
    const c = createRedisClient({ enabled: true, cluster_nodes: ['127.0.0.1:1', '127.0.0.1:2'] }, {}, noConnect);
    try {
      assert.ok(c.client instanceof Cluster);
      assert.equal(c.description, 'redis cluster (127.0.0.1:1,127.0.0.1:2)');
    } finally {
      c.client.disconnect();
    }
  });

  it('reconnects forever with a backoff capped at 1 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(reconnectDelayMs), [50, 100, 200, 400, 800, 1000, 1000, 1000]);
  });
});
