import { ACCESS_TOKEN_OPTION, ContentFormat, WireError, decodeCbor } from '../../gateway/src/wire/index.ts';
import type { CoapMessage, CoapOption } from '../../gateway/src/wire/oscore/index.ts';

// For the benchmarks, which reach the wire contract through the simulator: the OSCORE option
// (RFC 8613 section 6.1) as a forger writes one.
export { OSCORE_OPTION, writeOscoreOption } from '../../gateway/src/wire/oscore/index.ts';

/** The option numbers a device's inner request and answer use (RFC 7252 section 12.2, RFC 7959, RFC 9175). */
export const InnerOption = {
  uriPath: 11,
  contentFormat: 12,
  maxAge: 14,
  uriQuery: 15,
  accept: 17,
  block2: 23,
  block1: 27,
  size1: 60,
  echo: 252,
  accessToken: ACCESS_TOKEN_OPTION,
} as const;

/**
 * The gateway's answers in clear to a protected request (RFC 8613 section 8.2): the CoAP code
 * and the wire code (key 0 of the error body) of each.
 */
export const OscoreRefusal = {
  malformedOption: { code: '4.02', wireError: WireError.badOption },
  unknownContext: { code: '4.01', wireError: WireError.oscoreUnknownContext },
  decryptFailed: { code: '4.00', wireError: WireError.oscoreDecryptFailed },
  replay: { code: '4.01', wireError: WireError.oscoreReplay },
} as const;

const METHOD_CODES = { GET: '0.01', POST: '0.02', PUT: '0.03', DELETE: '0.04' } as const;
export type Method = keyof typeof METHOD_CODES;

const EMPTY = Buffer.alloc(0);

/** A CoAP uint option value (RFC 7252 section 3.2): big-endian, no leading zero bytes, 0 as no bytes. */
export function uintValue(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) throw new TypeError(`a CoAP uint option is 0 to 2^32 - 1, not ${n}`);
  if (n === 0) return EMPTY;
  const bytes = n < 0x100 ? 1 : n < 0x1_0000 ? 2 : n < 0x100_0000 ? 3 : 4;
  const value = Buffer.alloc(bytes);
  value.writeUIntBE(n, 0, bytes);
  return value;
}

/** A uint option's number (up to 4 bytes, as RFC 7252 allows for the options here). */
export function readUint(value: Buffer): number {
  let n = 0;
  for (const byte of value.subarray(0, 4)) n = n * 256 + byte;
  return n;
}

/** What a request is made of before protection: every part of it is inner (Class E, section 4.1.1). */
export interface InnerRequestParts {
  method: Method;
  /** '/telemetry/temp': each segment a Uri-Path option. */
  path: string;
  /** 'a=1&b=2': each part a Uri-Query option. */
  query?: string | undefined;
  contentFormat?: number | undefined;
  accept?: number | undefined;
  /** The Access-Token option's bytes (a JWT's text as bytes, a CWT as it is). */
  accessToken?: Buffer | undefined;
  echo?: Buffer | undefined;
  payload: Buffer;
}

/** The plaintext request (code, inner options in number order, payload). */
export function innerRequest(parts: InnerRequestParts): CoapMessage {
  const options: CoapOption[] = [];
  for (const segment of parts.path.split('/')) if (segment !== '') options.push({ number: InnerOption.uriPath, value: Buffer.from(segment) });
  if (parts.contentFormat !== undefined) options.push({ number: InnerOption.contentFormat, value: uintValue(parts.contentFormat) });
  for (const part of (parts.query ?? '').split('&')) if (part !== '') options.push({ number: InnerOption.uriQuery, value: Buffer.from(part) });
  if (parts.accept !== undefined) options.push({ number: InnerOption.accept, value: uintValue(parts.accept) });
  if (parts.echo !== undefined) options.push({ number: InnerOption.echo, value: parts.echo });
  if (parts.accessToken !== undefined) options.push({ number: InnerOption.accessToken, value: parts.accessToken });
  return { code: METHOD_CODES[parts.method], options, payload: parts.payload };
}

/** `message` with `option` in its place (number order; one of that number replaced when `replace`). */
export function withOption(message: CoapMessage, option: CoapOption, replace = true): CoapMessage {
  const kept = replace ? message.options.filter((o) => o.number !== option.number) : message.options.slice();
  const at = kept.findIndex((o) => o.number > option.number);
  kept.splice(at === -1 ? kept.length : at, 0, option);
  return { ...message, options: kept };
}

export function withoutOption(message: CoapMessage, number: number): CoapMessage {
  return { ...message, options: message.options.filter((o) => o.number !== number) };
}

export function optionValue(message: CoapMessage, number: number): Buffer | undefined {
  return message.options.find((o) => o.number === number)?.value;
}

/** RFC 7959 section 2.2: NUM, M and SZX of a Block1 or Block2 option. */
export interface BlockValue {
  num: number;
  more: boolean;
  /** 0-6: blocks of 2^(szx + 4) bytes. */
  szx: number;
}

export function blockValue(block: BlockValue): Buffer {
  return uintValue(block.num * 16 + (block.more ? 8 : 0) + block.szx);
}

export function readBlock(value: Buffer): BlockValue {
  const n = readUint(value);
  return { num: Math.floor(n / 16), more: (n & 8) !== 0, szx: n & 7 };
}

/** The parts of an inner answer a device reads: its Content-Format, Max-Age and Echo, and the payload as CBOR when it is CBOR. */
export function innerAnswerParts(message: CoapMessage): {
  contentFormat: number | undefined; maxAgeSec: number | undefined; echo: Buffer | undefined; body: unknown;
} {
  const format = optionValue(message, InnerOption.contentFormat);
  const maxAge = optionValue(message, InnerOption.maxAge);
  const contentFormat = format === undefined ? undefined : readUint(format);
  let body: unknown;
  if (contentFormat === ContentFormat.cbor && message.payload.length > 0) {
    try {
      body = decodeCbor(message.payload);
    } catch {
      body = undefined;
    }
  }
  return { contentFormat, maxAgeSec: maxAge === undefined ? undefined : readUint(maxAge), echo: optionValue(message, InnerOption.echo), body };
}
