import type { IncomingMessage } from 'coap';
import { RequestError } from '../errors.ts';
import { ACCESS_TOKEN_OPTION } from '../wire/index.ts';
import { contentFormatNumber } from './content-format.ts';
import type { CoapRequest } from './types.ts';

const ACCESS_TOKEN_NAME = String(ACCESS_TOKEN_OPTION);

/**
 * Turns node-coap's message into the gateway's CoapRequest. node-coap names the options it
 * knows and leaves the others as their number in a string, so those are what we check against
 * RFC 7252 section 5.4.1: an unrecognized critical (odd-numbered) option rejects the request.
 */
export function parseRequest(message: IncomingMessage): CoapRequest {
  let accessToken: string | undefined;
  let sizeBytes = 4 + (message._packet.token?.length ?? 0);
  for (const option of message._packet.options ?? []) {
    const value = option.value;
    sizeBytes += 1 + (Buffer.isBuffer(value) ? value.length : String(value ?? '').length);
    if (typeof option.name !== 'string' || !/^\d+$/.test(option.name)) continue;
    if (option.name === ACCESS_TOKEN_NAME) {
      if (accessToken !== undefined) throw new RequestError('GW_ERR_BAD_OPTION', 'Access-Token option repeated');
      accessToken = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
    } else if (Number(option.name) % 2 === 1) {
      throw new RequestError('GW_ERR_BAD_OPTION', `unrecognized critical option ${option.name}`);
    }
  }
  const payload = message.payload ?? Buffer.alloc(0);
  if (payload.length > 0) sizeBytes += 1 + payload.length;
  const [path, query] = splitUrl(message.url);
  return {
    method: message.method,
    path,
    query,
    payload,
    contentFormat: contentFormatNumber(message.headers['Content-Format']),
    accept: contentFormatNumber(message.headers.Accept),
    accessToken,
    peer: { address: message.rsinfo.address, port: message.rsinfo.port },
    sizeBytes,
  };
}

function splitUrl(url: string): [string, string[]] {
  const q = url.indexOf('?');
  if (q === -1) return [url, []];
  return [url.slice(0, q), url.slice(q + 1).split('&')];
}
