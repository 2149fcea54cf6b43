import { ContentFormat } from '../wire/index.ts';

/**
 * node-coap converts Content-Format and Accept to a media-type name when it knows the number,
 * and leaves the number otherwise; the gateway works with numbers (IANA CoAP Content-Formats).
 * A name missing here becomes -1: "some format the gateway does not convert".
 */
const NUMBER_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['text/plain', ContentFormat.textPlain],
  ['application/link-format', ContentFormat.linkFormat],
  ['application/xml', 41],
  ['application/octet-stream', ContentFormat.octetStream],
  ['application/exi', 47],
  ['application/json', ContentFormat.json],
  ['application/cbor', ContentFormat.cbor],
  ['application/cwt', 61],
  ['application/cbor-seq', 63],
  ['application/senml+json', 110],
  ['application/sensml+json', 111],
  ['application/senml+cbor', 112],
  ['application/sensml+cbor', 113],
  ['application/vnd.oma.lwm2m+tlv', 11542],
  ['application/vnd.oma.lwm2m+json', 11543],
  ['application/vnd.oma.lwm2m+cbor', 11544],
]);

export function contentFormatNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  return NUMBER_BY_NAME.get(value.split(';')[0]!.trim()) ?? -1;
}
