import type { OptionName } from 'coap-packet';
import { ACCESS_TOKEN_OPTION } from '../wire/index.ts';

/** coap-packet names the options it knows and leaves the others as their number in a string. */
const NUMBER_BY_NAME: Readonly<Record<OptionName, number>> = {
  'If-Match': 1, 'Uri-Host': 3, ETag: 4, 'If-None-Match': 5, Observe: 6, 'Uri-Port': 7, 'Location-Path': 8,
  OSCORE: 9, 'Uri-Path': 11, 'Content-Format': 12, 'Max-Age': 14, 'Uri-Query': 15, 'Hop-Limit': 16, Accept: 17,
  'Q-Block1': 19, 'Location-Query': 20, Block2: 23, Block1: 27, Size2: 28, 'Q-Block2': 31, 'Proxy-Uri': 35,
  'Proxy-Scheme': 39, Size1: 60, 'No-Response': 258,
  'OCF-Accept-Content-Format-Version': 2049, 'OCF-Content-Format-Version': 2053,
};

/** Option numbers the endpoint writes or reads by number. */
export const Option = {
  uriHost: 3,
  etag: 4,
  observe: 6,
  uriPort: 7,
  locationPath: 8,
  oscore: 9,
  uriPath: 11,
  contentFormat: 12,
  maxAge: 14,
  uriQuery: 15,
  accept: 17,
  locationQuery: 20,
  block2: 23,
  block1: 27,
  size2: 28,
  proxyUri: 35,
  proxyScheme: 39,
  size1: 60,
  echo: 252,
  requestTag: 292,
  accessToken: ACCESS_TOKEN_OPTION,
} as const;

interface OptionSpec {
  readonly repeatable: boolean;
  readonly minBytes: number;
  readonly maxBytes: number;
}

/**
 * The one registry of the request options the gateway implements (RFC 7252 section 5.10,
 * RFC 7959, RFC 9175, RFC 8613), with the lengths the RFCs allow. Any other critical (odd) option, whether a
 * library knows its name or not (Q-Block, If-Match...), gets 4.02 (section 5.4.1); a
 * malformed or repeated one is treated as unrecognized (sections 5.4.3 and 5.4.5).
 */
const IMPLEMENTED: ReadonlyMap<number, OptionSpec> = new Map([
  [Option.uriHost, { repeatable: false, minBytes: 1, maxBytes: 255 }],
  [Option.etag, { repeatable: true, minBytes: 1, maxBytes: 8 }],
  [Option.observe, { repeatable: false, minBytes: 0, maxBytes: 3 }],
  [Option.uriPort, { repeatable: false, minBytes: 0, maxBytes: 2 }],
  // RFC 8613 section 6.1: at most 1 + 5 + 1 + 255 + kid bytes; longer than this is malformed (4.02).
  [Option.oscore, { repeatable: false, minBytes: 0, maxBytes: 255 }],
  [Option.uriPath, { repeatable: true, minBytes: 0, maxBytes: 255 }],
  [Option.contentFormat, { repeatable: false, minBytes: 0, maxBytes: 2 }],
  [Option.uriQuery, { repeatable: true, minBytes: 0, maxBytes: 255 }],
  [Option.accept, { repeatable: false, minBytes: 0, maxBytes: 2 }],
  [Option.block2, { repeatable: false, minBytes: 0, maxBytes: 3 }],
  [Option.block1, { repeatable: false, minBytes: 0, maxBytes: 3 }],
  [Option.size2, { repeatable: false, minBytes: 0, maxBytes: 4 }],
  [Option.size1, { repeatable: false, minBytes: 0, maxBytes: 4 }],
  [Option.echo, { repeatable: false, minBytes: 1, maxBytes: 40 }],
  [Option.requestTag, { repeatable: true, minBytes: 0, maxBytes: 8 }],
  [Option.accessToken, { repeatable: false, minBytes: 0, maxBytes: 2048 }],
]);

/** RFC 7252 section 5.7.2: a request for forward proxying gets 5.05, not 4.02. */
const PROXY_OPTIONS: ReadonlySet<number> = new Set([Option.proxyUri, Option.proxyScheme]);

export type OptionVerdict = 'use' | 'ignore' | 'bad-critical' | 'proxy';

/** The option's number, from coap-packet's name or from the number it left as text. */
export function optionNumber(name: string | number): number {
  if (typeof name === 'number') return name;
  return NUMBER_BY_NAME[name as OptionName] ?? Number(name);
}

/** What to do with one occurrence of an option; `seen` counts earlier occurrences in the same message. */
export function judgeOption(number: number, length: number, seen: number): OptionVerdict {
  const spec = IMPLEMENTED.get(number);
  const critical = (number & 1) === 1;
  if (spec === undefined) {
    if (PROXY_OPTIONS.has(number)) return 'proxy';
    return critical ? 'bad-critical' : 'ignore';
  }
  if (length < spec.minBytes || length > spec.maxBytes || (seen > 0 && !spec.repeatable)) {
    return critical ? 'bad-critical' : 'ignore';
  }
  return 'use';
}

/** RFC 7252 section 3.2: an unsigned integer option value, big-endian, leading zeros allowed. */
export function readUint(value: Buffer): number {
  let n = 0;
  for (const byte of value) n = n * 256 + byte;
  return n;
}

const EMPTY = Buffer.alloc(0);
const SMALL_UINTS: readonly Buffer[] = Array.from({ length: 256 }, (_, i) => (i === 0 ? EMPTY : Buffer.from([i])));

/** The shortest encoding of an unsigned integer option value (0 is the empty value). */
export function writeUint(value: number): Buffer {
  if (value < 256) return SMALL_UINTS[value]!;
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
}

/** RFC 7959 section 2.2: block number, more flag and size exponent (block size 2^(SZX+4)). */
export interface BlockOption {
  num: number;
  more: boolean;
  szx: number;
}

export function readBlock(value: Buffer): BlockOption {
  const n = readUint(value);
  return { num: Math.floor(n / 16), more: (n & 0x08) !== 0, szx: n & 0x07 };
}

export function writeBlock(block: BlockOption): Buffer {
  return writeUint(block.num * 16 + (block.more ? 8 : 0) + block.szx);
}

export const blockSizeBytes = (szx: number): number => 1 << (szx + 4);
