import { GatewayError } from '../errors.ts';
import type { Logger } from '../log/index.ts';
import { ContentFormat, ErrorKey, WireError, encodeCbor } from '../wire/index.ts';
import type { CoapResponse, RequestContext } from '../messages.ts';

// Header (4) + Content-Format option (2) + payload marker (1), without the token.
const RESPONSE_OVERHEAD_BYTES = 7;

/**
 * Any error becomes a small CoAP response: the device learns the code and a wire error number,
 * the log learns why. RFC 7252 section 11.3: the answer to a request is never larger than the
 * request, so a tiny request gets the bare code without a body.
 */
export function renderError(
  err: unknown,
  context: RequestContext,
  requestSizeBytes: number,
  serverTimeSec: number,
  logger: Logger,
): CoapResponse {
  const known = err instanceof GatewayError;
  if (!known) logger.error({ err, reqId: context.requestId }, 'unexpected error while handling a request');
  context.errorCode = known ? err.code : 'GW_ERR_INTERNAL';
  context.errorReason = known ? err.message : 'internal error';
  const coapCode = known ? err.coapCode : '5.00';
  const wireCode = known ? err.wireCode : WireError.internal;
  const maxAgeSec = known ? err.maxAgeSec : undefined;
  const payload = encodeCbor(new Map<number, number>([[ErrorKey.code, wireCode], [ErrorKey.serverTimeSec, serverTimeSec]]));
  const response: CoapResponse = { code: coapCode };
  if (maxAgeSec !== undefined) response.maxAgeSec = maxAgeSec;
  if (known && err.size1Bytes !== undefined) response.size1Bytes = err.size1Bytes;
  if (payload.length + RESPONSE_OVERHEAD_BYTES <= requestSizeBytes) {
    response.payload = payload;
    response.contentFormat = ContentFormat.cbor;
  }
  return response;
}
