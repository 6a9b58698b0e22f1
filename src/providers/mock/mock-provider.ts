/**
 * `provider: mock`: answers in-process like OpenAI, with no network and no key. Honours the same
 * `#mock` directives as `kt mock-upstream` (see generate.ts), including delays and hangs, so timeouts
 * and disconnects can be exercised without an upstream server.
 */
import type { CallSignal, ProviderAdapter, UpstreamCall, UpstreamResult } from '../types.ts';
import { UpstreamFailure } from '../types.ts';
import { answer, errorBody, modelList, parseDirectives, streamEvents } from './generate.ts';
import { systemClock, type Clock } from '../../core/clock.ts';

function wait(ms: number, signal: CallSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new UpstreamFailure('aborted', 'aborted'));
    const t = ms === Infinity ? undefined : setTimeout(done, ms);
    function done() {
      signal.off('abort', onAbort);
      resolve();
    }
    function onAbort() {
      if (t) clearTimeout(t);
      reject(new UpstreamFailure('aborted', 'aborted'));
    }
    signal.once('abort', onAbort);
  });
}

async function* once(s: string): AsyncIterable<string> {
  yield s;
}

export class MockProvider implements ProviderAdapter {
  constructor(private readonly clock: Clock = systemClock) {}

  async call(c: UpstreamCall): Promise<UpstreamResult> {
    const nowS = Math.floor(this.clock.nowMs() / 1000);
    if (c.method === 'GET') return { status: 200, contentType: 'application/json', body: once(modelList(nowS)) };
    const body = c.parsed ?? {};
    const d = parseDirectives(body);
    const delay = d.hang ? Infinity : (d.delayMs ?? 0) + c.target.mock.latencyMs;
    if (delay > 0) await wait(delay, c.signal);
    if (d.status && d.status >= 400) return { status: d.status, contentType: 'application/json', body: once(errorBody(d.status)) };
    const opts = { completionTokens: c.target.mock.completionTokens };
    if (body.stream === true) {
      const events = streamEvents(c.path, body, d, opts, nowS);
      return { status: 200, contentType: 'text/event-stream', body: iterate(events, c.signal, d.stall === true) };
    }
    const json = answer(c.path, body, d, opts, nowS);
    if (d.truncateAfter !== undefined) return { status: 200, contentType: 'application/json', body: cut(json.slice(0, d.truncateAfter), c.signal, d.stall === true) };
    return { status: 200, contentType: 'application/json', body: once(json) };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function* iterate(events: string[], signal: CallSignal, stall: boolean): AsyncIterable<string> {
  for (const e of events) {
    if (signal.aborted) throw new UpstreamFailure('aborted', 'aborted');
    yield e;
  }
  if (stall) await wait(Infinity, signal);
}

/** The start of an answer, then a cut connection or, with `stall`, silence until the call is aborted. */
async function* cut(start: string, signal: CallSignal, stall: boolean): AsyncIterable<string> {
  yield start;
  if (stall) await wait(Infinity, signal);
  throw new UpstreamFailure('protocol', 'the mock upstream cut the connection mid-answer');
}
