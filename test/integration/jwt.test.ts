/**
 * identify with signed assertions (`identity.jwt`), through the real gateway over HTTP. Tokens are
 * really signed with jose: HS256 with a shared secret from the environment, RS256 with a local JWKS
 * file, RS256 with a JWKS URL served by a local HTTP server (whose hits show the key set is cached).
 * Every bad token is a 401 `authentication_error` that says why, never what the token contained.
 * Verified claims name the user, team and groups the limits see (per_user, per_team, CEL predicates).
 * The gateway runs on a ManualClock, so `exp` and `nbf` are checked against the injected time.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { chat, eventually, post, startTestGateway, tempDir, writeConfig, type HttpResult } from '../helpers/harness.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { Gateway } from '../../src/server/gateway.ts';

const SECRET_ENV = 'KT_TEST_JWT_SECRET';
const SECRET = `jwt-secret-${randomBytes(16).toString('hex')}`;
/** loadConfigFile (inside startTestGateway) reads process.env. */
process.env[SECRET_ENV] = SECRET;

const ISSUER = 'https://issuer.kt.test';
const AUDIENCE = 'kt-gateway';
const T0_MS = 1_700_000_000_000;

const MOCK_TARGET = ['providers:', '  targets:', '    - id: mock', '      provider: mock'].join('\n');

function jwtBlock(lines: string[]): string {
  return ['identity:', '  jwt:', ...lines.map((l) => `    ${l}`)].join('\n');
}

interface Claims extends JWTPayload {
  consumer_group?: string;
  team?: string;
  groups?: string[] | string;
}

/** Seconds of the gateway's clock. */
const secs = (clock: ManualClock) => Math.floor(clock.nowMs() / 1000);

async function sign(
  key: CryptoKey | Uint8Array,
  alg: string,
  claims: Claims,
  opts: { clock: ManualClock; kid?: string; iss?: string; aud?: string; exp?: number; nbf?: number },
): Promise<string> {
  const now = secs(opts.clock);
  const jwt = new SignJWT(claims)
    .setProtectedHeader(opts.kid ? { alg, kid: opts.kid, typ: 'JWT' } : { alg, typ: 'JWT' })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(opts.exp ?? now + 300);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(key);
}

const hs = (s = SECRET) => new TextEncoder().encode(s);

function asBearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A 401 authentication_error whose message matches `why` and contains nothing of the token. */
function assertRejected(r: HttpResult, token: string, why: RegExp): void {
  assert.equal(r.status, 401, r.text);
  assert.equal(r.json?.error?.type, 'authentication_error', r.text);
  assert.equal(r.json.error.code, 'invalid_token', r.text);
  assert.match(r.json.error.message, why);
  const [h, p, s] = token.split('.');
  assert.ok(!r.text.includes(token), 'the response does not echo the token');
  for (const part of [h, p, s]) if (part && part.length > 8) assert.ok(!r.text.includes(part), `the response does not echo a token segment: ${r.text}`);
}

async function serveJwks(initial: JWK[]): Promise<{ url: string; hits(): number; setKeys(keys: JWK[]): void; close(): Promise<void> }> {
  let keys = initial;
  let hits = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    hits: () => hits,
    setKeys: (k) => (keys = k),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function rsaKey(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, jwk };
}

