import t from 'tap';
import { Decoder, Encoder, Tag } from 'cbor-x';
import { cborToJson, jsonToCbor } from '../../gateway/src/bridge/cbor-json.ts';
import { RequestError } from '../../gateway/src/errors.ts';

// RFC 8949 section 6.1: CBOR -> JSON for the backend; JSON -> CBOR for the device.

const encoder = new Encoder({ mapsAsObjects: false, useRecords: false });
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
const json = (value: unknown) => JSON.parse(cborToJson(encoder.encode(value))) as unknown;
const fromHex = (hex: string) => JSON.parse(cborToJson(Buffer.from(hex, 'hex'))) as unknown;

t.test('integer map keys become text keys', async (t) => {
  t.same(json(new Map<unknown, unknown>([[1, 'a'], [-2, 'b'], ['x', 'c']])), { 1: 'a', '-2': 'b', x: 'c' });
  t.same(fromHex('a201616102f5'), { 1: 'a', 2: true }, 'the bytes a device sends: {1: "a", 2: true}');
});

t.test('byte strings become unpadded base64url text', async (t) => {
  t.equal(json(Buffer.from([0xfb, 0xff, 0xfe])), '-__-');
  t.equal(json(Buffer.from([1, 2, 3, 4])), 'AQIDBA', 'no = padding');
  t.equal(json(new Uint8Array(0)), '');
});

t.test('nested maps and arrays keep their structure', async (t) => {
  const value = new Map<unknown, unknown>([
    [1, [1, 2.5, 'x', new Map([[3, Buffer.from([0xff])]])]],
    [2, new Map([[4, new Map([[5, null]])]])],
    [3, [[true, false], []]],
  ]);
  t.same(json(value), { 1: [1, 2.5, 'x', { 3: '_w' }], 2: { 4: { 5: null } }, 3: [[true, false], []] });
});

t.test('non-finite numbers and undefined become null; big integers become decimal text', async (t) => {
  t.same(json([NaN, Infinity, -Infinity, undefined]), [null, null, null, null]);
  t.same(fromHex('83f97e00f97c00f7'), [null, null, null], 'half-precision NaN and Infinity, CBOR undefined');
  t.equal(fromHex('1bffffffffffffffff'), '18446744073709551615', 'uint64 beyond 2^53');
  t.equal(fromHex('c249010000000000000000'), '18446744073709551616', 'tag 2 bignum');
  t.equal(fromHex('3bffffffffffffffff'), '-18446744073709551616', 'negative uint64');
});

t.test('tags are dropped to their content (RFC 8949 section 6.1)', async (t) => {
  t.equal(fromHex('d903e81864'), 100, 'unknown tag 1000(100)');
  t.same(json(new Tag(new Map([[1, 'x']]), 40000)), { 1: 'x' }, 'tag around a map');
  t.same(fromHex('d9010282016178'), [1, 'x'], 'tag 258 (set) -> its array');
  t.equal(fromHex('c11a5f5e1000'), 1600000000, 'tag 1 (epoch time): the number, not a date string');
  t.equal(fromHex('c074323031332d30332d32315432303a30343a30305a'), '2013-03-21T20:04:00Z', 'tag 0: the text as sent');
});

t.test('malformed CBOR -> RequestError GW_ERR_BAD_REQUEST (4.00)', async (t) => {
  const cases: [string, string][] = [
    ['a201', 'map missing a value'], ['ff', 'lone break'], ['', 'empty'], ['0102', 'trailing data'],
    ['62616', 'truncated text'], ['5a0000ffff00', 'byte string longer than the body'],
    [`${'81'.repeat(100)}00`, 'nested 100 deep'],
  ];
  for (const [hex, name] of cases) {
    const err = caught(() => cborToJson(Buffer.from(hex, 'hex')));
    t.ok(err instanceof RequestError, `${name}: a RequestError`);
    t.match(err, { code: 'GW_ERR_BAD_REQUEST', coapCode: '4.00' }, `${name}: GW_ERR_BAD_REQUEST, 4.00`);
  }
  t.doesNotThrow(() => cborToJson(Buffer.from(`${'81'.repeat(60)}00`, 'hex')), 'nested 60 deep is fine');
});

t.test('jsonToCbor: the backend JSON round-trips to the same value', async (t) => {
  const texts = [
    '{"interval":60,"name":"lamp","on":true,"off":false,"none":null}',
    '[1,-2,3.25,"ü",[],{}]',
    '{"a":{"b":{"c":[1,{"d":"e"}]}}}',
    '"text"', '42', '-1.5e-7', 'null',
    `{"big":${Number.MAX_SAFE_INTEGER},"neg":${Number.MIN_SAFE_INTEGER}}`,
  ];
  for (const text of texts) {
    const bytes = jsonToCbor(text);
    t.equal(cborToJson(bytes), JSON.stringify(JSON.parse(text)), `${text}: CBOR -> JSON gives it back`);
    t.same(toPlain(decoder.decode(bytes)), JSON.parse(text), `${text}: a device decodes the same value`);
  }
  // Every byte is airtime: the preferred serialization (RFC 8949 section 4.1), a1 not b9 00 01.
  t.equal(jsonToCbor('{"a":1}').toString('hex'), 'a1616101', 'one-byte map header');
  t.equal(jsonToCbor('{"a":{"b":[]}}').toString('hex'), 'a16161a1616280', 'nested maps too');
  t.throws(() => jsonToCbor('{"interval": 6'), SyntaxError, 'bad JSON throws SyntaxError (the bridge maps it to 5.02)');
  t.throws(() => jsonToCbor(''), SyntaxError);
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function toPlain(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), toPlain(v)]));
  if (Array.isArray(value)) return value.map(toPlain);
  return value;
}

t.test('what cbor-x\'s default encoder writes for a plain object (a record, tag 0xdfff) reaches the backend as that object', async (t) => {
  // `require('cbor-x').encode({ celsius: 21.5 })`, the call a firmware test script makes first.
  t.same(fromHex('d9dfff8319e000816763656c73697573fb4035800000000000'), { celsius: 21.5 }, 'not "[object Object]"');
  t.same(json(new Map([['reading', new Encoder().decode(new Encoder().encode({ a: 1, b: [2] }))]])), { reading: { a: 1, b: [2] } },
    'nested, the same');
});

t.test('typed arrays (RFC 8746, tags 64-87) become their bytes as base64url, like any byte string', async (t) => {
  t.same(fromHex('d8404401020304'), 'AQIDBA', 'tag 64, uint8 array');
  t.same(fromHex('d8454401000200'), 'AQACAA', 'tag 69, uint16 little-endian: the bytes as sent');
});

t.test('tag 27 (a language-independent object) is its content, never an object cbor-x builds from it', async (t) => {
  t.same(fromHex('d81b83665265674578706461622b63626769'), ['RegExp', 'ab+c', 'gi'], 'no RegExp');
  t.same(fromHex('d81b82654572726f726178'), ['Error', 'x'], 'no Error with a stack');
});
