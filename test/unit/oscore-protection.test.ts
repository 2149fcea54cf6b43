import { randomBytes } from 'node:crypto';
import { generate, parse } from 'coap-packet';
import t, { type Test } from 'tap';
import { optionNumber } from '../../gateway/src/coap/options.ts';
import {
  MAX_SEQUENCE_NUMBER, OSCORE_ERRORS, OscoreError, aeadAad, aeadNonce, decryptedOptions, deriveContext, partialIvOf,
  protectRequest, protectResponse, readOscoreOption, sealAesCcm, unprotectRequest, unprotectResponse, writeOscoreOption,
  type CoapMessage, type CoapOption, type ProtectedMessage, type SecurityContext,
} from '../../gateway/src/wire/oscore/index.ts';

// Request and response protection between a device (the client) and the gateway (the server),
// with fresh random keys as the fleet makes them: a 16-byte master secret, an 8-byte salt, a
// short device id, the gateway's empty id. Messages cross a real CoAP encoding (coap-packet) on
// the way, as on the wire.

const opt = (number: number, value: string | Buffer): CoapOption => ({ number, value: Buffer.isBuffer(value) ? value : Buffer.from(value) });
const listed = (options: readonly CoapOption[]) => options.map((o) => `${o.number}=${o.value.toString('hex')}`);
const byNumber = (options: readonly CoapOption[]) => [...options].sort((a, b) => a.number - b.number);
const err = (code: keyof typeof OSCORE_ERRORS) => ({ name: 'OscoreError', code });

function pair(extra: { idContext?: Buffer } = {}): { device: SecurityContext; gateway: SecurityContext } {
  const masterSecret = randomBytes(16);
  const masterSalt = randomBytes(8);
  const deviceId = Buffer.from([0x2a]);
  const gatewayId = Buffer.alloc(0);
  return {
    device: deriveContext({ masterSecret, masterSalt, senderId: deviceId, recipientId: gatewayId, ...extra }),
    gateway: deriveContext({ masterSecret, masterSalt, senderId: gatewayId, recipientId: deviceId, ...extra }),
  };
}

/** The datagram a protected message becomes, and what the other side reads from it. */
function overTheWire(message: ProtectedMessage): { outer: CoapOption[]; oscore: Buffer; payload: Buffer; code: string } {
  const datagram = generate({
    code: message.outerCode, messageId: 7, token: Buffer.from('tok'), confirmable: true,
    options: message.outerOptions.map((o) => ({ name: o.number, value: o.value })), payload: message.payload,
  });
  const packet = parse(datagram);
  const outer = packet.options.map((o) => ({ number: optionNumber(o.name), value: o.value }));
  return { outer, oscore: outer.find((o) => o.number === 9)!.value, payload: packet.payload, code: packet.code };
}

const UPLOAD: CoapMessage = {
  code: '0.02',
  options: [
    opt(3, 'gateway.example'), opt(11, 'telemetry'), opt(11, 'temp'), opt(12, Buffer.from([60])), opt(15, 'unit=c'),
    opt(15, 'n=3'), opt(27, Buffer.from([0x0e])), opt(252, randomBytes(8)), opt(65_003, randomBytes(40)),
  ],
  payload: randomBytes(64),
};

t.test('round trip: a request with Uri-Path, Uri-Query, Content-Format, Block1, Echo and Access-Token inside, Uri-Host outside', async (t) => {
  const { device, gateway } = pair();
  const sent = protectRequest(device, 7, UPLOAD);
  t.equal(sent.outerCode, '0.02', 'outer POST');
  t.same(sent.outerOptions.map((o) => o.number), [3, 9], 'only Uri-Host and OSCORE are visible');
  t.equal(sent.outerOptions[0]!.value.toString(), 'gateway.example');
  t.equal(sent.outerOptions[1]!.value.toString('hex'), '09072a', 'k, n=1: Partial IV 07, kid 2a');
  for (const secret of [UPLOAD.payload, UPLOAD.options[7]!.value, UPLOAD.options[8]!.value, Buffer.from('telemetry')]) {
    t.equal(sent.payload.indexOf(secret), -1, 'no inner value or payload appears in the ciphertext');
  }

  const wire = overTheWire(sent);
  const received = unprotectRequest(gateway, readOscoreOption(wire.oscore), wire.payload);
  t.equal(received.sequenceNumber, 7);
  t.equal(received.message.code, '0.02', 'the inner code');
  t.same(listed(received.message.options), listed(UPLOAD.options.filter((o) => o.number !== 3)), 'every inner option, in order');
  t.same(received.message.payload, UPLOAD.payload);
  t.same(listed(decryptedOptions(wire.outer, received.message.options)), listed(byNumber(UPLOAD.options)),
    'joined with the outer Uri-Host: the request as the device made it');
  t.same(received.request, sent.request, 'both sides bind the response to the same kid and Partial IV');

  const answer: CoapMessage = { code: '2.31', options: [opt(27, Buffer.from([0x0e])), opt(14, Buffer.from([30]))], payload: Buffer.alloc(0) };
  const reply = protectResponse(gateway, received.request, answer);
  t.equal(reply.outerCode, '2.04', 'outer 2.04');
  t.same(listed(reply.outerOptions), ['9='], 'the empty OSCORE option: the request\'s nonce is reused');
  const back = overTheWire(reply);
  const got = unprotectResponse(device, sent.request, back.oscore, back.payload);
  t.same({ code: got.code, options: listed(got.options), payload: got.payload.length }, { code: '2.31', options: listed(byNumber(answer.options)), payload: 0 });

  const own = protectResponse(gateway, received.request, { code: '2.04', options: [], payload: Buffer.from('ok') }, { sequenceNumber: 2 ** 33 + 1 });
  t.same(listed(own.outerOptions), ['9=050200000001'], 'n=5: the gateway\'s own Partial IV, no kid');
  const ownBack = overTheWire(own);
  t.equal(unprotectResponse(device, sent.request, ownBack.oscore, ownBack.payload).payload.toString(), 'ok',
    'a response with its own Partial IV verifies (as notifications will)');
  t.not(own.payload.subarray(0, 2).toString('hex'), reply.payload.subarray(0, 2).toString('hex'), 'a different nonce, a different keystream');
});

