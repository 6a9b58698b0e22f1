/**
 * The typed state of one request as it moves through the stages. Each field is written by one stage
 * (named beside it) and read by later ones; there is no string-keyed bag.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledConfig, CompiledGroup, CompiledKey, CompiledTarget } from '../config/types.ts';
import type { Admission } from '../limits/engine.ts';
import type { TokenReservation, Usage } from '../limits/types.ts';
import type { EventFinding, EventResult } from '../events/types.ts';
import type { RouteSpec } from './stages/receive.ts';

/** The client side of the exchange, as the server exposes it to the pipeline. */
export interface ClientChannel {
  readonly closed: boolean;
  /** Called once if the client goes away before the response is complete. */
  onClose(cb: () => void): void;
  head(status: number, headers: Record<string, string | number>): void;
  /** Resolves when the chunk is accepted (waits for drain under backpressure). */
  write(chunk: string | Uint8Array): Promise<void>;
  end(chunk?: string | Uint8Array): void;
  readonly headersSent: boolean;
}

export interface Identity {
  /** Non-secret key id (`key_…`), null without a recognised key. */
  readonly keyId: string | null;
  /** The api_keys binding, when the key is one. */
  readonly key: CompiledKey | null;
  /** The consumer group whose limits apply (the implicit default group for unknown callers). */
  readonly group: CompiledGroup | null;
  readonly user: string | null;
  readonly team: string | null;
  /** Group memberships (api_keys[].groups or the JWT's groups claim). */
  readonly groups: readonly string[];
  /** How the caller was identified. */
  readonly via: 'key' | 'jwt' | 'headers' | 'anonymous';
}

export interface Outcome {
  status: number;
  result: EventResult;
  reason: string | null;
  message: string | null;
}

export interface RequestContext {
  readonly id: string;
  readonly startMs: number;
  readonly method: string;
  readonly path: string;
  readonly ip: string;
  readonly headers: IncomingHttpHeaders;
  /** The config snapshot this request runs under (a reload does not change it mid-request). */
  readonly config: CompiledConfig;
  /** receive */
  route: RouteSpec | null;
  body: Record<string, unknown> | null;
  rawBody: Buffer | null;
  model: string | null;
  stream: boolean;
  /** receive: the client itself asked for `stream_options.include_usage`. */
  clientWantsUsage: boolean;
  /** identify */
  identity: Identity | null;
  /** authorize */
  target: CompiledTarget | null;
  /** admit */
  reservation: TokenReservation;
  admission: Admission | null;
  /** guard */
  findings: EventFinding[];
  bodyChanged: boolean;
  /** forward / settle */
  usage: Usage;
  upstreamMs: number;
  outcome: Outcome;
}
