import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import t, { type Test } from 'tap';
import {
  CoseFormatError, decodeCoseSign1, signCoseSign1, verifyCoseSign1, type CoseSign1,
} from '../../gateway/src/auth/tokens/cose-sign1.ts';
import { decodeCbor, encodeCbor } from '../../gateway/src/wire/index.ts';

// COSE_Sign1 (RFC 9052 section 4.2) against the published examples, then the strict parser's
// refusals. ECDSA signatures are randomised, so the examples are checked by verifying them, not
// by reproducing their signature bytes.

const hex = (lines: string): Buffer => Buffer.from(lines.replace(/\s+/g, ''), 'hex');
const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** RFC 8392 Appendix A.1, Figure 2: the example CWT Claims Set as a hex string. */
const RFC8392_A1_CLAIMS = hex(`
  a70175636f61703a2f2f61732e6578616d706c652e636f6d02656572696b7703
  7818636f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0
  051a5610d9f0061a5610d9f007420b71`);

/** RFC 8392 Appendix A.2.3: the 256-bit ECDSA key, a COSE_Key (kid 'AsymmetricECDSA256'). */
const RFC8392_A23_KEY = hex(`
  a72358206c1382765aec5358f117733d281c1c7bdc39884d04a45a1e6c67c858bc206c19
  22582060f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b9
  215820143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f
  2001010202524173796d6d657472696345434453413235360326`);

/** RFC 8392 Appendix A.3, Figure 10: the signed CWT (ES256, the key of A.2.3) as a hex string. */
const RFC8392_A3_SIGNED_CWT = hex(`
  d28443a10126a104524173796d6d657472696345434453413235365850a701756
  36f61703a2f2f61732e6578616d706c652e636f6d02656572696b77037818636f
  61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a5610d
  9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e601d6f
  a29f9179bc3d7438bacaca5acd08c8d4d4f96131680c429a01f85951ecee743a5
  2b9b63632c57209120e1c9e30`);

/**
 * RFC 9052 Appendix C.2.1, "Single ECDSA Signature": 18([h'a10126', {4: '11'}, 'This is the
 * content.', signature]). The RFC prints it in diagnostic notation only; these bytes are the
 * cose-wg Examples' RFC8152/Appendix_C_2_1.json output (the same example in RFC 8152 C.2.1).
 */
const RFC9052_C21_SIGN1 = hex(`
  D28443A10126A10442313154546869732069732074686520636F6E74656E742E
  58408EB33E4CA31D1C465AB05AAC34CC6B23D58FEF5C083106C4D25A91AEF0B0
  117E2AF9A291AA32E14AB834DC56ED2A223444547E01F11D3B0916E5A4C345CA
  CB36`);

/**
 * Key "11" of the cose-wg Examples (RFC 9052 Appendix C.7.1 public, C.7.2 private), as the
 * Examples spell it (e.g. sign1-tests/sign-pass-01.json). In hex, RFC 9052 C.7:
 * x h'bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff',
 * y h'20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e',
 * d h'57c92077664146e876760c9520d054aa93c3afb04e306705db6090308507b4d3'.
 */
const COSE_WG_KEY_11 = {
  kty: 'EC', crv: 'P-256',
  x: 'usWxHK2PmfnHKwXPS54m0kTcGJ90UiglWiGahtagnv8',
  y: 'IBOL-C3BttVivg-lSreASjpkttcsz-1rb7btKLv8EX4',
  d: 'V8kgd2ZBRuh2dgyVINBUqpPDr7BOMGcF22CQMIUHtNM',
};

/** The A.2.3 COSE_Key as a JWK: -1 crv (1 = P-256), -2 x, -3 y, -4 d (RFC 9053 section 7.1.1). */
function a23Jwk(): { kty: string; crv: string; x: string; y: string; d: string; kid: Buffer } {
  const key = decodeCbor(RFC8392_A23_KEY) as Map<number, unknown>;
  if (key.get(1) !== 2 || key.get(-1) !== 1) throw new Error('A.2.3 is not an EC2 P-256 key');
  const part = (label: number) => b64url(key.get(label) as Uint8Array);
  return { kty: 'EC', crv: 'P-256', x: part(-2), y: part(-3), d: part(-4), kid: Buffer.from(key.get(2) as Uint8Array) };
}

