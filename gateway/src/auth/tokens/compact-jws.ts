import { AuthError } from '../../errors.ts';

/** Our tokens are 350-500 characters; a JWS ten times larger is nobody's token. */
export const MAX_TOKEN_CHARS = 2048;

export interface JwsParts {
  header: string;
  payload: string;
  signature: string;
}

export interface DecodedJws {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  signatureBytes: number;
}

const BASE64URL_CHARS = /^[A-Za-z0-9_-]*$/;
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * True when `text` is the one base64url spelling of its bytes (RFC 7515 section 2: no padding;
 * RFC 4648 section 3.5: the unused low bits of the last character are zero), i.e. decoding and
 * encoding again gives `text` back. Without this one token has up to 16 spellings, each a cache
 * miss and a fresh signature check.
 */
export function isCanonicalBase64url(text: string): boolean {
  if (!BASE64URL_CHARS.test(text)) return false;
  const tail = text.length % 4;
  if (tail === 0) return true;
  if (tail === 1) return false; // 6 bits cannot end a byte
  // 2 characters carry 12 bits for 1 byte (4 unused), 3 carry 18 bits for 2 bytes (2 unused).
  const last = BASE64URL_ALPHABET.indexOf(text[text.length - 1]!);
  return (last & (tail === 2 ? 0b1111 : 0b11)) === 0;
}

/**
 * The checks that run before anything else, cached tokens included: size, three parts, each
 * canonical base64url. Costs a regex over at most 2 KB.
 */
export function splitCompactJws(token: string): JwsParts {
  if (token.length > MAX_TOKEN_CHARS) {
    throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `token of ${token.length} characters (at most ${MAX_TOKEN_CHARS})`);
  }
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `not a JWS compact serialization (${parts.length} parts)`);
  }
  const [header, payload, signature] = parts as [string, string, string];
  for (const [name, part] of [['header', header], ['payload', payload], ['signature', signature]] as const) {
    if (!isCanonicalBase64url(part)) throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `${name} is not canonical base64url`);
  }
  return { header, payload, signature };
}

/** Header and claims as JSON objects, without trusting either: nothing here is verified yet. */
export function decodeJws(parts: JwsParts): DecodedJws {
  return {
    header: jsonObject(parts.header, 'header'),
    claims: jsonObject(parts.payload, 'claims'),
    signatureBytes: Buffer.byteLength(parts.signature, 'base64url'),
  };
}

function jsonObject(part: string, name: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(Buffer.from(part, 'base64url')));
  } catch {
    throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `${name} is not UTF-8 JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `${name} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}
