import { ContentFormat } from './wire/index.ts';

/**
 * CoAP Content-Format numbers and their media types (IANA CoAP Content-Formats): the one table
 * both for reading node-coap's options and for the bridge's Content-Type mapping.
 */
const CONTENT_FORMATS: readonly (readonly [number, string])[] = [
  [ContentFormat.textPlain, 'text/plain; charset=utf-8'],
  [ContentFormat.linkFormat, 'application/link-format'],
  [41, 'application/xml'],
  [ContentFormat.octetStream, 'application/octet-stream'],
  [47, 'application/exi'],
  [ContentFormat.json, 'application/json'],
  [ContentFormat.cbor, 'application/cbor'],
  [61, 'application/cwt'],
  [63, 'application/cbor-seq'],
  [110, 'application/senml+json'],
  [111, 'application/sensml+json'],
  [112, 'application/senml+cbor'],
  [113, 'application/sensml+cbor'],
  [11542, 'application/vnd.oma.lwm2m+tlv'],
  [11543, 'application/vnd.oma.lwm2m+json'],
  [11544, 'application/vnd.oma.lwm2m+cbor'],
];

const MEDIA_TYPE_BY_FORMAT: ReadonlyMap<number, string> = new Map(CONTENT_FORMATS);
const FORMAT_BY_MEDIA_TYPE: ReadonlyMap<string, number> = new Map(CONTENT_FORMATS.map(([format, type]) => [bare(type), format]));

/**
 * node-coap converts Content-Format and Accept to a media-type name when it knows the number,
 * and leaves the number otherwise; the gateway works with numbers. A name missing from the
 * table becomes -1: "some format the gateway does not convert".
 */
export function contentFormatNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  return FORMAT_BY_MEDIA_TYPE.get(bare(value)) ?? -1;
}

/** The HTTP Content-Type for a CoAP content format; unknown ones are octet-stream. */
export function mediaTypeFor(format: number | undefined): string {
  return (format !== undefined ? MEDIA_TYPE_BY_FORMAT.get(format) : undefined) ?? 'application/octet-stream';
}

/** The CoAP content format for an HTTP Content-Type; unknown ones are octet-stream (42). */
export function formatFor(mediaType: string | undefined): number | undefined {
  if (mediaType === undefined) return undefined;
  return FORMAT_BY_MEDIA_TYPE.get(bare(mediaType)) ?? ContentFormat.octetStream;
}

function bare(mediaType: string): string {
  return mediaType.split(';')[0]!.trim().toLowerCase();
}
