/**
 * GET /v1/models: the models the caller may use. A group with `allowed_models` sees exactly those;
 * otherwise the models the targets list, plus what a catch-all target's upstream reports.
 */
import { KtError } from '../core/errors.ts';
import type { Providers } from '../providers/registry.ts';
import { CallSignal } from '../providers/types.ts';
import { identify } from './stages/identify.ts';
import type { Clock } from '../core/clock.ts';
import type { ClientChannel, RequestContext } from './context.ts';

export async function listModels(ctx: RequestContext, client: ClientChannel, providers: Providers, clock: Clock): Promise<void> {
  const identity = await identify(ctx.config, ctx.headers, clock);
  ctx.identity = identity;
  const created = Math.floor(ctx.startMs / 1000);
  let ids: string[];
  const allowed = identity.key?.allowedModelList ?? identity.group?.allowedModelList;
  if (allowed) ids = [...allowed];
  else {
    const set = new Set(ctx.config.targetByModel.keys());
    const catchAll = ctx.config.catchAll;
    if (catchAll) {
      const signal = new CallSignal();
      const timer = setTimeout(() => signal.abort(), catchAll.timeoutMs).unref();
      try {
        const res = await providers.for(catchAll).call({ target: catchAll, path: '/models', method: 'GET', signal });
        let text = '';
        for await (const c of res.body) text += typeof c === 'string' ? c : Buffer.from(c).toString('utf8');
        if (res.status < 400) for (const m of (JSON.parse(text) as { data?: { id?: string }[] }).data ?? []) if (m.id) set.add(m.id);
      } catch {
        if (!set.size) throw new KtError('upstream_error', `Could not list models from upstream target '${catchAll.id}'. Retry later.`);
      } finally {
        clearTimeout(timer);
      }
    }
    ids = [...set];
  }
  const body = JSON.stringify({ object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'kt' })) });
  client.head(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': ctx.id });
  client.end(body);
}
