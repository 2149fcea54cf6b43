import { ContentFormat } from '../wire/index.ts';

/** CoAP Content-Format <-> HTTP media type, for the formats passed through unchanged. */
const MEDIA_TYPE_BY_FORMAT: ReadonlyMap<number, string> = new Map([
  [ContentFormat.textPlain, 'text/plain; charset=utf-8'],
  [ContentFormat.linkFormat, 'application/link-format'],
  [ContentFormat.octetStream, 'application/octet-stream'],
  [ContentFormat.json, 'application/json'],
  [ContentFormat.cbor, 'application/cbor'],
  [41, 'application/xml'],
  [110, 'application/senml+json'],
  [112, 'application/senml+cbor'],
  [11542, 'application/vnd.oma.lwm2m+tlv'],
  [11543, 'application/vnd.oma.lwm2m+json'],
  [11544, 'application/vnd.oma.lwm2m+cbor'],
]);

const FORMAT_BY_MEDIA_TYPE: ReadonlyMap<string, number> = new Map(
  [...MEDIA_TYPE_BY_FORMAT].map(([format, type]) => [type.split(';')[0]!, format]),
);

export function mediaTypeFor(format: number | undefined): string {
  return (format !== undefined ? MEDIA_TYPE_BY_FORMAT.get(format) : undefined) ?? 'application/octet-stream';
}

export function formatFor(mediaType: string | undefined): number | undefined {
  if (mediaType === undefined) return undefined;
  return FORMAT_BY_MEDIA_TYPE.get(mediaType.split(';')[0]!.trim().toLowerCase()) ?? ContentFormat.octetStream;
}
