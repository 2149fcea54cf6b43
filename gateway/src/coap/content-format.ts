import { ContentFormat } from '../wire/index.ts';

/**
 * node-coap converts Content-Format and Accept to a media-type name when it knows the number,
 * and leaves the number otherwise; the gateway works with numbers. Only the formats the gateway
 * can produce or convert are named here.
 */
const NUMBER_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['text/plain', ContentFormat.textPlain],
  ['application/link-format', ContentFormat.linkFormat],
  ['application/octet-stream', ContentFormat.octetStream],
  ['application/json', ContentFormat.json],
  ['application/cbor', ContentFormat.cbor],
]);

export function contentFormatNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  return NUMBER_BY_NAME.get(value.split(';')[0]!.trim()) ?? -1;
}