t.test('round trip with an ID Context: the kid context travels and is checked', async (t) => {
  const idContext = randomBytes(8);
  const { device, gateway } = pair({ idContext });
  const sent = protectRequest(device, 0, { code: '0.01', options: [opt(11, 'config')], payload: Buffer.alloc(0) });
  const wire = overTheWire(sent);
  t.same(readOscoreOption(wire.oscore).kidContext, idContext, 'the kid context is in the option');
  const { message, request } = unprotectRequest(gateway, readOscoreOption(wire.oscore), wire.payload);
  t.same(listed(message.options), [`11=${Buffer.from('config').toString('hex')}`]);
  const reply = overTheWire(protectResponse(gateway, request, { code: '2.05', options: [], payload: Buffer.from('{}') }));
  t.equal(unprotectResponse(device, sent.request, reply.oscore, reply.payload).payload.toString(), '{}');
});

/** Every way a refused decryption can show: the error must be decrypt_failed, carry nothing, say nothing of the bytes. */
function refusedWithoutPlaintext(t: Test, attempt: () => unknown, what: string): void {
  try {
    const leaked = attempt();
    t.fail(`${what}: verified (${JSON.stringify(leaked)?.slice(0, 40)})`);
  } catch (e) {
    t.ok(e instanceof OscoreError && e.code === 'decrypt_failed', `${what}: decrypt_failed`);
    if (e instanceof OscoreError) {
      t.equal(e.request, undefined, `${what}: no binding`);
      t.equal(e.sequenceNumber, undefined, `${what}: no sequence number`);
      t.equal(e.message, 'OSCORE: decryption failed', `${what}: fixed text`);
    }
  }
}

t.test('tampering is decrypt_failed, with no plaintext', async (t) => {
  const { device, gateway } = pair();
  const sent = protectRequest(device, 12, UPLOAD);
  const wire = overTheWire(sent);
  const option = readOscoreOption(wire.oscore);

  const firstBit = Buffer.from(wire.payload);
  firstBit[0]! ^= 0x01;
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, option, firstBit), 'a flipped ciphertext bit');
  const tagBit = Buffer.from(wire.payload);
  tagBit[tagBit.length - 1]! ^= 0x80;
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, option, tagBit), 'a flipped tag bit');
  let verified = 0;
  for (let bit = 0; bit < wire.payload.length * 8; bit += 1) {
    const flipped = Buffer.from(wire.payload);
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    try {
      unprotectRequest(gateway, option, flipped);
      verified += 1;
    } catch (e) {
      if (!(e instanceof OscoreError) || e.code !== 'decrypt_failed') verified += 1000;
    }
  }
  t.equal(verified, 0, `each of the ${wire.payload.length * 8} single-bit flips is decrypt_failed`);
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, option, wire.payload.subarray(0, wire.payload.length - 1)), 'a cut tag');
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, option, wire.payload.subarray(0, 5)), 'shorter than a tag');
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, { ...option, partialIv: partialIvOf(13) }, wire.payload),
    'another Partial IV (another nonce and AAD)');
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, { ...option, kid: Buffer.from([0x2b]) }, wire.payload),
    'a kid that is not this context\'s');
  const other = pair();
  refusedWithoutPlaintext(t, () => unprotectRequest(other.gateway, { ...option, kid: other.gateway.recipientId }, wire.payload),
    'another context\'s keys');
  t.equal(unprotectRequest(gateway, option, wire.payload).sequenceNumber, 12, 'the untouched request still verifies');
});