describe('JWT: HS256 with secret_env', () => {
  const clock = new ManualClock(T0_MS);
  const events = new MemoryEventSink();
  let gw: Gateway;
  const CHAT = () => `${gw.url}/v1/chat/completions`;
  const send = (token: string, extra: Record<string, string> = {}, model?: string) => post(CHAT(), chat('hello', model), { ...asBearer(token), ...extra });
  const tok = (claims: Claims, opts: Partial<Parameters<typeof sign>[3]> = {}, key: Uint8Array = hs()) => sign(key, 'HS256', claims, { clock, ...opts });

  before(async () => {
    const dir = tempDir();
    const yaml = [
      "version: '1'",
      MOCK_TARGET,
      jwtBlock([`secret_env: ${SECRET_ENV}`, 'algorithms: [HS256]', `issuer: ${ISSUER}`, `audience: ${AUDIENCE}`, 'claims: {user: sub, team: team, groups: groups}']),
      'consumer_groups:',
      '  - name: jwt-gold',
      '    rate_limits:',
      '      requests_per_minute: 1',
      'user_rate_limit:',
      '  header: X-User-Id',
      'rate_limits:',
      '  per_user:',
      '    rpm: 2',
      '  per_team:',
      '    rpm: 3',
      'request_limits:',
      '  gold-once:',
      '    rates: [{limit: 1, window: 1m}]',
      '    when:',
      `      - predicate: 'auth.identity.groups.split(",").exists(g, g == "gold")'`,
      '    counters:',
      '      - expression: auth.identity.userid',
      '',
    ].join('\n');
    gw = await startTestGateway({ configFile: writeConfig(dir, yaml), clock, events });
  });
  after(async () => {
    await gw?.close();
  });

  it('accepts a valid token and records the identity from its claims', async () => {
    const token = await tok({ sub: 'hs-valid', team: 'hs-team-valid', groups: ['silver'] });
    const r = await send(token);
    assert.equal(r.status, 200, r.text);
    const id = r.headers['x-request-id'];
    const ev = await eventually(() => events.events.find((e) => e.id === id));
    assert.equal(ev.user, 'hs-valid');
    assert.equal(ev.team, 'hs-team-valid');
    assert.equal(ev.result, 'allowed');
    assert.ok(!JSON.stringify(ev).includes(token), 'the event does not hold the token');
  });

  it('without a token the caller is refused (a JWT config means credentials are required)', async () => {
    const r = await post(CHAT(), chat('hello'));
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.type, 'authentication_error');
  });

  it('rejects alg "none" (an unsigned token crafted by hand)', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = secs(clock);
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'hs-none-attacker', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300 })}.`;
    const r = await send(token);
    assertRejected(r, token, /algorithm/);
    const id = r.headers['x-request-id'];
    const ev = await eventually(() => events.events.find((e) => e.id === id));
    assert.equal(ev.result, 'blocked');
    assert.equal(ev.reason, 'unauthenticated');
    assert.equal(ev.user, null, 'an unverified sub is never recorded as the user');
    assert.ok(!JSON.stringify(ev).includes(token));
  });

  it('rejects a token for another audience', async () => {
    const token = await tok({ sub: 'hs-aud' }, { aud: 'some-other-service' });
    assertRejected(await send(token), token, /audience \(aud\)/);
  });

  it('rejects a token from another issuer', async () => {
    const token = await tok({ sub: 'hs-iss' }, { iss: 'https://evil.example' });
    assertRejected(await send(token), token, /issuer \(iss\)/);
  });

  it('rejects a bad signature (signed with another secret)', async () => {
    const token = await tok({ sub: 'hs-badsig' }, {}, hs('not-the-gateway-secret-at-all-000000'));
    assertRejected(await send(token), token, /signature does not verify/);
  });

  it('rejects a tampered payload', async () => {
    const token = await tok({ sub: 'hs-tamper', groups: ['silver'] });
    const [h, , s] = token.split('.');
    const now = secs(clock);
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'hs-tamper', groups: ['gold', 'admin'], iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300 })).toString('base64url')}.${s}`;
    assertRejected(await send(forged), forged, /signature does not verify/);
  });

  it('rejects an HMAC algorithm that is not pinned (HS512 while the config pins HS256)', async () => {
    const token = await sign(hs(), 'HS512', { sub: 'hs-512' }, { clock });
    assertRejected(await send(token), token, /algorithm this gateway does not accept/);
  });

  it('checks exp against the gateway clock: valid now, expired after the clock moves past exp', async () => {
    const already = await tok({ sub: 'hs-exp-past' }, { exp: secs(clock) - 10 });
    assertRejected(await send(already), already, /expired \(exp\)/);

    const token = await tok({ sub: 'hs-exp' }, { exp: secs(clock) + 30 });
    assert.equal((await send(token)).status, 200);
    clock.advance(31_000);
    assertRejected(await send(token), token, /expired \(exp\)/);
  });

  it('checks nbf against the gateway clock: refused before, accepted once the clock reaches it', async () => {
    const token = await tok({ sub: 'hs-nbf' }, { nbf: secs(clock) + 60, exp: secs(clock) + 600 });
    assertRejected(await send(token), token, /not valid yet \(nbf\)/);
    clock.advance(61_000);
    assert.equal((await send(token)).status, 200);
  });

  it('maps sub to the per_user counter: the third request of one sub is 429 (scope user), another sub passes', async () => {
    const alice = await tok({ sub: 'hs-alice', team: 'hs-team-a1' });
    // A second token of the same subject shares the counter: the limit follows the claim, not the token.
    const alice2 = await tok({ sub: 'hs-alice', team: 'hs-team-a2' }, { exp: secs(clock) + 400 });
    assert.equal((await send(alice)).status, 200);
    assert.equal((await send(alice2)).status, 200);
    const third = await send(alice);
    assert.equal(third.status, 429, third.text);
    assert.equal(third.json.error.type, 'rate_limit_error');
    assert.equal(third.json.error.details.scope, 'user');
    assert.equal(third.json.error.details.limit, 'rpm');
    assert.equal(third.json.error.details.limit_value, 2);
    assert.match(third.json.error.message, /user: hs-alice/);
    assert.ok(Number(third.headers['retry-after']) >= 1);

    const bob = await tok({ sub: 'hs-bob', team: 'hs-team-b' });
    assert.equal((await send(bob)).status, 200, 'another sub has its own counter');
  });

  it('maps the team claim to the per_team counter across different users', async () => {
    const members = await Promise.all(['hs-t1', 'hs-t2', 'hs-t3', 'hs-t4'].map((sub) => tok({ sub, team: 'hs-team-blue' })));
    for (const t of members.slice(0, 3)) assert.equal((await send(t)).status, 200);
    const fourth = await send(members[3]!);
    assert.equal(fourth.status, 429, fourth.text);
    assert.equal(fourth.json.error.details.scope, 'team');
    assert.match(fourth.json.error.message, /team: hs-team-blue/);
    const other = await tok({ sub: 'hs-t5', team: 'hs-team-green' });
    assert.equal((await send(other)).status, 200, 'another team is unaffected');
  });

  it('exposes the groups claim to CEL predicates as a comma-joined string (Kuadrant verbatim)', async () => {
    const gold = await tok({ sub: 'hs-gold', team: 'hs-team-gold', groups: ['silver', 'gold'] });
    assert.equal((await send(gold)).status, 200);
    const again = await send(gold);
    assert.equal(again.status, 429, again.text);
    assert.equal(again.json.error.details.scope, 'named');
    assert.equal(again.json.error.details.limit, 'gold-once');
    assert.match(again.json.error.message, /counter hs-gold/);

    // A string claim works too ("a, b" is split and trimmed).
    const goldStr = await tok({ sub: 'hs-gold-str', team: 'hs-team-gold2', groups: 'bronze, gold' });
    assert.equal((await send(goldStr)).status, 200);
    assert.equal((await send(goldStr)).status, 429);

    // Not in gold: the named limit does not apply, only per_user (rpm 2).
    const silver = await tok({ sub: 'hs-silver', team: 'hs-team-silver', groups: ['silver', 'golden'] });
    assert.equal((await send(silver)).status, 200);
    assert.equal((await send(silver)).status, 200);
  });
  it('under a token, X-User-Id only names a sub-user (<sub>/<header>) and X-Team-Id does not change the team', async () => {
    const token = await tok({ sub: 'hs-parent', team: 'hs-team-parent' });
    const r = await send(token, { 'x-user-id': 'mallory', 'x-team-id': 'hs-team-victim' });
    assert.equal(r.status, 200, r.text);
    const ev = await eventually(() => events.events.find((e) => e.id === r.headers['x-request-id']));
    assert.equal(ev.user, 'hs-parent/mallory');
    assert.equal(ev.team, 'hs-team-parent');
    assert.equal((await send(token, { 'x-user-id': 'mallory' })).status, 200);
    const third = await send(token, { 'x-user-id': 'mallory' });
    assert.equal(third.status, 429, third.text);
    assert.match(third.json.error.message, /user: hs-parent\/mallory/);
    // The parent subject's own counter was not touched.
    assert.equal((await send(token)).status, 200);
  });

  it('a consumer_group claim applies that group\'s limits', async () => {
    const a = await tok({ sub: 'hs-cg-a', team: 'hs-team-cg-a', consumer_group: 'jwt-gold' });
    const b = await tok({ sub: 'hs-cg-b', team: 'hs-team-cg-b', consumer_group: 'jwt-gold' });
    const r = await send(a);
    assert.equal(r.status, 200, r.text);
    const ev = await eventually(() => events.events.find((e) => e.id === r.headers['x-request-id']));
    assert.equal(ev.consumer_group, 'jwt-gold');
    const second = await send(b);
    assert.equal(second.status, 429, second.text);
    assert.equal(second.json.error.details.scope, 'consumer_group');
    assert.equal(second.json.error.details.consumer_group, 'jwt-gold');
    // A group the config does not define binds nothing.
    const c = await tok({ sub: 'hs-cg-c', team: 'hs-team-cg-c', consumer_group: 'no-such-group' });
    assert.equal((await send(c)).status, 200);
  });
});

