/**
 * A non-streamed upstream call as an undici dispatch handler: `head` settles when the status line and
 * headers arrive, `whole()` with the complete body. The body is gathered in a list of buffers as the
 * socket delivers it, with no stream, async resource or body mixin in between (undici's `request`
 * builds all three for every call: about 7% of the gateway's main thread in a CPU profile, for the
 * small JSON answers of chat completions).
 *
 * Failures keep the meaning they have with `request`: before the headers they reject `head`
 * (`classify`), after them they reject `whole()` (`bodyFailure`); an abort of the call's signal
 * aborts the request wherever it is, and the transport's headers and body timeouts apply.
 */
import type { Dispatcher } from 'undici';
import { errors } from 'undici';
import type { CallSignal, UpstreamFailure, UpstreamResult } from '../types.ts';

type Failure = (err: unknown, signal: CallSignal) => UpstreamFailure;

const NO_CHUNKS: Buffer[] = [];

export class WholeAnswer implements Dispatcher.DispatchHandler, UpstreamResult {
  status = 0;
  contentType = 'application/json';
  /** Settles once: the answer's head, or the failure before it. */
  readonly head: Promise<UpstreamResult>;

  private controller: Dispatcher.DispatchController | null = null;
  private chunks: Buffer[] = NO_CHUNKS;
  private size = 0;
  /** 0 waiting for the head, 1 receiving the body, 2 complete, 3 failed. */
  private phase = 0;
  private failure: UpstreamFailure | null = null;
  private resolveHead!: (r: UpstreamResult) => void;
  private rejectHead!: (e: UpstreamFailure) => void;
  private waiting: { resolve: (b: Buffer) => void; reject: (e: UpstreamFailure) => void } | null = null;
  private readonly onAbort = (): void => this.abortNow();

  constructor(
    private readonly signal: CallSignal,
    private readonly headFailure: Failure,
    private readonly bodyFailure: (err: unknown) => UpstreamFailure,
  ) {
    this.head = new Promise<UpstreamResult>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    signal.once('abort', this.onAbort);
  }

  get body(): AsyncIterable<Buffer> {
    return this.iterate();
  }

  whole(): Promise<Buffer> {
    if (this.phase === 2) return Promise.resolve(this.joined());
    if (this.phase === 3) return Promise.reject(this.failure!);
    return new Promise<Buffer>((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  private async *iterate(): AsyncIterable<Buffer> {
    yield await this.whole();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal.aborted) controller.abort(new errors.RequestAbortedError());
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // 1xx: the answer's head is still to come
    const ct = headers['content-type'];
    this.status = statusCode;
    if (ct !== undefined) this.contentType = (Array.isArray(ct) ? ct[0] : ct) ?? this.contentType;
    this.chunks = [];
    this.phase = 1;
    this.resolveHead(this);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  onResponseEnd(): void {
    this.phase = 2;
    this.signal.off('abort', this.onAbort);
    const w = this.waiting;
    if (w) {
      this.waiting = null;
      w.resolve(this.joined());
    }
  }

  onResponseError(_c: Dispatcher.DispatchController | undefined, err: Error): void {
    this.signal.off('abort', this.onAbort);
    if (this.phase === 0) {
      this.phase = 3;
      this.rejectHead(this.headFailure(err, this.signal));
      return;
    }
    if (this.phase !== 1) return;
    this.phase = 3;
    this.chunks = NO_CHUNKS;
    this.failure = this.bodyFailure(err);
    const w = this.waiting;
    if (w) {
      this.waiting = null;
      w.reject(this.failure);
    }
  }

  private abortNow(): void {
    if (this.phase < 2) this.controller?.abort(new errors.RequestAbortedError());
  }

  private joined(): Buffer {
    const c = this.chunks;
    if (c.length !== 1) this.chunks = [Buffer.concat(c, this.size)];
    return this.chunks[0]!;
  }
}
