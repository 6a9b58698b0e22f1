/**
 * The registry of every error the gateway returns to a client. Each has a stable code, an HTTP
 * status and the OpenAI error `type`, so the official SDKs raise the matching exception
 * (429 -> RateLimitError, 403 -> PermissionDeniedError, 401 -> AuthenticationError, ...).
 * docs/errors.md lists the same table; test/unit/errors-doc.test.ts keeps the two in step.
 */
export interface ErrorSpec {
  status: number;
  type: string;
  retryable: boolean;
}

export const ERRORS = {
  invalid_json: { status: 400, type: 'invalid_request_error', retryable: false },
  invalid_request: { status: 400, type: 'invalid_request_error', retryable: false },
  unauthenticated: { status: 401, type: 'authentication_error', retryable: false },
  invalid_api_key: { status: 401, type: 'authentication_error', retryable: false },
  invalid_token: { status: 401, type: 'authentication_error', retryable: false },
  model_not_allowed: { status: 403, type: 'access_denied', retryable: false },
  policy_blocked: { status: 403, type: 'policy_violation', retryable: false },
  not_found: { status: 404, type: 'invalid_request_error', retryable: false },
  model_not_found: { status: 404, type: 'invalid_request_error', retryable: false },
  method_not_allowed: { status: 405, type: 'invalid_request_error', retryable: false },
  request_too_large: { status: 413, type: 'invalid_request_error', retryable: false },
  unsupported_media_type: { status: 415, type: 'invalid_request_error', retryable: false },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error', retryable: true },
  internal_error: { status: 500, type: 'server_error', retryable: true },
  upstream_error: { status: 502, type: 'upstream_error', retryable: true },
  limiter_unavailable: { status: 503, type: 'service_unavailable', retryable: true },
  upstream_timeout: { status: 504, type: 'timeout_error', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** A failure with a stable code. `details` is merged into the OpenAI error object. */
export class KtError extends Error {
  readonly status: number;
  readonly type: string;
  readonly retryable: boolean;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    const spec = ERRORS[code];
    this.status = spec.status;
    this.type = spec.type;
    this.retryable = spec.retryable;
  }

  /** The OpenAI-shaped body: `{"error":{"message","type","code",...extra}}`. */
  toBody(): { error: Record<string, unknown> } {
    return { error: { message: this.message, type: this.type, code: this.code, param: null, ...this.extra } };
  }
}