describe('JWT: secret_env names an unset variable', () => {
  it('the gateway starts (lint warns) and rejects every token, including one signed with an empty secret', async () => {
    const env = 'KT_TEST_JWT_SECRET_NEVER_SET';
    delete process.env[env];
    const clock = new ManualClock(T0_MS);
    const dir = tempDir();
    const yaml = ["version: '1'", MOCK_TARGET, jwtBlock([`secret_env: ${env}`, 'algorithms: [HS256]']), ''].join('\n');
    const gw = await startTestGateway({ configFile: writeConfig(dir, yaml), clock });
    try {
      const send = (token: string) => post(`${gw.url}/v1/chat/completions`, chat('hello'), asBearer(token));
      const token = await sign(hs(), 'HS256', { sub: 'unset-a' }, { clock });
      assertRejected(await send(token), token, /Invalid token/);
      // HMAC over an empty key, made by hand (jose refuses to sign with one).
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'unset-b', iss: ISSUER, aud: AUDIENCE, exp: secs(clock) + 60 })}`;
      const empty = `${input}.${createHmac('sha256', Buffer.alloc(0)).update(input).digest('base64url')}`;
      assertRejected(await send(empty), empty, /Invalid token/);
    } finally {
      await gw.close();
    }
  });
});

describe('JWT: RS256 with a local jwks_file', () => {
  const clock = new ManualClock(T0_MS);
  let gw: Gateway;
  let k1: { privateKey: CryptoKey; jwk: JWK };
  let stranger: { privateKey: CryptoKey; jwk: JWK };
  const send = (token: string) => post(`${gw.url}/v1/chat/completions`, chat('hello'), asBearer(token));

  before(async () => {
    k1 = await rsaKey('k1');
    stranger = await rsaKey('k-stranger');
    const dir = tempDir();
    const jwksFile = writeConfig(dir, JSON.stringify({ keys: [k1.jwk] }), 'jwks.json');
    const yaml = [
      "version: '1'",
      MOCK_TARGET,
      jwtBlock([`jwks_file: ${jwksFile}`, 'algorithms: [RS256]', `issuer: ${ISSUER}`, `audience: ${AUDIENCE}`]),
      'rate_limits:',
      '  per_user:',
      '    rpm: 2',
      '',
    ].join('\n');
    gw = await startTestGateway({ configFile: writeConfig(dir, yaml), clock });
  });
  after(async () => {
    await gw?.close();
  });

  it('accepts a token signed by the key of its kid', async () => {
    const token = await sign(k1.privateKey, 'RS256', { sub: 'rs-ok' }, { clock, kid: 'k1' });
    const r = await send(token);
    assert.equal(r.status, 200, r.text);
  });

  it('rejects an unknown kid', async () => {
    const token = await sign(stranger.privateKey, 'RS256', { sub: 'rs-unknown-kid' }, { clock, kid: 'k-stranger' });
    assertRejected(await send(token), token, /unknown kid/);
  });

  it('rejects a token whose kid is known but whose signature is by another key', async () => {
    const token = await sign(stranger.privateKey, 'RS256', { sub: 'rs-forged' }, { clock, kid: 'k1' });
    assertRejected(await send(token), token, /signature does not verify/);
  });

  it('rejects an algorithm not in the pinned list (HS256 while the config pins RS256)', async () => {
    const token = await sign(hs(), 'HS256', { sub: 'rs-hs' }, { clock, kid: 'k1' });
    assertRejected(await send(token), token, /algorithm this gateway does not accept/);
  });

  it('rejects alg "none" here too', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'none', kid: 'k1' })}.${b64({ sub: 'rs-none', iss: ISSUER, aud: AUDIENCE, exp: secs(clock) + 60 })}.`;
    assertRejected(await send(token), token, /algorithm/);
  });

  it('uses sub for the per_user counter', async () => {
    const t = await sign(k1.privateKey, 'RS256', { sub: 'rs-user' }, { clock, kid: 'k1' });
    assert.equal((await send(t)).status, 200);
    assert.equal((await send(t)).status, 200);
    const third = await send(t);
    assert.equal(third.status, 429, third.text);
    assert.equal(third.json.error.details.scope, 'user');
  });
});