t.test('a wrong kid context is decrypt_failed, with no plaintext', async (t) => {
  const idContext = randomBytes(8);
  const { device, gateway } = pair({ idContext });
  const wire = overTheWire(protectRequest(device, 3, UPLOAD));
  const option = readOscoreOption(wire.oscore);
  const flipped = Buffer.from(option.kidContext!);
  flipped[0]! ^= 0x01;
  refusedWithoutPlaintext(t, () => unprotectRequest(gateway, { ...option, kidContext: flipped }, wire.payload), 'a flipped kid context');
  const masterSecret = randomBytes(16);
  const otherContext = deriveContext({ masterSecret, senderId: Buffer.alloc(0), recipientId: Buffer.from([0x2a]), idContext: randomBytes(8) });
  const client = deriveContext({ masterSecret, senderId: Buffer.from([0x2a]), recipientId: Buffer.alloc(0), idContext });
  const sentUnderA = overTheWire(protectRequest(client, 0, UPLOAD));
  refusedWithoutPlaintext(t, () => unprotectRequest(otherContext, readOscoreOption(sentUnderA.oscore), sentUnderA.payload),
    'a context with another ID Context, the same secret and ids');
  const noIdContext = deriveContext({ masterSecret, senderId: Buffer.alloc(0), recipientId: Buffer.from([0x2a]) });
  refusedWithoutPlaintext(t, () => unprotectRequest(noIdContext, readOscoreOption(sentUnderA.oscore), sentUnderA.payload),
    'a kid context sent to a context that has none');

  const response = overTheWire(protectResponse(gateway, { kid: device.senderId, partialIv: partialIvOf(3) },
    { code: '2.04', options: [], payload: Buffer.alloc(0) }));
  const request = { kid: device.senderId, partialIv: partialIvOf(3) };
  refusedWithoutPlaintext(t, () => unprotectResponse(device, request, writeOscoreOption({ kidContext: randomBytes(8) }), response.payload),
    'a response naming another kid context');
  refusedWithoutPlaintext(t, () => unprotectResponse(device, request, writeOscoreOption({ kid: Buffer.from([9]) }), response.payload),
    'a response naming a kid that is not the server\'s');
  const flippedResponse = Buffer.from(response.payload);
  flippedResponse[0]! ^= 0x01;
  refusedWithoutPlaintext(t, () => unprotectResponse(device, request, response.oscore, flippedResponse), 'a flipped response bit');
  refusedWithoutPlaintext(t, () => unprotectResponse(device, { ...request, partialIv: partialIvOf(4) }, response.oscore, response.payload),
    'the response of another request (section 7.1: bound by the AAD)');
  refusedWithoutPlaintext(t, () => unprotectResponse(device, request, writeOscoreOption({ partialIv: partialIvOf(0) }), response.payload),
    'a Partial IV added to a response that reused the request\'s nonce');
});

t.test('malformed options and missing parts are malformed_option', async (t) => {
  const { device, gateway } = pair();
  const wire = overTheWire(protectRequest(device, 1, UPLOAD));
  const option = readOscoreOption(wire.oscore);
  t.throws(() => unprotectRequest(gateway, { kid: option.kid! }, wire.payload), err('malformed_option'), 'a request without Partial IV');
  t.throws(() => unprotectRequest(gateway, { partialIv: option.partialIv! }, wire.payload), err('malformed_option'), 'a request without kid');
  t.throws(() => unprotectRequest(gateway, option, Buffer.alloc(0)), err('malformed_option'), 'no payload (section 2)');
  const request = { kid: device.senderId, partialIv: partialIvOf(1) };
  t.throws(() => unprotectResponse(device, request, Buffer.from('0601020304050607', 'hex'), wire.payload), err('malformed_option'),
    'a response option with a 6-byte Partial IV');
  t.throws(() => unprotectResponse(device, request, Buffer.alloc(0), Buffer.alloc(0)), err('malformed_option'), 'a response without payload');
});

t.test('a plaintext that verifies but is no message of its kind is malformed_plaintext, with the binding', async (t) => {
  const { device, gateway } = pair();
  const partialIv = partialIvOf(40);
  const request = { kid: device.senderId, partialIv };
  const sealed = (plaintext: string) => sealAesCcm(device.senderKey, aeadNonce(device.commonIv, device.senderId, partialIv), aeadAad(request),
    Buffer.from(plaintext, 'hex'));
  const cases: [string, string][] = [['01ff', 'a payload marker with no payload'], ['45', 'a response code in a request'], ['', 'no code']];
  for (const [plaintext, what] of cases) {
    try {
      unprotectRequest(gateway, { kid: device.senderId, partialIv }, sealed(plaintext));
      t.fail(what);
    } catch (e) {
      t.match(e, { name: 'OscoreError', code: 'malformed_plaintext', sequenceNumber: 40 }, what);
      t.same((e as OscoreError).request, request, `${what}: the binding, so the 4.00 can be protected`);
    }
  }
  const responseSealed = sealAesCcm(gateway.senderKey, aeadNonce(gateway.commonIv, device.senderId, partialIv), aeadAad(request),
    Buffer.from('01', 'hex'));
  t.throws(() => unprotectResponse(device, request, Buffer.alloc(0), responseSealed), err('malformed_plaintext'), 'a request code in a response');
});

