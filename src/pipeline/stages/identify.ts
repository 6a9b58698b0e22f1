/**
 * identify: who is calling, strongest evidence first.
 * 1. A JWT in `Authorization: Bearer` when `identity.jwt` is configured (verified; a bad one is 401).
 * 2. An API key from `X-Consumer-Group`, `Authorization: Bearer|APIKEY`, or `X-API-Key` (first found):
 *    a consumer-group key or an `api_keys` entry (by plaintext or SHA-256).
 * 3. Trusted headers (`identity.trusted_headers`, or `user_rate_limit.header`) where enabled. Under a
 *    verified key or token they only name a sub-user inside it (`<key user>/<header>`); the team stays
 *    the credential's.
 * Unrecognised callers fall to `rate_limit_defaults` when configured, else 401 when credentials are in
 * use. The client IP is the socket address, or the X-Forwarded-For hop just before the first trusted
 * proxy when the socket peer is one.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { CompiledConfig, CompiledKey } from '../../config/types.ts';
import { KtError } from '../../core/errors.ts';
import type { Clock } from '../../core/clock.ts';
import { looksLikeJwt } from '../../identity/jwt.ts';
import type { Identity } from '../context.ts';

const ANONYMOUS: Identity = Object.freeze({ keyId: null, key: null, group: null, user: null, team: null, groups: [], via: 'anonymous' });

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The credential the client presented, if any. */
export function presentedKey(h: IncomingHttpHeaders): string | undefined {
  const cg = header(h, 'x-consumer-group');
  if (cg) return cg.trim();
  const auth = header(h, 'authorization');
  if (auth) {
    const space = auth.indexOf(' ');
    if (space > 0) {
      const scheme = auth.slice(0, space).toLowerCase();
      if (scheme === 'bearer' || scheme === 'apikey') return auth.slice(space + 1).trim();
    }
  }
  return header(h, 'x-api-key')?.trim() || undefined;
}

function lookupKey(config: CompiledConfig, key: string): CompiledKey | undefined {
  return config.keys.get(key) ?? (config.keysBySha256.size ? config.keysBySha256.get(createHash('sha256').update(key).digest('hex')) : undefined);
}

function withHeaders(config: CompiledConfig, h: IncomingHttpHeaders, base: Identity): Identity {
  const { userHeader, teamHeader } = config.identity;
  if (!userHeader && !teamHeader) return base;
  const hu = userHeader ? header(h, userHeader)?.trim() : undefined;
  if (base.via === 'key' || base.via === 'jwt') {
    // A verified credential wins: the header may only name a sub-user inside it.
    if (!hu) return base;
    return { ...base, user: `${base.user ?? base.keyId ?? 'anonymous'}/${hu}` };
  }
  const ht = teamHeader ? header(h, teamHeader)?.trim() : undefined;
  if (!hu && !ht) return base;
  // Where verified credentials exist, an unverified header name lives in its own namespace so it can
  // never land on a verified user's or team's counters.
  const ns = config.keysRequired ? 'unverified:' : '';
  return { ...base, user: hu ? ns + hu : base.user, team: ht ? ns + ht : base.team, via: 'headers' };
}

export async function identify(config: CompiledConfig, h: IncomingHttpHeaders, clock: Clock): Promise<Identity> {
  const key = presentedKey(h);
  const jwt = config.identity.jwt;
  if (key && jwt && looksLikeJwt(key)) {
    const c = await jwt.verify(key, clock);
    const group = c.consumerGroup ? (config.groupsByName.get(c.consumerGroup) ?? null) : null;
    return withHeaders(config, h, { keyId: null, key: null, group, user: c.user, team: c.team, groups: c.groups, via: 'jwt' });
  }
  if (key) {
    const bound = lookupKey(config, key);
    if (bound)
      return withHeaders(config, h, {
        keyId: bound.keyId,
        key: bound,
        group: bound.group,
        user: bound.user,
        team: bound.team,
        groups: bound.groups,
        via: 'key',
      });
  }
  if (config.defaultGroup) return withHeaders(config, h, { ...ANONYMOUS, group: config.defaultGroup });
  if (!config.keysRequired) return withHeaders(config, h, ANONYMOUS);
  if (key) throw new KtError('invalid_api_key', 'Invalid API key: the key you sent is not recognised by this gateway. Check it against the key you were given.');
  throw new KtError('unauthenticated', 'Missing API key: send your key as "Authorization: Bearer <key>", "Authorization: APIKEY <key>", "X-API-Key: <key>" or "X-Consumer-Group: <key>".');
}

/** The client address for the IP tier (X-Forwarded-For only through trusted proxies). */
export function clientIp(config: CompiledConfig, socketIp: string, h: IncomingHttpHeaders): string {
  const ip = socketIp.startsWith('::ffff:') ? socketIp.slice(7) : socketIp;
  const trusted = config.identity.trustedProxies;
  if (!trusted) return ip;
  const isTrusted = (a: string) => (isIPv4(a) ? trusted.check(a, 'ipv4') : isIPv6(a) ? trusted.check(a, 'ipv6') : false);
  if (!isTrusted(ip)) return ip;
  const xff = header(h, 'x-forwarded-for');
  if (!xff) return ip;
  const hops = xff.split(',').map((s) => s.trim()).filter(Boolean);
  // Walk from the nearest hop outwards; the first address that is not a trusted proxy is the client.
  for (let i = hops.length - 1; i >= 0; i--) if (!isTrusted(hops[i]!)) return hops[i]!;
  return hops[0] ?? ip;
}
