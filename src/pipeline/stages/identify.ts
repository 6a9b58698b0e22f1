/**
 * identify: who is calling. The key may arrive as `X-Consumer-Group: <key>`,
 * `Authorization: Bearer <key>`, `Authorization: APIKEY <key>` or `X-API-Key: <key>` (first found, in
 * that order). A recognised key selects its consumer group; anything else falls to
 * `rate_limit_defaults` when configured, else 401 when keys are in use.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledConfig } from '../../config/types.ts';
import { KtError } from '../../core/errors.ts';
import type { Identity } from '../context.ts';

const ANONYMOUS: Identity = Object.freeze({ keyId: null, group: null, user: null, team: null });

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

export function identify(config: CompiledConfig, h: IncomingHttpHeaders): Identity {
  const key = presentedKey(h);
  if (key) {
    const bound = config.keys.get(key);
    if (bound) return { keyId: bound.keyId, group: bound.group, user: null, team: null };
  }
  if (config.defaultGroup) return { keyId: null, group: config.defaultGroup, user: null, team: null };
  if (!config.keysRequired) return ANONYMOUS;
  if (key)
    throw new KtError('invalid_api_key', 'Invalid API key: the key you sent is not recognised by this gateway. Check it against your consumer group key.');
  throw new KtError(
    'unauthenticated',
    'Missing API key: send your key as "Authorization: Bearer <key>", "X-API-Key: <key>" or "X-Consumer-Group: <key>".',
  );
}
