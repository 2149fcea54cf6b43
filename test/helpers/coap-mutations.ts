import type { SeededRandom } from './seeded-random.ts';

// Mutations of CoAP datagrams for fuzzing (RFC 7252 section 3 is the map of what to break):
// bits, bytes, lengths, the token length nibble, the option delta and length nibbles, huge
// extended option lengths, and the message type and code.

export type MutationName =
  | 'bit-flips' | 'byte-insert' | 'byte-delete' | 'truncate' | 'token-length' | 'option-nibble'
  | 'huge-option-length' | 'type' | 'code' | 'payload-marker';

/** Where the option headers of a datagram start, as far as they can be walked (tolerant of junk). */
export function optionHeaderOffsets(datagram: Buffer): number[] {
  const offsets: number[] = [];
  const tokenLength = (datagram[0] ?? 0) & 0x0f;
  let at = 4 + (tokenLength <= 8 ? tokenLength : 0);
  while (at < datagram.length && datagram[at] !== 0xff && offsets.length < 64) {
    offsets.push(at);
    const byte = datagram[at]!;
    let next = at + 1;
    const delta = byte >> 4;
    const length = byte & 0x0f;
    if (delta === 13) next += 1;
    else if (delta === 14) next += 2;
    let valueLength = length;
    if (length === 13) { valueLength = 13 + (datagram[next] ?? 0); next += 1; }
    else if (length === 14) {
      if (next + 2 > datagram.length) break;
      valueLength = 269 + datagram.readUInt16BE(next);
      next += 2;
    }
    else if (length === 15 || delta === 15) break;
    at = next + valueLength;
  }
  return offsets;
}

export function mutate(datagram: Buffer, name: MutationName, random: SeededRandom): Buffer {
  let d = Buffer.from(datagram);
  const at = () => random.int(Math.max(1, d.length));
  switch (name) {
    case 'bit-flips':
      for (let i = 1 + random.int(8); i > 0 && d.length > 0; i -= 1) {
        const byte = at();
        d[byte] = d[byte]! ^ (1 << random.int(8));
      }
      return d;
    case 'byte-insert': {
      const where = random.int(d.length + 1);
      return Buffer.concat([d.subarray(0, where), random.bytes(1 + random.int(16)), d.subarray(where)]);
    }
    case 'byte-delete': {
      const where = at();
      return Buffer.concat([d.subarray(0, where), d.subarray(where + 1 + random.int(16))]);
    }
    case 'truncate':
      return d.subarray(0, random.int(d.length));
    case 'token-length':
      // 9-15: reserved (9-12) or RFC 8974 extended lengths (13, 14) and the reserved 15.
      if (d.length > 0) d[0] = (d[0]! & 0xf0) | (9 + random.int(7));
      return d;
    case 'option-nibble': {
      const offsets = optionHeaderOffsets(d);
      if (offsets.length === 0) return mutate(d, 'bit-flips', random);
      const where = random.pick(offsets);
      const nibble = random.int(16);
      d[where] = random.int(2) === 0 ? (d[where]! & 0x0f) | (nibble << 4) : (d[where]! & 0xf0) | nibble;
      return d;
    }
    case 'huge-option-length': {
      const offsets = optionHeaderOffsets(d);
      const where = offsets.length > 0 ? random.pick(offsets) : Math.min(d.length, 4 + ((d[0] ?? 0) & 0x0f));
      const delta = (d[where] ?? 0xb0) & 0xf0;
      // Length nibble 14: 269 + a 16-bit extension, far past the end of any datagram.
      const header = Buffer.from([delta === 0xd0 || delta === 0xe0 ? 0xbe : delta | 0x0e, 0xff, random.int(256)]);
      d = Buffer.concat([d.subarray(0, where), header, d.subarray(where + 1)]);
      return d;
    }
    case 'type':
      if (d.length > 0) d[0] = (d[0]! & 0xcf) | (random.int(4) << 4);
      return d;
    case 'code':
      if (d.length > 1) d[1] = random.int(256);
      return d;
    case 'payload-marker':
      // A payload marker with nothing after it, or in the middle of the options.
      return random.int(2) === 0 ? Buffer.concat([d, Buffer.from([0xff])]) : Buffer.concat([d.subarray(0, at()), Buffer.from([0xff])]);
  }
}

export const MUTATIONS: readonly MutationName[] = [
  'bit-flips', 'byte-insert', 'byte-delete', 'truncate', 'token-length', 'option-nibble', 'huge-option-length',
  'type', 'code', 'payload-marker',
];

/** The token a datagram carries as the gateway would read it, hex; undefined when it has none readable. */
export function tokenOf(datagram: Buffer): string | undefined {
  if (datagram.length < 4) return undefined;
  const tokenLength = datagram[0]! & 0x0f;
  if (tokenLength > 8) return undefined;
  return datagram.subarray(4, 4 + tokenLength).toString('hex');
}
