import type { RouteConfig } from '../config/index.ts';
import { formatFor, mediaTypeFor } from '../content-format.ts';
import { BridgeError, RequestError } from '../errors.ts';
import type { CoapRequest, CoapResponse } from '../messages.ts';
import { ContentFormat } from '../wire/index.ts';
import { cborToJson, jsonToCbor } from './cbor-json.ts';

/** What the device's Accept option asks of the backend (RFC 7252 section 5.10.4). */
export interface Negotiation {
  /** The HTTP Accept header for the backend. */
  acceptHeader: string;
  /** On a cbor-json route: the device takes the backend's JSON as it is. */
  wantJson: boolean;
}

/**
 * Refuses a request body the route cannot take. Needs only the Content-Format option, so a
 * block-wise upload is refused on its first block (RFC 7959 section 2.5).
 */
export function checkRequestContentFormat(route: RouteConfig, contentFormat: number | undefined): void {
  if (route.body === 'pass-through') return;
  if (contentFormat === undefined || contentFormat === ContentFormat.cbor || contentFormat === ContentFormat.json) return;
  throw new RequestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT',
    `route ${route.path} takes CBOR (60) or JSON (50), got content format ${contentFormat}`);
}

/**
 * The Accept header for the backend; a format the gateway cannot produce is 4.06 before the
 * backend is asked. cbor-json routes answer in CBOR, or in the backend's JSON on Accept 50;
 * pass-through routes ask the backend for the device's format by its media type.
 */
export function negotiate(route: RouteConfig, accept: number | undefined): Negotiation {
  if (route.body === 'cbor-json') {
    if (accept !== undefined && accept !== ContentFormat.cbor && accept !== ContentFormat.json) {
      throw new RequestError('GW_ERR_NOT_ACCEPTABLE', `cannot answer in content format ${accept}`);
    }
    return { acceptHeader: 'application/json', wantJson: accept === ContentFormat.json };
  }
  if (accept === undefined) return { acceptHeader: '*/*', wantJson: false };
  // mediaTypeFor names an unknown format octet-stream, which does not map back to it.
  if (formatFor(mediaTypeFor(accept)) !== accept) {
    throw new RequestError('GW_ERR_NOT_ACCEPTABLE', `no media type for content format ${accept}`);
  }
  return { acceptHeader: mediaTypeFor(accept), wantJson: false };
}

/**
 * RFC 7252 section 5.10.4: a representation in another format than the Accept option asked
 * for is 4.06. Only for successful answers: an error code takes precedence.
 */
export function checkAnswerFormat(route: RouteConfig, accept: number | undefined, contentType: string | undefined): void {
  if (route.body !== 'pass-through' || accept === undefined) return;
  const format = formatFor(contentType);
  if (format !== accept) {
    throw new RequestError('GW_ERR_NOT_ACCEPTABLE', `backend answered in ${contentType ?? 'no content type'}, device accepts ${accept}`);
  }
}

/** The device's body as the backend takes it: CBOR becomes JSON on cbor-json routes. */
export function requestBody(request: CoapRequest, route: RouteConfig): { body?: string | Buffer; contentType?: string } {
  if (request.payload.length === 0) return {};
  if (route.body === 'pass-through') return { body: request.payload, contentType: mediaTypeFor(request.contentFormat) };
  checkRequestContentFormat(route, request.contentFormat);
  if (request.contentFormat === ContentFormat.json) return { body: request.payload, contentType: 'application/json' };
  return { body: cborToJson(request.payload), contentType: 'application/json' };
}

/** The backend's body as the device takes it: JSON becomes CBOR on cbor-json routes unless Accept 50. */
export function responseBody(raw: Buffer, contentType: string | undefined, route: RouteConfig, wantJson: boolean)
  : Pick<CoapResponse, 'payload' | 'contentFormat'> {
  const format = formatFor(contentType);
  if (route.body === 'cbor-json' && format === ContentFormat.json && !wantJson) {
    try {
      return { payload: jsonToCbor(raw.toString('utf8')), contentFormat: ContentFormat.cbor };
    } catch (err) {
      throw new BridgeError('GW_ERR_BACKEND_BAD_RESPONSE', `backend sent invalid JSON: ${(err as Error).message}`);
    }
  }
  return format === undefined ? { payload: raw } : { payload: raw, contentFormat: format };
}
