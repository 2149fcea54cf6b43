import { createHash } from 'node:crypto';
import { AuthError, BridgeError, RequestError, type GatewayError } from '../errors.ts';
import type { CoapRequest, CoapResponse, Learned, RequestHandler, RequestSource } from '../messages.ts';
import type { Block1Assembler } from './block1-assembler.ts';
import { MAX_MESSAGE_BYTES, type Reply } from './encode-reply.ts';
import { blockSizeBytes, type BlockOption } from './options.ts';
import type { RequestOptions } from './read-request.ts';
import type { Representation, RepresentationStore } from './representation-store.ts';

/** SZX 6: 1024-byte blocks, the largest that fits a 1152-byte message with its header (RFC 7959 section 2.2). */
const MAX_SZX = 6;
/** How long a device should wait when the upload buffer is full (RFC 7252 section 5.10.5). */
const BUFFER_FULL_RETRY_SEC = 5;

export interface BlockWiseParts {
  admit: RequestHandler['admit'];
  uploads: Block1Assembler;
  representations: RepresentationStore;
}

export type Block1Outcome =
  | { kind: 'continue'; block1: BlockOption; learned: Learned }
  | { kind: 'complete'; request: CoapRequest; block1: BlockOption | undefined }
  | { kind: 'refused'; error: unknown; learned: Learned };

/**
 * RFC 7959 section 2.5, server side. Block 0 of a multi-block upload is admitted (token, route,
 * method, scope, content format, Size1) before a byte is buffered; later blocks must carry the same
 * Access-Token and arrive in order (else 4.08); the buffer's bound answers 5.03 with Max-Age.
 */
export async function receiveBlock1(
  parts: BlockWiseParts, request: CoapRequest, options: RequestOptions, source: RequestSource, requestKey: () => string,
): Promise<Block1Outcome> {
  const block = options.block1!;
  if (block.szx > MAX_SZX) throw new RequestError('GW_ERR_BAD_OPTION', 'Block1 SZX 7 (BERT) is only for reliable transports');
  const size = blockSizeBytes(block.szx);
  const echo: BlockOption = { num: block.num, more: block.more, szx: block.szx };
  if (block.num === 0) {
    if (!block.more) return { kind: 'complete', request, block1: echo };
    const key = requestKey();
    const admitted = await parts.admit(request, source, options.size1Bytes);
    const { principal, deviceId, route } = admitted;
    const learned: Learned = { principal, deviceId, route };
    if (admitted.maxBodyBytes === undefined) return { kind: 'refused', error: admitted.error, learned };
    const refused = startUpload(parts, key, request, options, admitted.maxBodyBytes, learned, size);
    return refused === undefined ? { kind: 'continue', block1: echo, learned } : { kind: 'refused', error: refused, learned };
  }
  const key = requestKey();
  const upload = parts.uploads.get(key);
  if (upload === undefined) throw new RequestError('GW_ERR_REQUEST_INCOMPLETE', `block ${block.num} of an upload that never started`);
  const { learned } = upload;
  const refuse = (error: GatewayError): Block1Outcome => ({ kind: 'refused', error, learned });
  if (upload.accessToken !== request.accessToken) {
    // Whoever sent this block proved nothing: block 0's principal is not theirs.
    const error = new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `block ${block.num} carries another Access-Token than block 0`);
    return { kind: 'refused', error, learned: { route: learned.route } };
  }
  if (block.num * size !== upload.bytes) {
    parts.uploads.delete(key);
    return refuse(new RequestError('GW_ERR_REQUEST_INCOMPLETE', `block ${block.num} x ${size} bytes does not follow the ${upload.bytes} bytes received`));
  }
  if (block.more && request.payload.length !== size) {
    parts.uploads.delete(key);
    return refuse(new RequestError('GW_ERR_BAD_REQUEST', `block ${block.num} has ${request.payload.length} bytes, not ${size}`));
  }
  if (upload.bytes + request.payload.length > upload.maxBodyBytes) {
    parts.uploads.delete(key);
    return refuse(tooLarge(upload.maxBodyBytes));
  }
  if (!parts.uploads.append(key, request.payload)) {
    return refuse(new RequestError('GW_ERR_BAD_REQUEST', `upload passed the ${upload.reservedBytes} bytes its Size1 announced`));
  }
  if (block.more) return { kind: 'continue', block1: echo, learned };
  return { kind: 'complete', request: { ...request, payload: parts.uploads.take(key) }, block1: echo };
}

