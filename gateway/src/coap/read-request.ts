import type { ParsedPacket } from 'coap-packet';
import { RequestError } from '../errors.ts';
import type { CoapMethod, CoapRequest } from '../messages.ts';
import { Option, judgeOption, optionNumber, readBlock, readUint, type BlockOption } from './options.ts';

/** RFC 7252 section 12.1.1: the method codes. */
export const METHODS: ReadonlyMap<string, CoapMethod> = new Map([
  ['0.01', 'GET'], ['0.02', 'POST'], ['0.03', 'PUT'], ['0.04', 'DELETE'],
  ['0.05', 'FETCH'], ['0.06', 'PATCH'], ['0.07', 'iPATCH'],
]);

/** What the layers themselves act on among a request's options (RFC 7959, RFC 9175). */
export interface RequestOptions {
  block1: BlockOption | undefined;
  block2: BlockOption | undefined;
  /** Size1 as sent (RFC 7959 section 4): the body size a block-wise upload announces. */
  size1Bytes: number | undefined;
  /** Size2 present (with any value): the device asks for the representation's size. */
  wantsSize2: boolean;
  /** The Echo option (RFC 9175): a value this gateway sent, proving the source address. */
  echo: Buffer | undefined;
  /** The OSCORE option (RFC 8613 section 6.1): the request is protected; its payload is the ciphertext. */
  oscore: Buffer | undefined;
  /**
   * The request's identity for block-wise transfer: method, Uri-Path, Uri-Query, Content-Format,
   * Accept and Request-Tag (RFC 9175 section 3.4), never the CoAP token (RFC 7959 section 2.5).
   */
  readonly blockKey: string;
}

export interface ReadRequest {
  request: CoapRequest;
  options: RequestOptions;
}

/**
 * Reads a well-formed request's options through the registry in options.ts. Throws a
 * RequestError the endpoint renders: 4.05 for a method code it does not know (RFC 7252 section
 * 5.8), 4.02 for an unrecognized or malformed critical option, 5.05 for proxy options.
 */
export function readRequest(packet: ParsedPacket, peer: { address: string; port: number }, id: string): ReadRequest {
  const method = METHODS.get(packet.code);
  const segments: string[] = [];
  const query: string[] = [];
  const etags: Buffer[] = [];
  let contentFormat: number | undefined;
  let accept: number | undefined;
  let accessToken: string | undefined;
  let block1: BlockOption | undefined;
  let block2: BlockOption | undefined;
  let size1Bytes: number | undefined;
  let wantsSize2 = false;
  let echo: Buffer | undefined;
  let oscore: Buffer | undefined;
  const requestTags: string[] = [];
  let previous = -1;
  let seen = 0;
  for (const { name, value } of packet.options) {
    const number = optionNumber(name);
    seen = number === previous ? seen + 1 : 0;
    previous = number;
    switch (judgeOption(number, value.length, seen)) {
      case 'ignore':
        continue;
      case 'proxy':
        throw new RequestError('GW_ERR_PROXYING_NOT_SUPPORTED', `option ${number}: the gateway is not a forward proxy`);
      case 'bad-critical':
        throw new RequestError('GW_ERR_BAD_OPTION', `critical option ${number} (${value.length} bytes) not supported`);
      case 'use':
        break;
    }
    switch (number) {
      case Option.uriPath: segments.push(value.toString('utf8')); break;
      case Option.uriQuery: query.push(value.toString('utf8')); break;
      case Option.contentFormat: contentFormat = readUint(value); break;
      case Option.accept: accept = readUint(value); break;
      case Option.etag: etags.push(value); break;
      case Option.accessToken: accessToken = value.toString('latin1'); break;
      case Option.block1: block1 = readBlock(value); break;
      case Option.block2: block2 = readBlock(value); break;
      case Option.size1: size1Bytes = readUint(value); break;
      case Option.size2: wantsSize2 = true; break;
      case Option.echo: echo = value; break;
      case Option.oscore: oscore = value; break;
      case Option.requestTag: requestTags.push(value.toString('hex')); break;
      default: break;
    }
  }
  if (method === undefined) throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `method code ${packet.code} is not a method the gateway knows`);
  const path = `/${segments.map(escapeSegment).join('/')}`;
  const request: CoapRequest = {
    id, method, segments, path, query, payload: packet.payload, contentFormat, accept, etags, accessToken, peer,
  };
  let blockKey: string | undefined;
  return {
    request,
    options: {
      block1, block2, size1Bytes, wantsSize2, echo, oscore,
      // Only block-wise requests and large answers need it: computed on first use.
      get blockKey() {
        return (blockKey ??= JSON.stringify([method, segments, query, contentFormat ?? null, accept ?? null, requestTags]));
      },
    },
  };
}

function escapeSegment(segment: string): string {
  return segment.includes('%') || segment.includes('/') ? segment.replace(/%/g, '%25').replace(/\//g, '%2F') : segment;
}
