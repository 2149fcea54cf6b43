import t from 'tap';
import { createAddressLayer } from '../../gateway/src/coap/address-layer.ts';
import { createAddressValidator } from '../../gateway/src/coap/address-validation.ts';
import type { Answer, Inbound } from '../../gateway/src/coap/layer.ts';
import {
  ECHO, PEER_A, PEER_A_OTHER_PORT, PEER_B, STUB_PRINCIPAL, harness, option, patterned, request,
} from '../helpers/endpoint-harness.ts';

// The address-check layer (RFC 7252 section 11.3, RFC 9175 section 2.4): an answer larger than
// its request goes only to an authenticated request or to an address that echoed the gateway's
// Echo value.

t.test('an answer larger than a tokenless request: 4.01 with Echo, no body, no larger; with the Echo: the answer', async (t) => {
  const h = harness(t);
  const body = patterned(300);
  h.handler.handleImpl = () => ({ code: '2.05', payload: body, contentFormat: 60 });
  const asked = request({ messageId: 0x7a01, token: '7a01' });
  const challenge = await h.ask(asked);
  t.equal(challenge.packet.code, '4.01');
  t.equal(challenge.packet.ack, true, 'piggybacked in the ACK');
  t.equal(challenge.packet.messageId, 0x7a01);
  t.equal(challenge.packet.token.toString('hex'), '7a01');
  t.equal(challenge.packet.payload.length, 0, 'no body');
  t.ok(challenge.datagram.length <= asked.length, `${challenge.datagram.length} <= ${asked.length} bytes`);
  const echo = option(challenge, String(ECHO));
  if (echo === undefined) {
    t.fail('the 4.01 carries an Echo option');
    return;
  }
  t.equal(h.counts.challenged, 1, 'the challenge is reported');
  h.endpoint.handle(asked, PEER_A);
  t.ok(h.sent.at(-1)?.datagram.equals(challenge.datagram), 'a duplicate of the request gets the stored 4.01 again');

  const proved = await h.ask(request({ token: '7a02', extra: [[ECHO, echo]] }));
  t.equal(proved.packet.code, '2.05', 'the request repeated with the Echo value is answered');
  t.ok(proved.packet.payload.equals(body), 'in full');
  const otherPort = await h.ask(request({ token: '7a03', extra: [[ECHO, echo]] }), PEER_A_OTHER_PORT);
  t.equal(otherPort.packet.code, '2.05', 'the Echo value proves the address, whatever the port');
  const elsewhere = await h.ask(request({ token: '7a04', extra: [[ECHO, echo]] }), PEER_B);
  t.equal(elsewhere.packet.code, '4.01', 'another address cannot use it');
  t.notOk(option(elsewhere, String(ECHO))?.equals(echo), 'and gets an Echo value of its own');
  h.advanceMs(121_000);
  const stale = await h.ask(request({ token: '7a05', extra: [[ECHO, echo]] }));
  t.equal(stale.packet.code, '4.01', 'over two minutes later the value is refused');
  t.equal(h.counts.challenged, 3);

  const non = request({ type: 'non', token: '7a06' });
  const nonChallenge = await h.ask(non);
  t.equal(nonChallenge.packet.code, '4.01', 'a NON request: the same');
  t.equal(nonChallenge.packet.confirmable || nonChallenge.packet.ack, false, 'in a NON');
  t.ok(option(nonChallenge, String(ECHO)) !== undefined && nonChallenge.datagram.length <= non.length);
});

t.test('an Echo option that does not fit within the request is left out: the 4.01 never outgrows it', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.05', payload: patterned(100) });
  const tiny = Buffer.from('40017b01', 'hex'); // CON GET, no token, no options: 4 bytes
  const reply = await h.ask(tiny);
  t.equal(reply.packet.code, '4.01');
  t.ok(reply.datagram.length <= tiny.length, `${reply.datagram.length} <= ${tiny.length} bytes`);
  t.equal(option(reply, String(ECHO)), undefined, 'no room for the Echo option');
});

