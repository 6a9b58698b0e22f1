/**
 * `kt mock-upstream`: a standalone OpenAI-compatible server answering like the mock provider. Point a
 * `provider: openai` target at it with `base_url: http://127.0.0.1:PORT/v1` to try the gateway or run
 * the integration tests against a real upstream process. It records what reached it:
 * `GET /_mock/requests` lists the requests (method, path, headers, body), `DELETE /_mock/requests`
 * clears the list.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answer, errorBody, modelList, parseDirectives, streamEvents } from './generate.ts';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface MockUpstream {
  server: Server;
  port: number;
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function startMockUpstream(options: { port?: number; host?: string; completionTokens?: number } = {}): Promise<MockUpstream> {
  const requests: RecordedRequest[] = [];
  const opts = { completionTokens: options.completionTokens ?? 100 };
  const server = createServer((req, res) => {
    handle(req, res, requests, opts).catch(() => res.destroy());
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function handle(req: IncomingMessage, res: ServerResponse, log: RecordedRequest[], opts: { completionTokens: number }): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/_mock/requests') {
    if (req.method === 'DELETE') log.length = 0;
    return send(res, 200, JSON.stringify(log));
  }
  const text = await readBody(req);
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    return send(res, 400, JSON.stringify({ error: { message: 'invalid JSON', type: 'invalid_request_error' } }));
  }
  if (log.length >= 10_000) log.shift();
  log.push({ method: req.method ?? 'GET', path, headers: req.headers, body: text ? body : null });
  const nowS = Math.floor(Date.now() / 1000);
  if (req.method === 'GET' && path.endsWith('/models')) return send(res, 200, modelList(nowS));
  if (req.method !== 'POST' || !/\/(chat\/completions|completions|embeddings|responses)$/.test(path)) return send(res, 404, errorBody(404));
  const d = parseDirectives(body);
  if (d.hang) return; // never answers; the client's timeout or disconnect ends it
  if (d.delayMs) await new Promise((r) => setTimeout(r, d.delayMs));
  if (res.destroyed) return;
  if (d.status && d.status >= 400) return send(res, d.status, errorBody(d.status));
  if (body.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const events = streamEvents(path, body, d, opts, nowS);
    for (const e of events) {
      if (res.destroyed) return;
      res.write(e);
      await new Promise((r) => setImmediate(r));
    }
    if (d.truncateAfter !== undefined) return d.stall ? undefined : void res.destroy();
    return void res.end();
  }
  const json = answer(path, body, d, opts, nowS);
  if (d.truncateAfter === undefined) return send(res, 200, json);
  // The head promises the whole answer; only its first K bytes follow.
  const bytes = Buffer.from(json);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.write(bytes.subarray(0, Math.min(d.truncateAfter, bytes.length - 1)));
  if (!d.stall) setImmediate(() => res.destroy());
}
