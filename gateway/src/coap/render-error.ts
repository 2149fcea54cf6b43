import { GatewayError } from '../errors.ts';
import type { Logger } from '../log/index.ts';
import { ContentFormat, ErrorKey, WireError, encodeCbor } from '../wire/index.ts';
import type { CoapResponse } from '../messages.ts';
import { encodeReply } from './encode-reply.ts';
import { answerLog, type ErrorNote, type RenderError } from './layer.ts';

const NO_TOKEN = Buffer.alloc(0);

/** The error's code and message; anything that is not a GatewayError is an internal error whose message stays out of the log line. */
export function noteOf(err: unknown): ErrorNote {
  return err instanceof GatewayError ? { code: err.code, reason: err.message } : { code: 'GW_ERR_INTERNAL', reason: 'internal error' };
}

/**
 * Any error becomes a small CoAP response: the device learns the code and a wire error number,
 * the log learns why (`noteOf`). RFC 7252 section 11.3: the answer to a request is never larger
 * than the request. `requestSizeBytes` is the request without its token (the answer echoes the
 * token): Max-Age, then Size1, then the body are added only while the answer still fits it, so a
 * tiny request gets the bare code. An error that is no GatewayError is logged with its stack.
 */
export function renderError(
  err: unknown,
  requestId: string,
  requestSizeBytes: number,
  serverTimeSec: number,
  logger: Logger,
): CoapResponse {
  const known = err instanceof GatewayError;
  if (!known) logger.error({ err, reqId: requestId }, 'unexpected error while handling a request');
  const coapCode = known ? err.coapCode : '5.00';
  const wireCode = known ? err.wireCode : WireError.internal;
  const maxAgeSec = known ? err.maxAgeSec : undefined;
  const payload = encodeCbor(new Map<number, number>([[ErrorKey.code, wireCode], [ErrorKey.serverTimeSec, serverTimeSec]]));
  let response: CoapResponse = { code: coapCode };
  const fits = (candidate: CoapResponse) => encodeReply({ response: candidate }, 'ack', 0, NO_TOKEN).length <= requestSizeBytes;
  const additions: Partial<CoapResponse>[] = [];
  if (maxAgeSec !== undefined) additions.push({ maxAgeSec });
  if (known && err.size1Bytes !== undefined) additions.push({ size1Bytes: err.size1Bytes });
  additions.push({ payload, contentFormat: ContentFormat.cbor });
  // Usually everything fits (a tokened request is hundreds of bytes): one encoding settles it.
  const whole: CoapResponse = Object.assign({ code: coapCode }, ...additions);
  if (fits(whole)) return whole;
  for (const addition of additions) {
    const candidate = { ...response, ...addition, code: coapCode };
    if (fits(candidate)) response = candidate;
  }
  return response;
}

/** Errors as answers: rendered for the request's size, with the error noted for the log beside what was learned. */
export function createRenderError(logger: Logger, nowMs: () => number): RenderError {
  return (err, exchange, learned = {}) => ({
    reply: { response: renderError(err, exchange.requestId, exchange.budgetBytes, Math.floor(nowMs() / 1000), logger) },
    principal: learned.principal,
    log: answerLog(learned),
    error: noteOf(err),
  });
}
