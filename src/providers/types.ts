/**
 * The provider adapter seam: the forward stage hands an adapter a prepared call and gets back the
 * upstream's status and a body it can stream through. Adapters throw `UpstreamFailure` for transport
 * failures; an HTTP error status from the upstream is a normal result.
 */
import type { CompiledTarget } from '../config/types.ts';

export interface UpstreamCall {
  readonly target: CompiledTarget;
  /** Path below the target's base URL, e.g. `/chat/completions`. */
  readonly path: string;
  readonly method: 'GET' | 'POST';
  /** JSON sent upstream (the client's bytes when the gateway did not change the body). */
  readonly body?: string | Buffer;
  /** The same body parsed (the mock answers from it without re-parsing). */
  readonly parsed?: Record<string, unknown>;
  readonly signal: AbortSignal;
}

export interface UpstreamResult {
  readonly status: number;
  readonly contentType: string;
  readonly body: AsyncIterable<Uint8Array | string>;
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