t.test('Observe: FETCH and 2.05 outside, the value inside the request and outside the notification', async (t) => {
  const { device, gateway } = pair();
  const sent = protectRequest(device, 5, { code: '0.01', options: [opt(6, Buffer.alloc(0)), opt(11, 'temp')], payload: Buffer.alloc(0) });
  t.equal(sent.outerCode, '0.05', 'outer FETCH (section 4.1.3.5: POST with Observe is not defined)');
  t.same(listed(sent.outerOptions).slice(0, 1), ['6='], 'the outer Observe: registration (0, the empty value)');
  const wire = overTheWire(sent);
  const { message, request } = unprotectRequest(gateway, readOscoreOption(wire.oscore), wire.payload);
  t.same(listed(message.options), ['6=', `11=${Buffer.from('temp').toString('hex')}`], 'the inner Observe and Uri-Path');
  const notification = protectResponse(gateway, request, { code: '2.05', options: [opt(6, Buffer.from([0x01, 0x00])), opt(12, Buffer.from([60]))],
    payload: Buffer.from([0x18, 0x19]) }, { sequenceNumber: 9 });
  t.equal(notification.outerCode, '2.05', 'outer 2.05 for a notification');
  t.same(listed(notification.outerOptions), ['6=0100', '9=0109'], 'the outer Observe value and the own Partial IV');
  const back = overTheWire(notification);
  const got = unprotectResponse(device, sent.request, back.oscore, back.payload);
  t.same(listed(got.options), ['6=', '12=3c'], 'inside: an empty Observe (section 4.1.3.5.2)');
});

t.test('caller misuse is a TypeError, never a wrong message', async (t) => {
  const { device, gateway } = pair();
  const get: CoapMessage = { code: '0.01', options: [opt(11, 'x')], payload: Buffer.alloc(0) };
  const request = { kid: device.senderId, partialIv: partialIvOf(0) };
  t.throws(() => protectRequest(device, 2 ** 40, get), TypeError, 'sequence number 2^40 (section 7.2.1: less than 2^40)');
  t.equal(readOscoreOption(protectRequest(device, MAX_SEQUENCE_NUMBER, get).outerOptions[0]!.value).partialIv?.toString('hex'),
    'ffffffffff', '2^40 - 1 is the last one, 5 bytes');
  for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) t.throws(() => protectRequest(device, bad, get), TypeError, `sequence number ${bad}`);
  t.throws(() => protectResponse(gateway, request, { code: '2.05', options: [], payload: Buffer.alloc(0) }, { sequenceNumber: 2 ** 40 }), TypeError,
    'an own sequence number of 2^40');
  t.throws(() => protectRequest(device, 0, { ...get, code: '2.05' }), TypeError, 'a response code in protectRequest');
  t.throws(() => protectRequest(device, 0, { ...get, code: '0.00' }), TypeError, 'the Empty code');
  t.throws(() => protectResponse(gateway, request, get), TypeError, 'a request code in protectResponse');
  t.throws(() => protectRequest(device, 0, { ...get, options: [opt(35, 'coap://h/p?q')] }), TypeError, 'a Proxy-Uri (section 4.1.3.3)');
  t.throws(() => protectRequest(device, 0, { ...get, options: [opt(9, '')] }), TypeError, 'an OSCORE option inside (nested OSCORE)');
  t.throws(() => protectResponse(gateway, request, { code: '2.05', options: [opt(9, '')], payload: Buffer.alloc(0) }), TypeError,
    'an OSCORE option in a response');
});

t.test('the section 8.2 errors and their CoAP codes', async (t) => {
  t.same(Object.fromEntries(Object.entries(OSCORE_ERRORS).map(([code, row]) => [code, [row.coap, row.protectedAnswer]])), {
    malformed_option: ['4.02', false],
    unknown_context: ['4.01', false],
    decrypt_failed: ['4.00', false],
    replay: ['4.01', false],
    malformed_plaintext: ['4.00', true],
  });
  const replay = new OscoreError('replay');
  t.equal(replay.coapCode, '4.01');
  t.equal(replay.message, 'OSCORE: replay detected');
  t.ok(replay instanceof Error);
});
