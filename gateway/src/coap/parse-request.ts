import type { IncomingMessage } from 'coap';
import { RequestError } from '../errors.ts';
import { ACCESS_TOKEN_OPTION } from '../wire/index.ts';
import { contentFormatNumber } from './content-format.ts';
import type { CoapRequest } from './types.ts';

const ACCESS_TOKEN_NAME = String(ACCESS_TOKEN_OPTION);
// Critical options node-coap knows by name but the gateway does not implement (RFC 7252
// section 5.4.1 requires rejecting them): conditional requests, and forward proxying (5.7.2).
const UNSUPPORTED_CRITICAL: ReadonlySet<string> = new Set(['If-Match', 'If-None-Match']);
const PROXY_OPTIONS: ReadonlySet<string> = new Set(['Proxy-Uri', 'Proxy-Scheme']);

/**
 * Turns node-coap's message into the gateway's CoapRequest. node-coap names the options it
 * knows and leaves the others as their number in a string, so those are what we check against
 * RFC 7252 section 5.4.1: an unrecognized critical (odd-numbered) option rejects the request.
 */
export function parseRequest(message: IncomingMessage): CoapRequest {
  let accessToken: string | undefined;
  const segments: string[] = [];
  const query: string[] = [];
  for (const option of message._packet.options ?? []) {
    const value = option.value;
    if (option.name === 'Uri-Path') segments.push(text(value));
    else if (option.name === 'Uri-Query') query.push(text(value));
    if (typeof option.name !== 'string') continue;
    if (PROXY_OPTIONS.has(option.name)) {
      throw new RequestError('GW_ERR_PROXYING_NOT_SUPPORTED', `${option.name}: the gateway is not a forward proxy`);
    }
    if (UNSUPPORTED_CRITICAL.has(option.name)) {
      throw new RequestError('GW_ERR_BAD_OPTION', `critical option ${option.name} is not supported`);
    }
    if (!/^\d+$/.test(option.name)) continue;
    if (option.name === ACCESS_TOKEN_NAME) {
      if (accessToken !== undefined) throw new RequestError('GW_ERR_BAD_OPTION', 'Access-Token option repeated');
      accessToken = text(value);
    } else if (Number(option.name) % 2 === 1) {
      throw new RequestError('GW_ERR_BAD_OPTION', `unrecognized critical option ${option.name}`);
    }
  }
  return {
    method: message.method,
    segments,
    path: `/${segments.map((s) => s.replace(/%/g, '%25').replace(/\//g, '%2F')).join('/')}`,
    query,
    payload: message.payload ?? Buffer.alloc(0),
    contentFormat: contentFormatNumber(message.headers['Content-Format']),
    accept: contentFormatNumber(message.headers.Accept),
    accessToken,
    peer: { address: message.rsinfo.address, port: message.rsinfo.port },
  };
}

/**
 * A lower bound of the request datagram's size (header, token, one byte per option header,
 * option values, payload marker and payload): no error answer may be larger (RFC 7252 section 11.3).
 */
export function requestSizeBytes(message: IncomingMessage): number {
  let size = 4 + (message._packet.token?.length ?? 0);
  for (const option of message._packet.options ?? []) {
    const value = option.value;
    size += 1 + (Buffer.isBuffer(value) ? value.length : String(value ?? '').length);
  }
  const payloadLength = message.payload?.length ?? 0;
  return payloadLength > 0 ? size + 1 + payloadLength : size;
}

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value ?? '');
}
