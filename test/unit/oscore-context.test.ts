import t from 'tap';
import {
  MAX_SEQUENCE_NUMBER, aeadNonce, deriveContext, partialIvOf, sequenceNumberOf,
} from '../../gateway/src/wire/oscore/index.ts';

// Security context derivation's refusals (RFC 8613 section 3.3), the Partial IV (section 5) and
// the nonce's layout (section 5.2). The derived values themselves are checked against Appendix C
// in oscore-vectors.test.ts.

const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const SECRET = hex('0102030405060708090a0b0c0d0e0f10');

t.test('deriveContext: caller misuse is a TypeError', async (t) => {
  const good = { masterSecret: SECRET, senderId: hex(''), recipientId: hex('01') };
  t.ok(deriveContext(good), 'the good input derives');
  t.ok(deriveContext({ ...good, senderId: hex('01020304050607'), recipientId: hex('') }), 'a 7-byte id is the longest (13 - 6)');
  const cases: [string, Record<string, unknown>][] = [
    ['an 8-byte Sender ID', { senderId: hex('0102030405060708') }],
    ['an 8-byte Recipient ID', { recipientId: hex('0102030405060708') }],
    ['a master secret as text', { masterSecret: SECRET.toString('hex') }],
    ['a master secret as an array of numbers', { masterSecret: [...SECRET] }],
    ['an empty master secret', { masterSecret: Buffer.alloc(0) }],
    ['a salt as text', { masterSalt: '9e7ca92223786340' }],
    ['a Sender ID as text', { senderId: '' }],
    ['an ID Context as a number', { idContext: 7 }],
    ['an ID Context over 255 bytes (the kid context length is one byte)', { idContext: Buffer.alloc(256) }],
    ['equal Sender and Recipient IDs (one key and the same nonces both ways)', { senderId: hex('01'), recipientId: hex('01') }],
  ];
  for (const [what, change] of cases) t.throws(() => deriveContext({ ...good, ...change } as typeof good), TypeError, what);
});

t.test('deriveContext: the context owns its bytes, and a plain Uint8Array input works like a Buffer', async (t) => {
  const senderId = Buffer.from([5]);
  const fromBuffer = deriveContext({ masterSecret: SECRET, senderId, recipientId: hex('') });
  senderId[0] = 6;
  t.equal(fromBuffer.senderId.toString('hex'), '05', 'a later change to the input does not reach the context');
  const fromPlain = deriveContext({ masterSecret: new Uint8Array(SECRET), senderId: new Uint8Array([5]), recipientId: new Uint8Array(0) });
  t.same(fromPlain.senderKey, fromBuffer.senderKey, 'same keys from Uint8Arrays (written to CBOR as byte strings, not typed arrays)');
  t.ok(Buffer.isBuffer(fromPlain.senderId), 'ids come out as Buffers');
  t.ok(Object.isFrozen(fromBuffer), 'the context is not to be changed: every message of it uses it');
  t.equal(fromBuffer.idContext, undefined, 'no ID Context');
  const withEmpty = deriveContext({ masterSecret: SECRET, senderId: hex('05'), recipientId: hex(''), idContext: hex('') });
  t.not(withEmpty.senderKey.toString('hex'), fromBuffer.senderKey.toString('hex'), 'an empty ID Context is not nil (section 3.2.1)');
});

t.test('partialIvOf: network byte order, leading zeros removed, 0 as 0x00 (section 5)', async (t) => {
  const cases: [number, string][] = [
    [0, '00'], [1, '01'], [20, '14'], [255, 'ff'], [256, '0100'], [65_535, 'ffff'], [65_536, '010000'],
    [2 ** 32 - 1, 'ffffffff'], [2 ** 32, '0100000000'], [2 ** 32 + 5, '0100000005'], [MAX_SEQUENCE_NUMBER, 'ffffffffff'],
  ];
  for (const [n, value] of cases) {
    t.equal(partialIvOf(n).toString('hex'), value, `${n} -> ${value}`);
    t.equal(sequenceNumberOf(hex(value)), n, `${value} -> ${n}`);
  }
  t.equal(sequenceNumberOf(hex('0014')), 20, 'a leading zero byte reads as the same number');
  for (const bad of [-1, 1.5, Number.NaN, 2 ** 40, 2 ** 53]) t.throws(() => partialIvOf(bad), TypeError, `${bad} is refused`);
});

t.test('aeadNonce: S, the id left-padded to 7 bytes, the Partial IV left-padded to 5, XOR Common IV (Figure 8)', async (t) => {
  const zeroIv = Buffer.alloc(13);
  t.equal(aeadNonce(zeroIv, hex(''), hex('00')).toString('hex'), '00000000000000000000000000', 'empty id, PIV 0');
  t.equal(aeadNonce(zeroIv, hex('01'), hex('14')).toString('hex'), '01000000000000010000000014', 'id 01, PIV 0x14');
  t.equal(aeadNonce(zeroIv, hex('aabbcc'), hex('0102030405')).toString('hex'), '0300000000aabbcc0102030405', '3-byte id, 5-byte PIV');
  t.equal(aeadNonce(zeroIv, hex('01020304050607'), hex('01')).toString('hex'), '07010203040506070000000001', '7-byte id');
  const iv = hex('4622d4dd6d944168eefb54987c');
  t.equal(aeadNonce(iv, hex('01'), hex('14')).toString('hex'), '4722d4dd6d944169eefb549868', 'XOR with the Common IV');
  t.throws(() => aeadNonce(iv, hex('0102030405060708'), hex('01')), TypeError, 'an 8-byte id');
  t.throws(() => aeadNonce(iv, hex('01'), hex('010203040506')), TypeError, 'a 6-byte Partial IV');
  t.throws(() => aeadNonce(Buffer.alloc(12), hex('01'), hex('01')), TypeError, 'a 12-byte Common IV');
});
