import { ContentFormat } from './wire/index.ts';

/**
 * CoAP Content-Format numbers and their media types (IANA CoAP Content-Formats): the one table
 * for the bridge's Content-Type mapping both ways.
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