/** Block 0 of an admitted upload: buffered, or the reason it may not be. */
function startUpload(
  parts: BlockWiseParts, key: string, request: CoapRequest, options: RequestOptions, maxBodyBytes: number, learned: Learned, size: number,
): GatewayError | undefined {
  if (request.payload.length !== size) return new RequestError('GW_ERR_BAD_REQUEST', `block 0 has ${request.payload.length} bytes, not ${size}`);
  if (request.payload.length > maxBodyBytes) return tooLarge(maxBodyBytes);
  if (options.size1Bytes !== undefined && options.size1Bytes <= size) {
    return new RequestError('GW_ERR_BAD_REQUEST', `Size1 ${options.size1Bytes} announces no more than block 0 itself`);
  }
  const authenticated = learned.principal !== undefined;
  const started = parts.uploads.start(key, {
    accessToken: request.accessToken, first: request.payload, learned,
    // Room for the whole body is set aside now, so an upload under way can always finish.
    reservedBytes: Math.min(options.size1Bytes ?? maxBodyBytes, maxBodyBytes),
    // Unauthenticated uploads count per source address, whatever its ports, and a full source
    // is refused rather than evicting one under way (another host could share the address).
    anonymousEndpoint: authenticated ? undefined : request.peer.address,
    owner: authenticated ? learned.principal!.deviceId : `unauthenticated ${request.peer.address}`,
    maxBodyBytes,
  });
  return started ? undefined : new BridgeError('GW_ERR_BUSY', 'upload buffer full', { maxAgeSec: BUFFER_FULL_RETRY_SEC });
}

const tooLarge = (maxBodyBytes: number) =>
  new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', `upload passes ${maxBodyBytes} bytes`, { size1Bytes: maxBodyBytes });

/** A later block of a stored representation, when the device asks for one with the same Access-Token. */
export function storedBlock(parts: BlockWiseParts, request: CoapRequest, options: RequestOptions, requestKey: () => string)
  : { reply: Reply; stored: Representation } | undefined {
  const block = options.block2;
  if (block === undefined || block.num === 0 || options.block1 !== undefined) return undefined;
  const stored = parts.representations.get(requestKey());
  if (stored === undefined || stored.accessToken !== request.accessToken) return undefined;
  return { reply: sliceBlock(stored.response, block.num, Math.min(block.szx, MAX_SZX), options.wantsSize2), stored };
}

/**
 * RFC 7959 section 2.4: an answer larger than one block (the device's Block2 SZX, or what fits in
 * 1152 bytes with the options) is stored with an ETag and sent block by block.
 */
export function blockwiseAnswer(
  parts: BlockWiseParts, request: CoapRequest, options: RequestOptions, store: { key: string; learned: Learned } | undefined,
  response: CoapResponse,
): Reply {
  const payload = response.payload;
  const szx = Math.min(options.block2?.szx ?? MAX_SZX, fittingSzx(response));
  if (payload === undefined || (payload.length <= blockSizeBytes(szx) && (options.block2?.num ?? 0) === 0)) {
    return { response };
  }
  const stored = { ...response, payload, etag: response.etag ?? createHash('sha256').update(payload).digest().subarray(0, 8) };
  // Kept for later blocks only when the request was authenticated (`store` given): anything
  // else is computed again per block, so nobody unauthenticated can fill or flush the store.
  if (store !== undefined) parts.representations.put(store.key, stored, request.accessToken, store.learned);
  return sliceBlock(stored, options.block2?.num ?? 0, szx, options.wantsSize2);
}

function sliceBlock(response: CoapResponse & { payload: Buffer }, num: number, szx: number, wantsSize2: boolean): Reply {
  const size = blockSizeBytes(szx);
  const start = num * size;
  if (start >= response.payload.length) throw new RequestError('GW_ERR_BAD_OPTION', `Block2 ${num} lies past the end`);
  const end = Math.min(start + size, response.payload.length);
  const reply: Reply = {
    response: { ...response, payload: response.payload.subarray(start, end) },
    block2: { num, more: end < response.payload.length, szx },
  };
  if (wantsSize2) reply.size2Bytes = response.payload.length;
  return reply;
}

// Header, an 8-byte token, ETag, Content-Format, Max-Age, Block2, Size2 and the payload marker
// take at most 45 bytes; Location options are the backend's and count in full.
function fittingSzx(response: CoapResponse): number {
  let overhead = 48;
  for (const part of [...(response.locationPath ?? []), ...(response.locationQuery ?? [])]) overhead += Buffer.byteLength(part) + 3;
  let szx = MAX_SZX;
  while (szx > 0 && blockSizeBytes(szx) + overhead > MAX_MESSAGE_BYTES) szx -= 1;
  return szx;
}
