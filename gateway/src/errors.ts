import { WireError, type WireErrorCode } from './wire/index.ts';

/** One row of the error table: who sees the failure, and how. */
interface ErrorRow {
  /** The CoAP response code a device sees; absent when no device can cause the failure. */
  coap?: string;
  /** The HTTP status an admin client sees. */
  http: number;
  /** The wire error code of the tiny CBOR error body a device sees. */
  wire?: WireErrorCode;
  /** The CLI's exit code when a command ends with this failure. */
  exit?: number;
}

/**
 * Every failure the gateway can report, one row per code: the CoAP code and wire code a device
 * sees, the HTTP status an admin client sees, the exit code of a CLI command. One table, so the
 * mapping is data (tested against the wire contract), and codes are never renamed or reused.
 */
export const ERRORS = {
  GW_ERR_BAD_REQUEST: { coap: '4.00', http: 400, wire: WireError.badRequest },
  GW_ERR_BAD_OPTION: { coap: '4.02', http: 400, wire: WireError.badOption },
  GW_ERR_AUTH_BAD_CREDENTIALS: { coap: '4.01', http: 401, wire: WireError.badCredentials },
  GW_ERR_AUTH_TOKEN_MISSING: { coap: '4.01', http: 401, wire: WireError.tokenMissing },
  GW_ERR_AUTH_TOKEN_EXPIRED: { coap: '4.01', http: 401, wire: WireError.tokenExpired },
  GW_ERR_AUTH_TOKEN_INVALID: { coap: '4.01', http: 401, wire: WireError.tokenInvalid },
  GW_ERR_AUTH_ADDRESS_UNVERIFIED: { coap: '4.01', http: 401, wire: WireError.echoRequired },
  GW_ERR_AUTH_FORBIDDEN: { coap: '4.03', http: 403, wire: WireError.forbidden },
  // RFC 8613 section 8.2: an OSCORE request that cannot be verified gets these unprotected.
  GW_ERR_OSCORE_BAD_OPTION: { coap: '4.02', http: 400, wire: WireError.badOption },
  GW_ERR_OSCORE_UNKNOWN_CONTEXT: { coap: '4.01', http: 401, wire: WireError.oscoreUnknownContext },
  GW_ERR_OSCORE_DECRYPT_FAILED: { coap: '4.00', http: 400, wire: WireError.oscoreDecryptFailed },
  GW_ERR_OSCORE_REPLAY: { coap: '4.01', http: 401, wire: WireError.oscoreReplay },
  // Protected answers to verified requests.
  GW_ERR_OSCORE_ECHO_REQUIRED: { coap: '4.01', http: 401, wire: WireError.echoRequired },
  GW_ERR_OSCORE_BAD_INNER: { coap: '4.00', http: 400, wire: WireError.badRequest },
  GW_ERR_OSCORE_DEVICE_MISMATCH: { coap: '4.01', http: 401, wire: WireError.tokenInvalid },
  GW_ERR_OSCORE_REQUIRED: { coap: '4.01', http: 401, wire: WireError.oscoreRequired },
  GW_ERR_NOT_FOUND: { coap: '4.04', http: 404, wire: WireError.notFound },
  GW_ERR_METHOD_NOT_ALLOWED: { coap: '4.05', http: 405, wire: WireError.methodNotAllowed },
  GW_ERR_NOT_ACCEPTABLE: { coap: '4.06', http: 406, wire: WireError.notAcceptable },
  GW_ERR_REQUEST_INCOMPLETE: { coap: '4.08', http: 400, wire: WireError.requestIncomplete },
  GW_ERR_PAYLOAD_TOO_LARGE: { coap: '4.13', http: 413, wire: WireError.payloadTooLarge },
  GW_ERR_UNSUPPORTED_CONTENT_FORMAT: { coap: '4.15', http: 415, wire: WireError.unsupportedContentFormat },
  GW_ERR_TOO_MANY_REQUESTS: { coap: '4.29', http: 429, wire: WireError.tooManyRequests },
  GW_ERR_INTERNAL: { coap: '5.00', http: 500, wire: WireError.internal },
  GW_ERR_BACKEND_UNREACHABLE: { coap: '5.02', http: 502, wire: WireError.badGateway },
  GW_ERR_BACKEND_BAD_RESPONSE: { coap: '5.02', http: 502, wire: WireError.badGateway },
  GW_ERR_BACKEND_UNAVAILABLE: { coap: '5.03', http: 503, wire: WireError.serviceUnavailable },
  GW_ERR_BUSY: { coap: '5.03', http: 503, wire: WireError.serviceUnavailable },
  // Also a CLI command's failure when the store (Redis) does not answer: exit 3, try again later.
  GW_ERR_STORE_UNAVAILABLE: { coap: '5.03', http: 503, wire: WireError.serviceUnavailable, exit: 3 },
  GW_ERR_BACKEND_TIMEOUT: { coap: '5.04', http: 504, wire: WireError.gatewayTimeout },
  GW_ERR_PROXYING_NOT_SUPPORTED: { coap: '5.05', http: 502, wire: WireError.proxyingNotSupported },
  // Operators' failures, from the CLI or the admin API: no device ever sees them.
  GW_ERR_ADMIN_BAD_DEVICE_ID: { http: 400, exit: 2 },
  GW_ERR_ADMIN_BAD_SCOPE: { http: 400, exit: 2 },
  GW_ERR_ADMIN_BAD_ALG: { http: 400, exit: 2 },
  GW_ERR_ADMIN_BAD_KEY: { http: 400, exit: 2 },
  GW_ERR_ADMIN_BAD_JTI: { http: 400, exit: 2 },
  GW_ERR_ADMIN_BAD_TOKEN_FORMAT: { http: 400, exit: 2 },
  GW_ERR_ADMIN_TOO_MANY_KEYS: { http: 409, exit: 2 },
  GW_ERR_ADMIN_DUPLICATE_KEY: { http: 409, exit: 2 },
  GW_ERR_ADMIN_LAST_CREDENTIAL: { http: 409, exit: 2 },
  GW_ERR_ADMIN_CONFLICT: { http: 409, exit: 2 },
  GW_ERR_ADMIN_DUPLICATE_DEVICE: { http: 409, exit: 2 },
  GW_ERR_ADMIN_UNKNOWN_DEVICE: { http: 404, exit: 2 },
  GW_ERR_ADMIN_UNKNOWN_KEY: { http: 404, exit: 2 },
  GW_ERR_ADMIN_ONLY_ACTIVE_KEY: { http: 409, exit: 2 },
  GW_ERR_ADMIN_STATE: { http: 409, exit: 2 },
  // The admin API's answers to requests it cannot take (an unknown path or method, a body it
  // cannot read); the CLI never ends with these, but like every operator's failure they are exit 2.
  GW_ERR_ADMIN_NOT_FOUND: { http: 404, exit: 2 },
  GW_ERR_ADMIN_METHOD_NOT_ALLOWED: { http: 405, exit: 2 },
  GW_ERR_ADMIN_BODY_TOO_LARGE: { http: 413, exit: 2 },
  GW_ERR_ADMIN_BAD_JSON: { http: 400, exit: 2 },
  GW_ERR_ADMIN_BAD_BODY: { http: 400, exit: 2 },
  // What went wrong stays in the log: the client learns only that it did. Exit 1, as any
  // unexpected failure of a command.
  GW_ERR_ADMIN_INTERNAL: { http: 500, exit: 1 },
  GW_ERR_CONFIG: { http: 400, exit: 2 },
} as const satisfies Record<string, ErrorRow>;

