import { AdminError, GatewayError, OperatorError } from '../errors.ts';
import type { Logger } from '../log/index.ts';

/** What the admin API answers: JSON, text (metrics), or no body. */
export interface AdminReply {
  status: number;
  body?: unknown;
  text?: string;
  contentType?: string;
  headers?: Readonly<Record<string, string>>;
}

/** A path the API has, asked with a method it does not take there. */
export class MethodNotAllowedError extends AdminError {
  readonly allowed: readonly string[];

  constructor(method: string | undefined, allowed: readonly string[]) {
    super('GW_ERR_ADMIN_METHOD_NOT_ALLOWED', `${String(method).slice(0, 16)} is not allowed here: use ${allowed.join(' or ')}`);
    this.allowed = allowed;
  }
}

/** The client went away while its body was being read: nobody to answer. */
export class ClientGoneError extends Error {}

/**
 * Every admin error answered the one way: its row's HTTP status and `{error: CODE, message}`.
 * An operator's error says what to fix; a coded gateway failure (the store down: 503) says
 * what failed; anything else is logged and answered GW_ERR_ADMIN_INTERNAL, without its cause.
 */
export function renderAdminError(err: unknown, logger: Logger): AdminReply | undefined {
  if (err instanceof ClientGoneError) return undefined;
  let known: OperatorError | GatewayError;
  if (err instanceof OperatorError || err instanceof GatewayError) {
    known = err;
  } else {
    logger.error({ err }, 'admin request failed');
    known = new AdminError('GW_ERR_ADMIN_INTERNAL', 'internal error');
  }
  // RFC 9110 section 15.5.6: a 405 lists the methods the resource takes.
  const headers = known instanceof MethodNotAllowedError ? { allow: known.allowed.join(', ') } : undefined;
  return { status: known.httpStatus, body: { error: known.code, message: known.message }, ...(headers === undefined ? {} : { headers }) };
}
