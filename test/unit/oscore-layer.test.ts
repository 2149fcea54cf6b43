import t, { type Test } from 'tap';
import { generate, type Option as PacketOption } from 'coap-packet';
import type { OscoreDevice } from '../../gateway/src/coap/oscore-layer.ts';
import {
  OSCORE_OPTION, deriveContext, protectRequest, unprotectResponse, type CoapMessage, type CoapOption, type RequestBinding,
} from '../../gateway/src/wire/oscore/index.ts';
import { ACCESS_TOKEN_OPTION, ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import {
  ECHO, PEER_A, PEER_B, errorBody, freshMessageId, harness, option, patterned, request, type Sent,
} from '../helpers/endpoint-harness.ts';
import { openFileStore, tempDir } from '../helpers/store-fixtures.ts';

// The OSCORE layer in the whole endpoint stack (RFC 8613), without a socket: a device's side
// protects with the core (itself checked against the RFC's vectors), the gateway's side is the
// layer over the file store's windows. Every refusal of section 8.2 is sent and checked, with
// what reached the handler (nothing) and that the endpoint still serves.

const MASTER_SECRET = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
const MASTER_SALT = Buffer.from('9e7ca92223786340', 'hex');
const DEVICE_SID = Buffer.from([0x01]);
const GATEWAY_SID = Buffer.alloc(0);
const deviceSide = deriveContext({ masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: DEVICE_SID, recipientId: GATEWAY_SID });
const gatewaySide = deriveContext({ masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: GATEWAY_SID, recipientId: DEVICE_SID });
const DEVICE: OscoreDevice = { deviceId: 'sensor-1', generation: 'gen-1', scopes: new Set(['telemetry:write']), context: gatewaySide };

async function oscoreHarness(t: Test, establish = true) {
  const store = await openFileStore(t, await tempDir(t));
  if (establish) await store.oscoreWindows.establish(DEVICE.generation);
  const h = harness(t, {
    oscore: {
      contextOf: async (kid) => (kid.equals(DEVICE_SID) ? DEVICE : undefined),
      windows: store.oscoreWindows,
      maxSequenceBlocks: 4,
    },
  });
  let sequenceNumber = 0;
  /** A protected request as the device sends it: inner options and payload, outer POST with option 9. */
  const protect = (inner: CoapMessage, spec: { seq?: number; type?: 'con' | 'non'; messageId?: number } = {}) => {
    const sealed = protectRequest(deviceSide, spec.seq ?? sequenceNumber++, inner);
    const datagram = generate({
      code: sealed.outerCode, messageId: spec.messageId ?? freshMessageId(), token: Buffer.from('a1b2', 'hex'),
      confirmable: (spec.type ?? 'con') === 'con',
      options: sealed.outerOptions.map((o): PacketOption => ({ name: String(o.number), value: o.value })), payload: sealed.payload,
    }, 65_535);
    return { datagram, binding: sealed.request };
  };
  /** The device's reading of a protected answer. */
  const open = (sent: Sent, binding: RequestBinding): CoapMessage => {
    const value = option(sent, 'OSCORE');
    if (value === undefined) throw new Error(`answer ${sent.packet.code} is not protected`);
    return unprotectResponse(deviceSide, binding, value, sent.packet.payload);
  };
  return { ...h, store, protect, open };
}

const inner = (path: string[], extra: CoapOption[] = [], payload = Buffer.alloc(0), code = '0.02'): CoapMessage => ({
  code, options: [...path.map((p) => ({ number: 11, value: Buffer.from(p) })), ...extra], payload,
});
const innerOption = (message: CoapMessage, number: number) => message.options.find((o) => o.number === number)?.value;

t.test('a protected request reaches the handler as its inner request, proved to be the context\'s device; the answer is protected', async (t) => {
  const h = await oscoreHarness(t);
  h.handler.handleImpl = () => ({ code: '2.04', payload: Buffer.from('stored'), contentFormat: 0 });
  const { datagram, binding } = h.protect(inner(['telemetry', 'temp'], [
    { number: 12, value: Buffer.from([60]) }, { number: ACCESS_TOKEN_OPTION, value: Buffer.from('tok') },
  ], Buffer.from('a1182e', 'hex')));
  const reply = await h.ask(datagram);
  t.equal(reply.packet.code, '2.04', 'outer code 2.04 (RFC 8613 section 4.2)');
  t.same(option(reply, 'OSCORE'), Buffer.alloc(0), 'an empty OSCORE option: the answer reuses the request\'s nonce');
  t.notOk(reply.packet.payload.includes(Buffer.from('stored')), 'the payload is ciphertext');
  const answer = h.open(reply, binding);
  t.equal(answer.code, '2.04');
  t.same(answer.payload, Buffer.from('stored'));
  t.equal(h.handler.handled.length, 1);
  const seen = h.handler.handled[0]!;
  t.same(seen.segments, ['telemetry', 'temp'], 'the inner Uri-Path');
  t.equal(seen.contentFormat, 60);
  t.equal(seen.accessToken, 'tok', 'an Access-Token travels inside');
  t.same(seen.payload, Buffer.from('a1182e', 'hex'), 'the plaintext payload');
  t.same(h.handler.sources[0]!.principal, { deviceId: 'sensor-1', scopes: new Set(['telemetry:write']), by: 'oscore', protection: 'oscore' });
});

t.test('a retransmitted CON gets the stored protected answer, once encrypted; the handler sees the request once', async (t) => {
  const h = await oscoreHarness(t);
  const messageId = freshMessageId();
  const { datagram } = h.protect(inner(['x']), { messageId });
  const first = await h.ask(datagram);
  const again = await h.ask(datagram);
  t.same(again.datagram, first.datagram, 'byte for byte the same answer');
  t.equal(h.handler.handled.length, 1);
});

t.test('section 8.2 refusals go in clear, reach no handler, and the endpoint still serves', async (t) => {
  const h = await oscoreHarness(t);
  const plain = (extra: [number, Buffer][], payload = Buffer.from('00', 'hex')) =>
    request({ code: 'POST', path: [], extra, payload });
  const cases: [string, Buffer, string, number][] = [
    ['an empty OSCORE option in a request', plain([[OSCORE_OPTION, Buffer.alloc(0)]]), '4.02', WireError.badOption],
    ['reserved flag bits', plain([[OSCORE_OPTION, Buffer.from('e90001', 'hex')]]), '4.02', WireError.badOption],
    ['a Partial IV of 6 bytes', plain([[OSCORE_OPTION, Buffer.from('0e01020304050601', 'hex')]]), '4.02', WireError.badOption],
    ['a Partial IV of 7 bytes', plain([[OSCORE_OPTION, Buffer.from('0f0102030405060701', 'hex')]]), '4.02', WireError.badOption],
    ['a kid context length past the end', plain([[OSCORE_OPTION, Buffer.from('19010501', 'hex')]]), '4.02', WireError.badOption],
    ['an unknown kid', plain([[OSCORE_OPTION, Buffer.from('0901ff', 'hex')]]), '4.01', WireError.oscoreUnknownContext],
    ['the known kid, random ciphertext', plain([[OSCORE_OPTION, Buffer.from('090501', 'hex')]], patterned(40)), '4.00', WireError.oscoreDecryptFailed],
  ];
  for (const [what, datagram, code, wire] of cases) {
    const reply = await h.ask(datagram);
    t.equal(reply.packet.code, code, `${what}: ${code}`);
    t.equal(option(reply, 'OSCORE'), undefined, `${what}: not protected`);
    if (reply.packet.payload.length > 0) t.equal(errorBody(reply).get(ErrorKey.code), wire, `${what}: wire code ${wire}`);
    t.ok(reply.datagram.length <= datagram.length, `${what}: ${reply.datagram.length} <= ${datagram.length} bytes`);
  }
  t.equal(h.handler.handled.length + h.handler.admitted.length, 0, 'nothing reached the handler');
  const { datagram, binding } = h.protect(inner(['still']));
  t.equal(h.open(await h.ask(datagram), binding).code, '2.05', 'a good request still gets its answer');
});

t.test('a flipped ciphertext bit: 4.00 in clear, nothing decrypted goes up', async (t) => {
  const h = await oscoreHarness(t);
  const { datagram } = h.protect(inner(['secret-path'], [], Buffer.from('reading')));
  const flipped = Buffer.from(datagram);
  flipped[flipped.length - 3]! ^= 0x04;
  const reply = await h.ask(flipped);
  t.equal(reply.packet.code, '4.00');
  t.equal(errorBody(reply).get(ErrorKey.code), WireError.oscoreDecryptFailed);
  t.equal(h.handler.handled.length, 0);
});

t.test('a replayed datagram (a new message ID, the same Partial IV) is refused 4.01 in clear; the handler saw it once', async (t) => {
  const h = await oscoreHarness(t);
  const { datagram } = h.protect(inner(['telemetry']));
  await h.ask(datagram);
  const replayed = Buffer.from(datagram);
  replayed.writeUInt16BE(freshMessageId(), 2);
  const reply = await h.ask(replayed, PEER_B);
  t.equal(reply.packet.code, '4.01');
  t.equal(errorBody(reply).get(ErrorKey.code), WireError.oscoreReplay);
  t.equal(option(reply, 'OSCORE'), undefined);
  t.equal(h.handler.handled.length, 1);
  // Older than the window (32): a replay too, though never seen.
  const late = h.protect(inner(['telemetry']), { seq: 100 });
  await h.ask(late.datagram);
  const old = h.protect(inner(['telemetry']), { seq: 100 - 33 });
  t.equal((await h.ask(old.datagram)).packet.code, '4.01', 'below the window');
  const inWindow = h.protect(inner(['telemetry']), { seq: 100 - 5 });
  t.equal(h.open(await h.ask(inWindow.datagram), inWindow.binding).code, '2.05', 'within the window and unseen: fresh');
});

t.test('no window held (a restart): a protected 4.01 with Echo and a Partial IV of the gateway\'s, then the repeat succeeds', async (t) => {
  const h = await oscoreHarness(t, false);
  const first = h.protect(inner(['telemetry'], [], Buffer.from('v1')));
  const challenge = await h.ask(first.datagram);
  t.equal(challenge.packet.code, '2.04', 'protected: outer 2.04');
  t.ok(option(challenge, 'OSCORE')!.length > 0, 'with a Partial IV of the gateway\'s own (a new nonce)');
  const opened = h.open(challenge, first.binding);
  t.equal(opened.code, '4.01');
  const echo = innerOption(opened, ECHO);
  t.ok(echo !== undefined && echo.length > 0, 'an Echo option inside');
  t.equal(h.handler.handled.length, 0, 'the request was not acted on');
  const repeat = h.protect(inner(['telemetry'], [{ number: ECHO, value: echo! }], Buffer.from('v1')));
  const answer = await h.ask(repeat.datagram);
  t.equal(h.open(answer, repeat.binding).code, '2.05', 'the repeat with Echo is served');
  t.equal(h.handler.handled.length, 1);
  t.equal(h.handler.handled[0]!.path, '/telemetry');
  // The first datagram, replayed now, is below the window established at the repeat's number.
  const replay = Buffer.from(first.datagram);
  replay.writeUInt16BE(freshMessageId(), 2);
  t.equal((await h.ask(replay)).packet.code, '4.01', 'the challenged datagram replayed: refused');
  t.equal(h.handler.handled.length, 1);
});

t.test('an Echo value of another context does not re-establish the window', async (t) => {
  const h = await oscoreHarness(t, false);
  const first = h.protect(inner(['x']));
  const echo = innerOption(h.open(await h.ask(first.datagram), first.binding), ECHO)!;
  const forged = Buffer.from(echo);
  forged[forged.length - 1]! ^= 1;
  const repeat = h.protect(inner(['x'], [{ number: ECHO, value: forged }]));
  const again = h.open(await h.ask(repeat.datagram), repeat.binding);
  t.equal(again.code, '4.01', 'challenged again');
  t.equal(h.handler.handled.length, 0);
});

t.test('errors of the layers above are protected too: a rendered 4.04, a bad inner option', async (t) => {
  const h = await oscoreHarness(t);
  const { RequestError } = await import('../../gateway/src/errors.ts');
  h.handler.handleImpl = () => { throw new RequestError('GW_ERR_NOT_FOUND', 'no route'); };
  const notFound = h.protect(inner(['nowhere']));
  const reply = await h.ask(notFound.datagram);
  t.equal(reply.packet.code, '2.04', 'outer 2.04');
  t.equal(h.open(reply, notFound.binding).code, '4.04', 'the 4.04 inside');
  const badInner = h.protect(inner(['x'], [{ number: 19, value: Buffer.alloc(0) }]));
  t.equal(h.open(await h.ask(badInner.datagram), badInner.binding).code, '4.02', 'an unknown critical inner option: protected 4.02');
});

t.test('a whole inner block-wise upload under OSCORE: each block protected, the handler gets the body whole', async (t) => {
  const h = await oscoreHarness(t);
  const body = patterned(3000);
  let answer: CoapMessage | undefined;
  for (let num = 0; num * 1024 < body.length; num += 1) {
    const chunk = body.subarray(num * 1024, (num + 1) * 1024);
    const more = (num + 1) * 1024 < body.length;
    const block1 = Buffer.from([num * 16 + (more ? 8 : 0) + 6]);
    const { datagram, binding } = h.protect(inner(['upload'], [{ number: 27, value: block1 }], chunk));
    answer = h.open(await h.ask(datagram), binding);
    t.equal(answer.code, more ? '2.31' : '2.05', `block ${num}: ${answer.code}, protected`);
  }
  t.equal(h.handler.handled.length, 1);
  t.same(h.handler.handled[0]!.payload, body, '3000 bytes whole');
});

t.test('a device in clear still works beside OSCORE ones, and never takes an OSCORE principal', async (t) => {
  const h = await oscoreHarness(t);
  const reply = await h.ask(request({ accessToken: 'tok', path: ['plain'] }), PEER_A);
  t.equal(reply.packet.code, '2.05');
  t.equal(h.handler.sources[0]!.principal, undefined);
});
