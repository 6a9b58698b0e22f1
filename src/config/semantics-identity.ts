/**
 * Whole-file checks for identity and the tiered/named limit sections: api key bindings, JWT
 * settings, trusted proxies and windows.
 */
import { existsSync } from 'node:fs';
import { BlockList } from 'node:net';
import type { PolicyConfigInput } from './schema.ts';
import type { Diagnostic, PathSegment } from './diagnostics.ts';
import { addAddress, sha256Hex } from './compile.ts';
import { parseWindow } from './compile-limits.ts';

type At = (path: PathSegment[], preferKey?: boolean) => { path: string; line?: number; column?: number };

export function checkIdentity(input: PolicyConfigInput, ctx: { at: At; env: NodeJS.ProcessEnv }): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (path: PathSegment[], message: string) => out.push({ severity: 'error', ...ctx.at(path), message });
  const warn = (path: PathSegment[], message: string) => out.push({ severity: 'warning', ...ctx.at(path), message });
  const groupNames = new Set((input.consumer_groups ?? []).map((g) => g.name));
  // Keys compared by SHA-256, so a plaintext key and a key_sha256 of the same key are duplicates too.
  const groupKeys = new Set((input.consumer_groups ?? []).flatMap((g) => [g.api_key, ...(g.api_keys ?? [])]).filter((k): k is string => !!k).map(sha256Hex));
  const seenKeys = new Set<string>();
  const seenIds = new Set<string>();
  (input.api_keys ?? []).forEach((k, i) => {
    if (!k.key === !k.key_sha256) err(['api_keys', i], 'set exactly one of `key` (plaintext) or `key_sha256` (hex SHA-256 of the key).');
    const ident = k.key ? sha256Hex(k.key) : k.key_sha256;
    if (ident && (seenKeys.has(ident) || groupKeys.has(ident))) err(['api_keys', i, k.key ? 'key' : 'key_sha256'], 'duplicate api key: the same key is already bound elsewhere in this file; every key must be unique.');
    if (ident) seenKeys.add(ident);
    if (k.id) {
      if (seenIds.has(k.id)) err(['api_keys', i, 'id'], `duplicate api key id "${k.id}"; ids must be unique.`);
      seenIds.add(k.id);
    }
    if (k.consumer_group && !groupNames.has(k.consumer_group))
      err(['api_keys', i, 'consumer_group'], `no consumer group named "${k.consumer_group}" (defined: ${[...groupNames].join(', ') || 'none'}).`);
  });
  const jwt = input.identity?.jwt;
  if (jwt) {
    const sources = [jwt.secret_env, jwt.jwks_file, jwt.jwks_url].filter(Boolean).length;
    if (sources !== 1) err(['identity', 'jwt'], 'set exactly one of secret_env (shared secret), jwks_file or jwks_url.');
    const hmac = jwt.algorithms.filter((a) => a.startsWith('HS'));
    if (jwt.secret_env && hmac.length !== jwt.algorithms.length) err(['identity', 'jwt', 'algorithms'], 'a shared secret (secret_env) verifies only HS256/HS384/HS512.');
    if (!jwt.secret_env && hmac.length) err(['identity', 'jwt', 'algorithms'], 'HS* algorithms need secret_env; a JWKS verifies RS*/PS*/ES*/EdDSA.');
    if (jwt.secret_env && !ctx.env[jwt.secret_env]) warn(['identity', 'jwt', 'secret_env'], `environment variable ${jwt.secret_env} is not set; every token will be rejected.`);
    if (jwt.jwks_file && !existsSync(jwt.jwks_file)) err(['identity', 'jwt', 'jwks_file'], `file not found: ${jwt.jwks_file}`);
  }
  const tls = input.server?.tls;
  if (tls) for (const k of ['cert_file', 'key_file'] as const) if (!existsSync(tls[k])) err(['server', 'tls', k], `file not found: ${tls[k]}`);
  (input.identity?.trusted_proxies ?? []).forEach((p, i) => {
    if (!addAddress(new BlockList(), p)) err(['identity', 'trusted_proxies', i], `"${p}" is not an IP address or CIDR (e.g. 10.0.0.0/8, 127.0.0.1, ::1).`);
  });
  for (const kind of ['token_limits', 'request_limits'] as const)
    for (const [name, l] of Object.entries(input[kind] ?? {}))
      l.rates.forEach((r, i) => {
        if (!(parseWindow(r.window) > 0)) err([kind, name, 'rates', i, 'window'], 'the window must be longer than zero (e.g. 30s, 1m, 1h, 1d).');
        if (kind === 'request_limits' && r.unit && r.unit !== 'requests') err([kind, name, 'rates', i, 'unit'], 'request limits count requests; put token units under token_limits.');
        if (kind === 'token_limits' && r.unit === 'requests') err([kind, name, 'rates', i, 'unit'], 'token limits count tokens; put request units under request_limits.');
      });
  return out;
}