describe('JWT: RS256 with a jwks_url', () => {
  const clock = new ManualClock(T0_MS);
  let jwks: Awaited<ReturnType<typeof serveJwks>>;
  let gw: Gateway;
  let k1: { privateKey: CryptoKey; jwk: JWK };
  const send = (g: Gateway, token: string) => post(`${g.url}/v1/chat/completions`, chat('hello'), asBearer(token));

  before(async () => {
    k1 = await rsaKey('url-k1');
    jwks = await serveJwks([k1.jwk]);
    const dir = tempDir();
    const yaml = ["version: '1'", MOCK_TARGET, jwtBlock([`jwks_url: ${jwks.url}`, 'algorithms: [RS256]', `issuer: ${ISSUER}`, `audience: ${AUDIENCE}`]), ''].join('\n');
    gw = await startTestGateway({ configFile: writeConfig(dir, yaml), clock });
  });
  after(async () => {
    await gw?.close();
    await jwks?.close();
  });

  it('fetches the key set once for two requests with the same kid; an unknown kid within the cooldown does not refetch', async () => {
    assert.equal(jwks.hits(), 0, 'nothing is fetched before the first token');
    const a = await sign(k1.privateKey, 'RS256', { sub: 'url-a' }, { clock, kid: 'url-k1' });
    const b = await sign(k1.privateKey, 'RS256', { sub: 'url-b' }, { clock, kid: 'url-k1' });
    assert.equal((await send(gw, a)).status, 200);
    assert.equal((await send(gw, b)).status, 200);
    assert.equal(jwks.hits(), 1, 'the JWKS is cached between requests');

    const other = await rsaKey('url-unknown');
    const unknown = await sign(other.privateKey, 'RS256', { sub: 'url-c' }, { clock, kid: 'url-unknown' });
    assertRejected(await send(gw, unknown), unknown, /unknown kid/);
    assertRejected(await send(gw, unknown), unknown, /unknown kid/);
    assert.equal(jwks.hits(), 1, 'an unknown kid within the cooldown does not refetch (no fetch storm)');
  });

  it('picks up a rotated key after the cooldown (jwks_cooldown_ms)', async () => {
    const dir = tempDir();
    const rotated = await serveJwks([k1.jwk]);
    const yaml = [
      "version: '1'",
      MOCK_TARGET,
      jwtBlock([`jwks_url: ${rotated.url}`, 'jwks_cooldown_ms: 1', 'algorithms: [RS256]', `issuer: ${ISSUER}`, `audience: ${AUDIENCE}`]),
      '',
    ].join('\n');
    const gw2 = await startTestGateway({ configFile: writeConfig(dir, yaml), clock });
    try {
      const a = await sign(k1.privateKey, 'RS256', { sub: 'rot-a' }, { clock, kid: 'url-k1' });
      assert.equal((await send(gw2, a)).status, 200);
      assert.equal(rotated.hits(), 1);
      const k2 = await rsaKey('url-k2');
      rotated.setKeys([k1.jwk, k2.jwk]);
      const b = await sign(k2.privateKey, 'RS256', { sub: 'rot-b' }, { clock, kid: 'url-k2' });
      // The new kid triggers one refetch once the (1 ms) cooldown has passed.
      await eventually(async () => (await send(gw2, b)).status === 200, 5_000);
      assert.ok(rotated.hits() >= 2, 'the key set was refetched for the new kid');
    } finally {
      await gw2.close();
      await rotated.close();
    }
  });
});
