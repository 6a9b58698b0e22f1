/**
 * `provider: openai`: any OpenAI-compatible server at `base_url`. One keep-alive connection pool per
 * upstream origin, reused across config reloads. The provider secret is injected here; the client's
 * own credentials never reach the upstream.
 */
import { Pool, errors } from 'undici';
import type { Dispatcher } from 'undici';
import type { CallSignal, ProviderAdapter, UpstreamCall, UpstreamResult } from '../types.ts';
import { UpstreamFailure } from '../types.ts';
import { WholeAnswer } from './whole-answer.ts';

export class OpenAIProvider implements ProviderAdapter {
  private readonly pools = new Map<string, { pool: Pool; basePath: string }>();

  private poolFor(baseUrl: string): { pool: Pool; basePath: string } {
    let p = this.pools.get(baseUrl);
    if (!p) {
      const u = new URL(baseUrl);
      p = { pool: new Pool(u.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 }), basePath: u.pathname.replace(/\/+$/, '') };
      this.pools.set(baseUrl, p);
    }
    return p;
  }

  /**
   * A streamed call goes through undici's `request`, whose body stream carries backpressure to the
   * upstream while events pass through; any other call is collected whole by a dispatch handler.
   */
  call(c: UpstreamCall): Promise<UpstreamResult> {
    const { pool, basePath } = this.poolFor(c.target.baseUrl);
    const stream = c.parsed?.stream === true;
    const headers: Record<string, string> = { accept: stream ? 'text/event-stream' : 'application/json' };
    if (c.body !== undefined) headers['content-type'] = 'application/json';
    if (c.target.apiKey) headers.authorization = `Bearer ${c.target.apiKey}`;
    const opts = { path: basePath + c.path, method: c.method, headers, body: c.body, headersTimeout: c.target.timeoutMs, bodyTimeout: c.target.timeoutMs };
    if (stream) return this.streamed(pool, opts, c.signal);
    const answer = new WholeAnswer(c.signal, classify, bodyFailure);
    pool.dispatch(opts, answer);
    return answer.head;
  }

  private async streamed(pool: Pool, opts: Dispatcher.RequestOptions, signal: CallSignal): Promise<UpstreamResult> {
    try {
      const res = await pool.request({ ...opts, signal });
      const ct = res.headers['content-type'];
      const body = res.body;
      return {
        status: res.statusCode,
        contentType: (Array.isArray(ct) ? ct[0] : ct) ?? 'application/json',
        body: timeoutAware(body),
        whole: () => body.arrayBuffer().then((b) => Buffer.from(b), (err: unknown) => Promise.reject(bodyFailure(err))),
      };
    } catch (err) {
      throw classify(err, signal);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.pool.close().catch(() => undefined)));
    this.pools.clear();
  }
}

export function classify(err: unknown, signal: CallSignal): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  if (signal.aborted) return new UpstreamFailure('aborted', 'request aborted', { cause: err });
  if (err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) return new UpstreamFailure('timeout', 'upstream timed out', { cause: err });
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return new UpstreamFailure('timeout', 'upstream timed out', { cause: err });
  if (['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'].includes(code))
    return new UpstreamFailure('connect', `cannot reach upstream (${code})`, { cause: err });
  return new UpstreamFailure('protocol', `upstream failed: ${(err as Error).message ?? String(err)}`, { cause: err });
}

async function* timeoutAware(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw bodyFailure(err);
  }
}

function bodyFailure(err: unknown): UpstreamFailure {
  const code = (err as { code?: string }).code;
  if (code === 'UND_ERR_BODY_TIMEOUT') return new UpstreamFailure('timeout', 'upstream stopped sending (body timeout)', { cause: err });
  if (code === 'UND_ERR_ABORTED' || (err as Error).name === 'AbortError') return new UpstreamFailure('aborted', 'request aborted', { cause: err });
  return new UpstreamFailure('protocol', `upstream stream failed: ${(err as Error).message}`, { cause: err });
}
