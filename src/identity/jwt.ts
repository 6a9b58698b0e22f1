/**
 * Signed assertions: a JWT in `Authorization: Bearer` verified with a shared secret, a local JWKS file
 * or a JWKS URL (cached by jose, refetched at most once per cooldown for an unknown `kid`).
 * Algorithms are pinned by config (`alg: none` never passes); `exp`, `nbf`, `iss` and `aud` are
 * checked. A bad token is a 401 whose message says why, never what the token contained.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, errors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { KtError } from '../core/errors.ts';
import type { JwtSettingsInput } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';

export interface JwtIdentity {
  user: string | null;
  team: string | null;
  groups: string[];
  consumerGroup: string | null;
  subject: string | null;
}

export interface JwtVerifier {
  verify(token: string, clock: Clock): Promise<JwtIdentity>;
}

/** Three base64url segments: worth trying as a JWT rather than as an API key. */
export function looksLikeJwt(token: string): boolean {
  const a = token.indexOf('.');
  if (a <= 0) return false;
  const b = token.indexOf('.', a + 1);
  return b > a + 1 && token.indexOf('.', b + 1) < 0 && token.startsWith('eyJ');
}

export function createJwtVerifier(s: JwtSettingsInput, env: NodeJS.ProcessEnv): JwtVerifier {
  let key: Uint8Array | JWTVerifyGetKey;
  if (s.secret_env) key = new TextEncoder().encode(env[s.secret_env] ?? '');
  else if (s.jwks_file) key = createLocalJWKSet(JSON.parse(readFileSync(s.jwks_file, 'utf8')));
  else if (s.jwks_url) key = createRemoteJWKSet(new URL(s.jwks_url), { cooldownDuration: s.jwks_cooldown_ms ?? 30_000, cacheMaxAge: 600_000, timeoutDuration: 5_000 });
  else throw new Error('identity.jwt needs one of secret_env, jwks_file, jwks_url');
  const claims = { user: s.claims?.user ?? 'sub', team: s.claims?.team ?? 'team', groups: s.claims?.groups ?? 'groups', consumerGroup: s.claims?.consumer_group ?? 'consumer_group' };
  return {
    async verify(token, clock) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key as Uint8Array, {
          algorithms: s.algorithms,
          issuer: s.issuer,
          audience: s.audience,
          clockTolerance: s.clock_tolerance_seconds ?? 0,
          currentDate: new Date(clock.nowMs()),
        }));
      } catch (err) {
        throw new KtError('invalid_token', `Invalid token: ${why(err)}.`);
      }
      const str = (v: unknown) => (typeof v === 'string' && v ? v : typeof v === 'number' ? String(v) : null);
      const g = payload[claims.groups];
      const groups = Array.isArray(g) ? g.map(String) : typeof g === 'string' ? g.split(',').map((x) => x.trim()).filter(Boolean) : [];
      return { user: str(payload[claims.user]), team: str(payload[claims.team]), groups, consumerGroup: str(payload[claims.consumerGroup]), subject: str(payload.sub) };
    },
  };
}

function why(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired (exp)';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'the token is not valid yet (nbf)';
    if (err.claim === 'aud') return 'the token is for another audience (aud)';
    if (err.claim === 'iss') return 'the token has an unexpected issuer (iss)';
    return `claim "${err.claim}" failed validation`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm this gateway does not accept';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key matches the token (unknown kid)';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the signature does not verify';
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'the token is malformed';
  if (err instanceof errors.JWKSTimeout) return 'the key set could not be fetched in time';
  return 'the token could not be verified';
}
