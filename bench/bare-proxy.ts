/**
 * The floor the gateway is compared with: a pass-through HTTP proxy with nothing in it. A node:http
 * server reads each request body and forwards it to the upstream through an undici Pool (the same
 * client and pool settings the gateway's `openai` provider uses), then streams the response back
 * chunk by chunk as it arrives. No parsing, no limits, no events, no logging.
 *
 *   node --import tsx bench/bare-proxy.ts --upstream http://127.0.0.1:41080 [--port 0] [--host 127.0.0.1]
 *
 * Prints `bare proxy listening on http://HOST:PORT` once it accepts connections.
 *
 * The request body is collected before it is sent (one write upstream, as the gateway does) and the
 * response is relayed with a plain write loop. Handing `req` itself to undici as a stream body and
 * relaying with `stream.pipeline` works too, but costs noticeably more CPU per small request (stream
 * machinery, and headers and body written separately); the floor should be the cheapest honest proxy.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    upstream: { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
if (!values.upstream) {
  process.stderr.write('usage: bare-proxy.ts --upstream http://HOST:PORT [--port N] [--host H]\n');
  process.exit(2);
}
const upstream = new URL(values.upstream);
const pool = new Pool(upstream.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });

// Hop-by-hop headers (RFC 9110 §7.6.1), and the ones the HTTP libraries set themselves.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function forwardable(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP.has(k)) out[k] = v;
  }
  return out;
}

async function proxy(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const up = await pool.request({ path: req.url ?? '/', method: (req.method ?? 'GET') as 'POST', headers: forwardable(req.headers), body: body.length ? body : null });
  res.writeHead(up.statusCode, forwardable(up.headers as IncomingHttpHeaders));
  for await (const chunk of up.body) {
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
}

const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
  proxy(req, res).catch((err: Error) => {
    if (res.headersSent) return void res.destroy();
    const body = JSON.stringify({ error: { message: `bare proxy: ${err.message}`, type: 'proxy_error' } });
    res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`bare proxy listening on http://${values.host}:${port}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.close().finally(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
