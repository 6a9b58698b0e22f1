/**
 * The only module that speaks node:http. It routes, enforces the body-size cap while reading, adapts
 * the response to the pipeline's `ClientChannel`, and serves the operational endpoints:
 * `GET /healthz`, `GET /readyz`, `GET /metrics`, and `POST /_kt/reload` (loopback + admin token).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { KtError } from '../core/errors.ts';
import type { ClientChannel } from '../pipeline/context.ts';
import { newContext, routeOf, type Pipeline } from '../pipeline/pipeline.ts';
import { ROUTES } from '../pipeline/stages/receive.ts';
import type { CompiledConfig } from '../config/types.ts';
import type { Clock } from '../core/clock.ts';
import type { Metrics } from '../core/metrics.ts';
import type { EventSink } from '../events/types.ts';

export interface HttpDeps {
  pipeline: Pipeline;
  config(): CompiledConfig;
  clock: Clock;
  metrics: Metrics;
  events: EventSink;
  ready(): Promise<{ ok: boolean; detail: Record<string, unknown> }>;
  reload(): Promise<{ ok: boolean; errors: string[]; warnings: string[] }>;
  adminToken: string;
}

class ResponseChannel implements ClientChannel {
  private closeCbs: (() => void)[] = [];
  private finished = false;
  constructor(private readonly res: ServerResponse) {
    res.on('close', () => {
      if (this.finished && res.writableFinished) return;
      for (const cb of this.closeCbs) cb();
      this.closeCbs = [];
    });
  }
  get closed(): boolean {
    return this.res.destroyed || (this.res.writableEnded && !this.finished) || this.res.socket?.destroyed === true;
  }
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  onClose(cb: () => void): void {
    if (this.res.destroyed) cb();
    else this.closeCbs.push(cb);
  }
  head(status: number, headers: Record<string, string | number>): void {
    this.res.writeHead(status, headers);
  }
  write(chunk: string | Uint8Array): Promise<void> {
    if (this.res.destroyed) return Promise.resolve();
    if (this.res.write(chunk)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
  end(chunk?: string | Uint8Array): void {
    this.finished = true;
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
  }
}

function readBody(req: IncomingMessage, capBytes: number): Promise<Buffer | KtError> {
  const declared = Number(req.headers['content-length']);
  const tooLarge = () =>
    new KtError('request_too_large', `The request body is larger than this gateway accepts (${capBytes} bytes; server.max_body_bytes).`);
  if (declared > capBytes) return Promise.resolve(tooLarge());
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > capBytes) {
        done = true;
        resolve(tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on('error', () => {
      if (done) return;
      done = true;
      resolve(new KtError('invalid_request', 'The request body could not be read.'));
    });
  });
}

/** Operational endpoints, served outside the request pipeline (no event, no limits). */
const OPS_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/_kt/reload']);
const ROUTE_LIST = [...ROUTES].map(([path, r]) => `${r.method} ${path}`).join(', ');

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

function isLoopback(addr: string | undefined): boolean {
  return addr === '127.0.0.1' || addr === '::1' || addr === '::ffff:127.0.0.1';
}

/** HTTP, or HTTPS when `tls` (PEM certificate chain and key) is given. */
export function createHttpServer(deps: HttpDeps, tls?: { cert: Buffer; key: Buffer }): Server {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(deps, req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, new KtError('internal_error', `The gateway failed: ${(err as Error).message}`).toBody());
      else res.destroy();
    });
  };
  const options = { keepAliveTimeout: 65_000, requestTimeout: 0 };
  return tls ? createTlsServer({ ...options, cert: tls.cert, key: tls.key }, onRequest) : createServer(options, onRequest);
}

async function handle(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const method = req.method ?? 'GET';
  const route = routeOf(path);
  if (!route && OPS_PATHS.has(path)) return ops(deps, path, method, req, res);
  const config = deps.config();
  const ctx = newContext(config, deps.clock.nowMs(), method, path, req.socket.remoteAddress ?? '', req.headers);
  const client = new ResponseChannel(res);
  if (!route) {
    // Through the pipeline (not a bare 404) so the refusal is recorded as an event like any other.
    req.resume();
    return deps.pipeline.run(ctx, client, new KtError('not_found', `Unknown route ${method} ${path}. Routes: ${ROUTE_LIST}.`));
  }
  ctx.route = route;
  if (method !== route.method) {
    req.resume();
    return deps.pipeline.run(ctx, client, new KtError('method_not_allowed', `${method} is not supported on ${path}; use ${route.method}.`, undefined, { Allow: route.method }));
  }
  if (route.method === 'GET') {
    req.resume();
    return deps.pipeline.run(ctx, client, Buffer.alloc(0));
  }
  const body = await readBody(req, config.maxBodyBytes);
  if (body instanceof KtError) {
    res.setHeader('Connection', 'close');
    req.resume();
  }
  return deps.pipeline.run(ctx, client, body);
}

async function ops(deps: HttpDeps, path: string, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume();
  switch (path) {
    case '/healthz':
      return sendJson(res, 200, { status: 'ok' });
    case '/readyz': {
      const r = await deps.ready();
      return sendJson(res, r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'not_ready', ...r.detail });
    }
    case '/metrics': {
      const text = await deps.metrics.registry.metrics();
      res.writeHead(200, { 'Content-Type': deps.metrics.registry.contentType });
      return void res.end(text);
    }
    case '/_kt/reload': {
      const auth = req.headers.authorization;
      if (method !== 'POST') return sendJson(res, 405, new KtError('method_not_allowed', 'Use POST /_kt/reload.').toBody());
      if (!isLoopback(req.socket.remoteAddress) || auth !== `Bearer ${deps.adminToken}`)
        return sendJson(res, 403, { error: { message: 'Reload is only accepted from this machine with the admin token; use `kt config reload`.', type: 'access_denied', code: 'admin_forbidden' } });
      const r = await deps.reload();
      return sendJson(res, r.ok ? 200 : 422, r);
    }
    default: {
      const e = new KtError('not_found', `Unknown route ${method} ${path}. Routes: ${ROUTE_LIST}.`);
      return sendJson(res, 404, e.toBody());
    }
  }
}