export type ErrorCode = keyof typeof ERRORS;

/** The codes whose rows have all the fields of `Fields`. */
type CodesWith<Fields> = { [C in ErrorCode]: (typeof ERRORS)[C] extends Fields ? C : never }[ErrorCode];

/** A code a device can see: it has a CoAP code and a wire code. */
export type GatewayErrorCode = CodesWith<{ coap: string; wire: WireErrorCode }>;

/** A code that ends a CLI command or answers an admin request. */
export type OperatorErrorCode = CodesWith<{ http: number; exit: number }>;

/** What an admin command or request could not do. */
export type AdminErrorCode = Extract<OperatorErrorCode, `GW_ERR_ADMIN_${string}`>;

/** The rows a device can see, as `renderError` sends them and the wire contract's table lists them. */
export const ERROR_TABLE = Object.fromEntries(
  Object.entries(ERRORS).filter(([, row]) => 'wire' in row),
) as { readonly [C in GatewayErrorCode]: (typeof ERRORS)[C] };

export interface GatewayErrorOptions {
  cause?: unknown;
  /** RFC 7252 section 5.10.5: how long the device should wait before trying again. */
  maxAgeSec?: number;
  /** RFC 7252 section 5.9.2.9: with 4.13, the largest body accepted. */
  size1Bytes?: number;
}

/** A failure a device or admin may cause. `message` is for the log, never sent to the device. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly maxAgeSec: number | undefined;
  readonly size1Bytes: number | undefined;

  constructor(code: GatewayErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.maxAgeSec = options.maxAgeSec;
    this.size1Bytes = options.size1Bytes;
  }

  get coapCode(): string {
    return ERRORS[this.code].coap;
  }

  get httpStatus(): number {
    return ERRORS[this.code].http;
  }

  get wireCode(): WireErrorCode {
    return ERRORS[this.code].wire;
  }

  /** The exit code of a CLI command that ends with this failure, when one can (the store being down). */
  get exitCode(): number | undefined {
    const row: ErrorRow = ERRORS[this.code];
    return row.exit;
  }
}

/** Malformed or ill-shaped request from a device. */
export class RequestError extends GatewayError {}

/** Who is this, and may they? Credentials, tokens and scopes. */
export class AuthError extends GatewayError {}

/** An OSCORE-protected request that cannot be verified, or one in clear that had to be protected (RFC 8613). */
export class ProtectionError extends GatewayError {}

/** Forwarding to the backend failed. */
export class BridgeError extends GatewayError {}

/**
 * A failure an operator sees, from the CLI or the admin API: an HTTP status and an exit code,
 * never a CoAP code. `message` says what to fix.
 */
export class OperatorError<Code extends OperatorErrorCode = OperatorErrorCode> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }

  get httpStatus(): number {
    return ERRORS[this.code].http;
  }

  get exitCode(): number {
    return ERRORS[this.code].exit;
  }
}

/** Bad configuration or CLI usage: all problems at once. */
export class ConfigError extends OperatorError<'GW_ERR_CONFIG'> {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('GW_ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** An admin command that cannot be carried out (duplicate device, unknown kid...). */
export class AdminError extends OperatorError<AdminErrorCode> {}