t.test('a handler that authenticates a tokenless request (a login) may answer larger than it, without Echo', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({
    response: { code: '2.01', payload: patterned(400), contentFormat: 60 },
    principal: { ...STUB_PRINCIPAL, by: 'secret' },
  });
  const login = request({ code: 'POST', path: ['auth'], contentFormat: 60, payload: patterned(40) });
  const reply = await h.ask(login);
  t.equal(reply.packet.code, '2.01');
  t.equal(reply.packet.payload.length, 400);
  t.equal(option(reply, String(ECHO)), undefined);
  t.equal(h.counts.challenged, 0);
});


// ---------------------------------------------------------------------------------------------
// The layer alone, with a stub of the layers above: what it tells them, what it lets through.

function alone(answer: (inbound: Inbound) => Answer) {
  let now = 1_700_000_000_000;
  const layer = createAddressLayer({ nowMs: () => now, validator: createAddressValidator(() => now, Buffer.alloc(32, 7)) });
  const validator = createAddressValidator(() => now, Buffer.alloc(32, 7));
  const seen: Inbound[] = [];
  const next = async (inbound: Inbound) => {
    seen.push(inbound);
    return answer(inbound);
  };
  const inbound = (echo: Buffer | undefined, budgetBytes = 20): Inbound => ({
    exchange: { requestId: 'r', peer: PEER_A, endpointKey: 'a', budgetBytes },
    request: { id: 'r', method: 'GET', segments: [], path: '/', query: [], payload: Buffer.alloc(0), contentFormat: undefined, accept: undefined,
      etags: [], accessToken: undefined, peer: PEER_A },
    options: { block1: undefined, block2: undefined, size1Bytes: undefined, wantsSize2: false, echo, oscore: undefined, blockKey: '' },
    source: { addressProved: false },
  });
  return { layer, next, seen, inbound, echoFor: (address: string) => validator.challenge(address), advanceMs: (ms: number) => { now += ms; } };
}

const small: Answer = { reply: { response: { code: '2.05', payload: Buffer.from('hi') } }, log: {} };
const large: Answer = { reply: { response: { code: '2.05', payload: patterned(100) } }, log: {} };

t.test('alone: the layers above learn whether the request proved its address', async (t) => {
  const h = alone(() => small);
  await h.layer.handle(h.inbound(undefined), h.next);
  await h.layer.handle(h.inbound(h.echoFor(PEER_A.address)), h.next);
  await h.layer.handle(h.inbound(h.echoFor('198.51.100.9')), h.next);
  t.same(h.seen.map((i) => i.source.addressProved), [false, true, false], 'no Echo, its own Echo, another address\'s Echo');
});

t.test('alone: what an unproved source may have passes unchanged; the rest becomes the challenge', async (t) => {
  const h = alone(() => small);
  t.equal(await h.layer.handle(h.inbound(undefined), h.next), small, 'a small answer passes as it is');
  const withPrincipal = { ...large, principal: STUB_PRINCIPAL };
  const h2 = alone(() => withPrincipal);
  t.equal(await h2.layer.handle(h2.inbound(undefined), h2.next), withPrincipal, 'an authenticated request\'s large answer passes');
  const h3 = alone(() => ({ ...small, provedAddressOnly: true }));
  const held = await h3.layer.handle(h3.inbound(undefined), h3.next);
  t.equal(held.reply.response.code, '4.01', 'a small answer meant only for a proved address is held back');
  t.equal(held.error?.code, 'GW_ERR_AUTH_ADDRESS_UNVERIFIED');
  t.equal(held.error?.reason, 'a nonce, to an unverified address');
  const proved = await h3.layer.handle(h3.inbound(h3.echoFor(PEER_A.address)), h3.next);
  t.equal(proved.reply.response.code, '2.05', 'and given to a proved address');
  const h4 = alone(() => large);
  const challenged = await h4.layer.handle(h4.inbound(undefined, 30), h4.next);
  t.equal(challenged.reply.response.code, '4.01');
  t.ok(challenged.reply.echo !== undefined, 'with an Echo value, when it fits');
  t.match(challenged.error?.reason, /^\d+-byte answer to an unverified address$/, 'the log says how large the answer was');
  t.equal((await h4.layer.handle(h4.inbound(undefined, 5), h4.next)).reply.echo, undefined, 'without, when it does not');
});
