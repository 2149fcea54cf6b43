import { Tag } from 'cbor-x';
import { RequestError } from '../errors.ts';
import { decodeCbor, encodeCbor } from '../wire/index.ts';

/**
 * CBOR body -> JSON text for the backend (RFC 8949 section 6.1): map keys become text, byte
 * strings become base64url text, tags are dropped to their content, non-finite numbers become
 * null, big integers become decimal text.
 */
export function cborToJson(payload: Buffer): string {
  let value: unknown;
  try {
    value = decodeCbor(payload);
  } catch (err) {
    throw new RequestError('GW_ERR_BAD_REQUEST', `malformed CBOR body: ${(err as Error).message}`);
  }
  return JSON.stringify(toJsonValue(value, 0));
}

/** JSON text from the backend -> CBOR for the device. Throws SyntaxError on bad JSON. */
export function jsonToCbor(text: string): Buffer {
  return encodeCbor(JSON.parse(text));
}

const MAX_DEPTH = 64;

function toJsonValue(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new RequestError('GW_ERR_BAD_REQUEST', 'CBOR body nested too deeply');
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    default:
      break;
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64url');
  if (value instanceof Tag) return toJsonValue(value.value, depth + 1);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((item) => toJsonValue(item, depth + 1));
  if (value instanceof Map) {
    // No prototype: a map key "__proto__" stays an ordinary key instead of vanishing.
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [key, item] of value) out[String(key)] = toJsonValue(item, depth + 1);
    return out;
  }
  if (value instanceof Set) return [...value].map((item) => toJsonValue(item, depth + 1));
  // RFC 8746 typed arrays (tags 64-87) are byte strings with a tag: their bytes, as base64url.
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64url');
  // cbor-x's own records (tags 0xdf00-0xdfff, what its default encoder writes for a plain
  // object) decode to plain objects: the map the sender meant.
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype === Object.prototype || prototype === null) {
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) out[key] = toJsonValue(item, depth + 1);
    return out;
  }
  // Anything else a decoder extension made has no JSON form the backend could rely on.
  throw new RequestError('GW_ERR_BAD_REQUEST', 'CBOR body holds a value with no JSON form');
}
