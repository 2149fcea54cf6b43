import { createHash } from 'node:crypto';

/** RFC 7252 section 5.10.6: a CoAP ETag is 1 to 8 bytes. */
const MAX_ETAG_BYTES = 8;

/**
 * The CoAP ETag for a backend's HTTP ETag header value. The whole value, `W/` and quotes
 * included, is the identity: one that fits travels as its own bytes, a longer one as the first
 * 8 bytes of its SHA-256, which changes whenever the HTTP entity-tag does.
 */
export function coapEtagFor(httpEtag: string): Buffer {
  if (httpEtag.length === 0) throw new TypeError('an empty ETag header has no CoAP ETag');
  const bytes = Buffer.from(httpEtag, 'utf8');
  if (bytes.length <= MAX_ETAG_BYTES) return bytes;
  return createHash('sha256').update(bytes).digest().subarray(0, MAX_ETAG_BYTES);
}
