/**
 * The provider adapter seam: the forward stage hands an adapter a prepared call and gets back the
 * upstream's status and a body it can stream through. Adapters throw `UpstreamFailure` for transport
 * failures; an HTTP error status from the upstream is a normal result.
 */
import { EventEmitter } from 'node:events';
import type { CompiledTarget } from '../config/types.ts';

/**
 * Aborts an upstream call (client gone, timeout): emits `abort` once. An EventEmitter rather than an
 * AbortController because one is made per request and undici takes either; an AbortController and
 * its listeners cost several microseconds more per request.
 */
export class CallSignal extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }
}

export interface UpstreamCall {
  readonly target: CompiledTarget;
  /** Path below the target's base URL, e.g. `/chat/completions`. */
  readonly path: string;
  readonly method: 'GET' | 'POST';
  /** JSON sent upstream (the client's bytes when the gateway did not change the body). */
  readonly body?: string | Buffer;
  /** The same body parsed (the mock answers from it without re-parsing). */
  readonly parsed?: Record<string, unknown>;
  readonly signal: CallSignal;
}

export interface UpstreamResult {
  readonly status: number;
  readonly contentType: string;
  readonly body: AsyncIterable<Uint8Array | string>;
  /**
   * The whole body in one piece, for adapters that can read it faster than chunk by chunk (either
   * this or `body` is consumed, never both). The transport's own idle timeout between chunks applies
   * meanwhile, and failures are `UpstreamFailure`s as with `body`.
   */
  readonly whole?: () => Promise<Buffer>;
}

export type UpstreamFailureKind = 'timeout' | 'connect' | 'aborted' | 'protocol';

export class UpstreamFailure extends Error {
  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ProviderAdapter {
  call(call: UpstreamCall): Promise<UpstreamResult>;
  close(): Promise<void>;
}
