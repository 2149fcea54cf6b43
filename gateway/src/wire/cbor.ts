import { Decoder, Encoder, Tag, addExtension } from 'cbor-x';

// cbor-x turns tags 0 and 1 into a Date, losing the device's own text or number, and tag 27
// (a language-independent object) into a RegExp or an Error it builds: keep them as Tags, so
// their content passes through unchanged (RFC 8949 section 6.1). cbor-x extensions are
// process-wide, which is why they are set here, with the rest of the wire's CBOR settings.
// (cbor-x's typings demand Class and encode, which only encoding extensions need.)
type DecodeOnlyExtension = Parameters<typeof addExtension>[0];
for (const tag of [0, 1, 27]) addExtension({ tag, decode: (content: unknown) => new Tag(content, tag) } as unknown as DecodeOnlyExtension);

// The one CBOR configuration of the wire contract. Decoding keeps maps as Maps, so integer keys
// stay integers (cbor-x would otherwise make them text); encoding
// takes Maps as they are and gives the smallest map headers (a2, not b9 00 02), since every
// byte is airtime. No records: a plain CBOR peer must read everything we send.
const encoder = new Encoder({ useRecords: false, mapsAsObjects: false, variableMapSize: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false });

export function encodeCbor(value: unknown): Buffer {
  return encoder.encode(value);
}

/** Throws on malformed CBOR or trailing bytes. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return decoder.decode(bytes);
}
