import t from 'tap';
import { readOscoreOption, writeOscoreOption, type OscoreOption } from '../../gateway/src/wire/oscore/index.ts';

// The OSCORE option value (RFC 8613 section 6.1, Figure 10): flag byte 000hknnn, n bytes of
// Partial IV, with h a length byte and the kid context, with k the rest as kid. Expected bytes
// are written out by hand from the figure.

const hex = (text: string): Buffer => Buffer.from(text, 'hex');
/** tap matches the thrown error's fields; the name says it is an OscoreError. */
const MALFORMED = { name: 'OscoreError', code: 'malformed_option' };
const shown = (option: OscoreOption) => ({
  partialIv: option.partialIv?.toString('hex'), kid: option.kid?.toString('hex'), kidContext: option.kidContext?.toString('hex'),
});

t.test('readOscoreOption: each field where the flags say, nothing else', async (t) => {
  const cases: [string, string, ReturnType<typeof shown>][] = [
    ['', 'the empty value: no Partial IV, no kid (a response reusing the request nonce)', { partialIv: undefined, kid: undefined, kidContext: undefined }],
    ['0914', 'k, n=1: Partial IV 0x14, empty kid (RFC C.4)', { partialIv: '14', kid: '', kidContext: undefined }],
    ['091400', 'k, n=1: kid 0x00 (RFC C.5)', { partialIv: '14', kid: '00', kidContext: undefined }],
    ['19140837cbf3210017a2d3', 'h, k, n=1: kid context of 8 bytes, empty kid (RFC C.6)', { partialIv: '14', kid: '', kidContext: '37cbf3210017a2d3' }],
    ['0100', 'n=1 alone: a response\'s own Partial IV 0 (RFC C.8)', { partialIv: '00', kid: undefined, kidContext: undefined }],
    ['0d0102030405aabbcc', 'k, n=5: the longest Partial IV and a 3-byte kid', { partialIv: '0102030405', kid: 'aabbcc', kidContext: undefined }],
    ['08', 'k alone: an empty kid, no Partial IV', { partialIv: undefined, kid: '', kidContext: undefined }],
    ['1000', 'h alone, s=0: an empty kid context', { partialIv: undefined, kid: undefined, kidContext: '' }],
    ['1a01020201020304', 'h, k, n=2', { partialIv: '0102', kid: '0304', kidContext: '0102' }],
  ];
  for (const [value, what, expected] of cases) t.same(shown(readOscoreOption(hex(value))), expected, `${value || "''"}: ${what}`);
});

t.test('readOscoreOption: fields are views of the value; a plain Uint8Array reads the same', async (t) => {
  const value = hex('0d0102030405aabbcc');
  const option = readOscoreOption(value);
  t.equal(option.kid!.buffer, value.buffer, 'no copy');
  const plain = new Uint8Array(value);
  const fromPlain = readOscoreOption(plain);
  t.ok(Buffer.isBuffer(fromPlain.kid), 'a Buffer view, so that CBOR writes it as a byte string');
  t.same(shown(fromPlain), shown(option));
});

t.test('readOscoreOption: every malformed value is OscoreError malformed_option (section 8.2 step 2)', async (t) => {
  const cases: [string, string][] = [
    ['00', 'all flags zero but not empty (section 2: SHALL be the empty value)'],
    ['80', 'reserved bit 0x80 (the extension flag byte) without the extension byte'],
    ['8000', 'reserved bit 0x80 with a byte after it: extensions are not ours to read'],
    ['4914', 'reserved bit 0x40'],
    ['2914', 'unassigned bit 0x20'],
    ['06010203040506', 'n = 6: a 6-byte Partial IV'],
    ['0701020304050607', 'n = 7: a 7-byte Partial IV'],
    ['0e01020304050607', 'k, n = 6'],
    ['02', 'n = 2 with no Partial IV bytes'],
    ['0301', 'n = 3 with 1 byte left'],
    ['0d01020304', 'k, n = 5 with 4 bytes left'],
    ['10', 'h with no length byte'],
    ['1103', 'h, n = 3, the Partial IV runs into the length byte\'s place'],
    ['110108', 'h, n=1: kid context length 8 with nothing after it'],
    ['19140837cbf3210017a2', 'h, k: kid context length 8 with 7 bytes left'],
    ['190114ff', 'h, k: kid context length 0xff past the end of the value'],
    ['011400', 'n=1 and a trailing byte without the k flag'],
    ['1014000102', 'h, s=0 and trailing bytes without the k flag'],
  ];
  for (const [value, what] of cases) {
    t.throws(() => readOscoreOption(hex(value)), MALFORMED, `${value}: ${what}`);
  }
  const long = Buffer.concat([hex('08'), Buffer.alloc(255)]);
  t.throws(() => readOscoreOption(long), MALFORMED,
    '256 bytes: longer than the option may be (section 2: 0-255)');
  t.same(shown(readOscoreOption(long.subarray(0, 255))), { partialIv: undefined, kid: '00'.repeat(254), kidContext: undefined }, '255 bytes is fine');
});

t.test('writeOscoreOption: the bytes of Figure 10, and read gives them back', async (t) => {
  const cases: [OscoreOption, string][] = [
    [{}, ''],
    [{ partialIv: hex('14'), kid: hex('') }, '0914'],
    [{ partialIv: hex('14'), kid: hex('00') }, '091400'],
    [{ partialIv: hex('14'), kid: hex(''), kidContext: hex('37cbf3210017a2d3') }, '19140837cbf3210017a2d3'],
    [{ partialIv: hex('00') }, '0100'],
    [{ partialIv: hex('0102030405'), kid: hex('01020304050607') }, '0d010203040501020304050607'],
    [{ kidContext: hex('') }, '1000'],
  ];
  for (const [option, value] of cases) {
    t.equal(writeOscoreOption(option).toString('hex'), value, `-> ${value || "''"}`);
    t.same(shown(readOscoreOption(writeOscoreOption(option))), shown(option), `${value || "''"} reads back`);
  }
});

t.test('writeOscoreOption: misuse is a TypeError', async (t) => {
  t.throws(() => writeOscoreOption({ partialIv: hex('') }), TypeError, 'an empty Partial IV (absent is how to say none)');
  t.throws(() => writeOscoreOption({ partialIv: hex('010203040506') }), TypeError, 'a 6-byte Partial IV');
  t.throws(() => writeOscoreOption({ kidContext: Buffer.alloc(256) }), TypeError, 'a kid context over 255 bytes');
  t.throws(() => writeOscoreOption({ kidContext: Buffer.alloc(250), kid: Buffer.alloc(10) }), TypeError, 'a value over 255 bytes');
});