function keyPair(jwk: { kty: string; crv: string; x: string; y: string; d: string }) {
  const { kty, crv, x, y, d } = jwk;
  return {
    publicKey: createPublicKey({ key: { kty, crv, x, y }, format: 'jwk' }),
    privateKey: createPrivateKey({ key: { kty, crv, x, y, d }, format: 'jwk' }),
  };
}

function flip(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

function refuses(t: Test, bytes: Uint8Array, what: string): void {
  let err: unknown;
  try {
    decodeCoseSign1(bytes);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof CoseFormatError, `${what}: refused with a CoseFormatError${err instanceof Error && !(err instanceof CoseFormatError) ? ` (got ${err.name}: ${err.message})` : ''}`);
}

/** A change to a message we signed: either the parser refuses it or the signature fails. */
function doesNotVerify(t: Test, bytes: Uint8Array, publicKey: KeyObject, what: string, externalAad?: Uint8Array): void {
  let message: CoseSign1;
  try {
    message = decodeCoseSign1(bytes);
  } catch (err) {
    t.ok(err instanceof CoseFormatError, `${what}: refused by the parser`);
    return;
  }
  t.equal(verifyCoseSign1(message, publicKey, externalAad), false, `${what}: parses, but does not verify`);
}

t.test('RFC 8392 Appendix A.3: the signed CWT, with the key of A.2.3', async (t) => {
  const jwk = a23Jwk();
  t.equal(jwk.x, b64url(hex('143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f')), 'x of A.2.3');
  t.equal(jwk.kid.toString(), 'AsymmetricECDSA256', 'the kid of A.2.3');
  const { publicKey, privateKey } = keyPair(jwk);

  const message = decodeCoseSign1(RFC8392_A3_SIGNED_CWT);
  t.equal(message.alg, 'ES256', 'alg ES256');
  t.equal(message.kid.toString(), 'AsymmetricECDSA256', "kid 'AsymmetricECDSA256'");
  t.equal(message.protectedBytes.toString('hex'), 'a10126', 'the protected header as sent: {1: -7}');
  t.ok(message.payload.equals(RFC8392_A1_CLAIMS), 'the payload is the claims set of A.1, byte for byte');
  t.equal(verifyCoseSign1(message, publicKey), true, 'the published signature verifies');

  const claims = decodeCbor(message.payload);
  t.same(claims, decodeCbor(RFC8392_A1_CLAIMS), 'the decoded claims equal A.1');
  t.ok(claims instanceof Map, 'the claims are a Map with integer labels');
  const c = claims as Map<number, unknown>;
  t.same([...c.keys()], [1, 2, 3, 4, 5, 6, 7], 'labels iss, sub, aud, exp, nbf, iat, cti');
  t.equal(c.get(1), 'coap://as.example.com', 'iss');
  t.equal(c.get(2), 'erikw', 'sub');
  t.equal(c.get(3), 'coap://light.example.com', 'aud');
  t.equal(c.get(4), 1444064944, 'exp');
  t.equal(c.get(5), 1443944944, 'nbf');
  t.equal(c.get(6), 1443944944, 'iat');
  t.equal(Buffer.from(c.get(7) as Uint8Array).toString('hex'), '0b71', 'cti');

  const payloadStart = RFC8392_A3_SIGNED_CWT.indexOf(RFC8392_A1_CLAIMS);
  const signatureStart = RFC8392_A3_SIGNED_CWT.length - 64;
  for (const [at, what] of [[payloadStart + 3, 'a payload byte'], [signatureStart + 10, 'a signature byte'],
    [signatureStart - 3, 'the last claim byte']] as const) {
    const flipped = decodeCoseSign1(flip(RFC8392_A3_SIGNED_CWT, at));
    t.equal(verifyCoseSign1(flipped, publicKey), false, `${what} flipped: does not verify`);
  }
  t.equal(verifyCoseSign1(message, publicKey, Buffer.from('x')), false, 'nor with an external AAD it was not signed with');

  const ours = signCoseSign1(RFC8392_A1_CLAIMS, { alg: 'ES256', kid: jwk.kid, privateKey });
  t.ok(ours.subarray(0, -64).equals(RFC8392_A3_SIGNED_CWT.subarray(0, -64)), 'ours is the RFC\'s byte for byte, up to the signature');
  t.equal(verifyCoseSign1(decodeCoseSign1(ours), publicKey), true, 'a message we sign with the same key verifies');
});

t.test('RFC 9052 Appendix C.2.1: a single ECDSA P-256 signature, key "11"', async (t) => {
  const { publicKey, privateKey } = keyPair(COSE_WG_KEY_11);
  t.equal(Buffer.from(COSE_WG_KEY_11.d, 'base64url').toString('hex'),
    '57c92077664146e876760c9520d054aa93c3afb04e306705db6090308507b4d3', 'd of key "11" as RFC 9052 C.7.2 prints it');

  // C.2.1 is tagged (18), its protected header is exactly {1: -7} and its unprotected header
  // exactly {4: '11'} with the kid a byte string: the strict parser takes it as it is.
  t.equal(RFC9052_C21_SIGN1[0], 0xd2, 'C.2.1 is tagged 18');
  const message = decodeCoseSign1(RFC9052_C21_SIGN1);
  t.equal(message.alg, 'ES256', 'alg ES256');
  t.equal(message.kid.toString(), '11', "kid '11'");
  t.equal(message.payload.toString(), 'This is the content.', 'the content');
  t.equal(verifyCoseSign1(message, publicKey), true, 'the published signature verifies');
  // The same check on a hand-built CoseSign1, so it does not rest on the parser.
  const handBuilt: CoseSign1 = {
    alg: 'ES256', kid: Buffer.from('11'), protectedBytes: hex('a10126'),
    payload: Buffer.from('This is the content.'), signature: RFC9052_C21_SIGN1.subarray(-64),
  };
  t.equal(verifyCoseSign1(handBuilt, publicKey), true, 'and verifies built by hand');
  t.equal(verifyCoseSign1({ ...handBuilt, payload: Buffer.from('This is the content!') }, publicKey), false,
    'another content does not');

  for (const at of [12, RFC9052_C21_SIGN1.length - 1, RFC9052_C21_SIGN1.length - 40]) {
    t.equal(verifyCoseSign1(decodeCoseSign1(flip(RFC9052_C21_SIGN1, at)), publicKey), false, `byte ${at} flipped: does not verify`);
  }
  const ours = signCoseSign1(Buffer.from('This is the content.'), { alg: 'ES256', kid: Buffer.from('11'), privateKey });
  t.ok(ours.subarray(0, -64).equals(RFC9052_C21_SIGN1.subarray(0, -64)), 'ours is the example byte for byte, up to the signature');
  t.equal(verifyCoseSign1(decodeCoseSign1(ours), publicKey), true, 'a message we sign with key "11" verifies');
});

// The pieces of a message, to spell it otherwise.
const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const KID = Buffer.from('kid-1');
const PAYLOAD = encodeCbor(new Map<number, unknown>([[1, 'coap://as.example'], [2, 'device-7'], [4, 2000000000]]));
const PROTECTED = encodeCbor(new Map([[1, -7]]));

/** A COSE_Sign1 with a good ES256 signature over whatever protected header it is given. */
function signedOver(protectedBytes: Buffer, unprotected: unknown = new Map([[4, KID]]), payload = PAYLOAD,
  signatureBytes = 64): Buffer {
  const toBeSigned = encodeCbor(['Signature1', protectedBytes, Buffer.alloc(0), payload]);
  let signature = sign('sha256', toBeSigned, { key: es.privateKey, dsaEncoding: 'ieee-p1363' });
  if (signatureBytes !== 64) signature = Buffer.concat([signature, Buffer.alloc(1)]).subarray(0, signatureBytes);
  return Buffer.concat([Buffer.of(0xd2), encodeCbor([protectedBytes, unprotected, payload, signature])]);
}

t.test('what the strict parser refuses', async (t) => {
  const good = signCoseSign1(PAYLOAD, { alg: 'ES256', kid: KID, privateKey: es.privateKey });
  t.ok(signedOver(PROTECTED).subarray(0, -64).equals(good.subarray(0, -64)), 'the test builder spells the message as signCoseSign1 does');
  t.equal(verifyCoseSign1(decodeCoseSign1(good), es.publicKey), true, 'the baseline parses and verifies');
  t.equal(verifyCoseSign1(decodeCoseSign1(signedOver(PROTECTED)), es.publicKey), true, 'and so does the test builder\'s');

  const untagged = good.subarray(1);
  t.equal(untagged[0], 0x84, 'untagged starts 0x84');
  refuses(t, untagged, 'untagged');
  refuses(t, Buffer.concat([Buffer.of(0xd8, 0x3d), good]), 'tag 61 (CWT) wrapping the tagged message');
  refuses(t, Buffer.concat([Buffer.of(0xd8, 0x3d), untagged]), 'tag 61 instead of 18');
  refuses(t, Buffer.concat([Buffer.of(0xd1), untagged]), 'tag 17 (COSE_Mac0) instead of 18');
  refuses(t, Buffer.concat([Buffer.of(0xd8, 0x12), untagged]), 'tag 18 in a two-byte head');
  refuses(t, Buffer.concat([Buffer.of(0xd2), good]), 'tag 18 nested twice');
  refuses(t, Buffer.of(0xd2), 'the tag alone');
  refuses(t, Buffer.alloc(0), 'nothing');

  const m = decodeCoseSign1(good);
  const unprotected = new Map([[4, KID]]);
  refuses(t, Buffer.concat([Buffer.of(0xd2), encodeCbor([m.protectedBytes, unprotected, m.payload])]), 'an array of 3');
  refuses(t, Buffer.concat([Buffer.of(0xd2), encodeCbor([m.protectedBytes, unprotected, m.payload, m.signature, Buffer.alloc(0)])]),
    'an array of 5');
  refuses(t, Buffer.concat([good, Buffer.of(0x00)]), 'a trailing byte');
  refuses(t, good.subarray(0, -1), 'a byte short');

  refuses(t, signedOver(encodeCbor(new Map([[1, -7], [3, 0]]))), 'protected header {1: -7, 3: 0} (an extra header)');
  refuses(t, signedOver(encodeCbor(new Map([[1, -35]]))), 'protected header alg -35 (ES384)');
  refuses(t, signedOver(encodeCbor(new Map([[1, 'ES256']]))), "protected header alg 'ES256' as text");
  refuses(t, signedOver(encodeCbor(new Map())), 'an empty protected header map');
  refuses(t, signedOver(Buffer.alloc(0)), 'a zero-length protected header');
  refuses(t, signedOver(encodeCbor(new Map([[4, KID]]))), 'the kid in the protected header instead of alg');

  refuses(t, signedOver(PROTECTED, new Map<number, unknown>([[4, KID], [3, 0]])), 'unprotected with an extra label');
  refuses(t, signedOver(PROTECTED, new Map<number, unknown>([[1, -7], [4, KID]])), 'unprotected carrying alg too');
  refuses(t, signedOver(PROTECTED, new Map([[4, 'kid-1']])), 'unprotected kid as text');
  refuses(t, signedOver(PROTECTED, new Map()), 'an empty unprotected header');
  refuses(t, signedOver(PROTECTED, new Map([[4, KID]]), PAYLOAD, 63), 'a signature of 63 bytes');
  refuses(t, signedOver(PROTECTED, new Map([[4, KID]]), PAYLOAD, 65), 'a signature of 65 bytes');
  refuses(t, Buffer.concat([Buffer.of(0xd2), encodeCbor([m.protectedBytes, unprotected, null, m.signature])]), 'a nil (detached) payload');
  refuses(t, Buffer.concat([Buffer.of(0xd2), encodeCbor([m.protectedBytes, unprotected, m.payload.toString('latin1'), m.signature])]),
    'a text payload');

  // Non-shortest heads: each element written by hand with a longer head than needed.
  const bstr = (bytes: Buffer, head: number[]) => Buffer.concat([Buffer.from(head), bytes]);
  const spelled = (payloadItem: Buffer, signatureItem = encodeCbor(m.signature), unprotectedItem = encodeCbor(unprotected),
    protectedItem = encodeCbor(m.protectedBytes)) =>
    Buffer.concat([Buffer.of(0xd2, 0x84), protectedItem, unprotectedItem, payloadItem, signatureItem]);
  t.ok(spelled(encodeCbor(m.payload)).equals(good), 'the hand-spelling in shortest form is the message itself');
  t.ok(PAYLOAD.length < 256 && PAYLOAD.length >= 24, 'the payload\'s shortest head is 0x58 len');
  refuses(t, spelled(bstr(m.payload, [0x59, 0x00, PAYLOAD.length])), 'the payload length as 0x59 00 xx');
  refuses(t, spelled(bstr(m.payload, [0x5a, 0, 0, 0, PAYLOAD.length])), 'the payload length as 0x5a 00 00 00 xx');
  refuses(t, spelled(encodeCbor(m.payload), bstr(m.signature, [0x59, 0x00, 0x40])), 'the signature length as 0x59 00 40');
  refuses(t, spelled(encodeCbor(m.payload), undefined, Buffer.concat([Buffer.of(0xb9, 0x00, 0x01), encodeCbor(4), encodeCbor(KID)])),
    'the unprotected map head as 0xb9 00 01');
  refuses(t, spelled(encodeCbor(m.payload), undefined, undefined, bstr(m.protectedBytes, [0x58, 0x03])),
    'the protected bstr length as 0x58 03');
  refuses(t, spelled(Buffer.concat([Buffer.of(0x5f), encodeCbor(m.payload), Buffer.of(0xff)])), 'the payload as an indefinite-length bstr');
  refuses(t, Buffer.concat([Buffer.of(0xd2, 0x9f), encodeCbor(m.protectedBytes), encodeCbor(unprotected), encodeCbor(m.payload),
    encodeCbor(m.signature), Buffer.of(0xff)]), 'an indefinite-length array');
});

t.test('changes to a message we signed: the parser refuses it or the signature fails', async (t) => {
  const good = signCoseSign1(PAYLOAD, { alg: 'ES256', kid: KID, privateKey: es.privateKey });
  const payloadAt = good.indexOf(PAYLOAD);
  t.ok(payloadAt > 0, 'the payload is in the message');
  for (let i = 0; i < PAYLOAD.length; i += 7) doesNotVerify(t, flip(good, payloadAt + i), es.publicKey, `payload byte ${i} flipped`);
  for (const i of [0, 31, 32, 63]) doesNotVerify(t, flip(good, good.length - 64 + i), es.publicKey, `signature byte ${i} flipped`);

  // The protected header is d2 84 43 [a1 01 26]: relabel alg -7 (0x26) as -8 (0x27), EdDSA.
  t.equal(good.subarray(3, 6).toString('hex'), 'a10126', 'the protected header where it belongs');
  const relabelled = Buffer.from(good);
  relabelled[5] = 0x27;
  const asEdDSA = decodeCoseSign1(relabelled);
  t.equal(asEdDSA.alg, 'EdDSA', 'an ES256 token relabelled -8 parses as EdDSA');
  t.equal(verifyCoseSign1(asEdDSA, es.publicKey), false, 'and verifies with its own ES256 key no more');
  const ed = generateKeyPairSync('ed25519');
  t.equal(verifyCoseSign1(asEdDSA, ed.publicKey), false, 'nor with any Ed25519 key');

  // The unprotected kid is not signed: changing it changes only which key the caller picks.
  const otherKid = Buffer.from(good);
  otherKid[otherKid.indexOf(KID) + KID.length - 1] = 0x32; // kid-2
  t.equal(decodeCoseSign1(otherKid).kid.toString(), 'kid-2', 'another kid parses');
  t.equal(verifyCoseSign1(decodeCoseSign1(otherKid), es.publicKey), true, 'and, being unprotected, still verifies with the key');
});

t.test('EdDSA: sign, verify, and not across algorithms', async (t) => {
  const ed = generateKeyPairSync('ed25519');
  const aad = Buffer.from('coap://gw.example|devices|rid-42');
  const bytes = signCoseSign1(PAYLOAD, { alg: 'EdDSA', kid: KID, privateKey: ed.privateKey }, aad);
  t.equal(bytes.subarray(0, 6).toString('hex'), 'd28443a10127', 'tagged, protected header {1: -8}');
  const message = decodeCoseSign1(bytes);
  t.equal(message.alg, 'EdDSA', 'alg EdDSA');
  t.ok(message.kid.equals(KID), 'the kid');
  t.ok(message.payload.equals(PAYLOAD), 'the payload');
  t.equal(message.signature.length, 64, 'a 64-byte signature');
  t.equal(verifyCoseSign1(message, ed.publicKey, aad), true, 'verifies with the external AAD');
  t.equal(verifyCoseSign1(message, ed.publicKey), false, 'not without it');
  t.equal(verifyCoseSign1(message, ed.publicKey, Buffer.from('coap://gw.example|devices|rid-43')), false, 'nor with another');
  t.equal(verifyCoseSign1(message, generateKeyPairSync('ed25519').publicKey, aad), false, 'nor with another Ed25519 key');
  doesNotVerify(t, flip(bytes, bytes.length - 1), ed.publicKey, 'a signature byte flipped', aad);
  doesNotVerify(t, flip(bytes, bytes.indexOf(PAYLOAD) + 2), ed.publicKey, 'a payload byte flipped', aad);

  let result: boolean | undefined;
  t.doesNotThrow(() => { result = verifyCoseSign1(message, es.publicKey, aad); }, 'an ES256 key on an EdDSA message does not throw');
  t.equal(result, false, 'and does not verify');
  const esMessage = decodeCoseSign1(signCoseSign1(PAYLOAD, { alg: 'ES256', kid: KID, privateKey: es.privateKey }, aad));
  t.equal(verifyCoseSign1(esMessage, es.publicKey, aad), true, 'the ES256 message with the same AAD verifies');
  t.doesNotThrow(() => { result = verifyCoseSign1(esMessage, ed.publicKey, aad); }, 'an Ed25519 key on an ES256 message does not throw');
  t.equal(result, false, 'and does not verify');
  // The algorithm is signed: an ES256 message claiming EdDSA fails with either key.
  t.equal(verifyCoseSign1({ ...esMessage, alg: 'EdDSA' }, es.publicKey, aad), false, 'an ES256 signature read as EdDSA fails');
});

// Other spellings of {1: -7}: the signature covers them, so only the key holder could make one,
// but one token still has one spelling (each other would be a cache miss and a signature check).
t.test('the protected header has one spelling too', async (t) => {
  for (const [header, what] of [['a1013806', 'alg -7 in a two-byte head (0x38 06)'], ['a201260126', 'label 1 twice'],
    ['a101f9c700', 'alg as the half float -7.0']] as const) {
    let err: unknown;
    try {
      decodeCoseSign1(signedOver(hex(header)));
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof CoseFormatError, `protected header ${header}, ${what}: refused`);
  }
});
