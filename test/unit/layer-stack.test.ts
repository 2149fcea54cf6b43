import t, { type Test } from 'tap';
import { pino } from 'pino';
import { createAddressLayer } from '../../gateway/src/coap/address-layer.ts';
import { createBlockWiseLayer } from '../../gateway/src/coap/block-wise-layer.ts';
import { createDrainLayer } from '../../gateway/src/coap/drain-layer.ts';
import { stackOf, type Answer, type Inbound, type Layer } from '../../gateway/src/coap/layer.ts';
import { createMessagingLayer } from '../../gateway/src/coap/messaging-layer.ts';
import { createRenderError } from '../../gateway/src/coap/render-error.ts';
import { createRequestLayer } from '../../gateway/src/coap/request-layer.ts';
import { RequestError } from '../../gateway/src/errors.ts';
import { conditions } from '../helpers/condition.ts';
import {
  FAST, PEER_A, StubHandler, emptyMessage, option, patterned, recorded, request, type Sent,
} from '../helpers/endpoint-harness.ts';

// How the layers meet (layer.ts): a layer placed right above the messaging layer, where OSCORE
// will go, sees every request on its way up and every answer on its way down, whichever layer made
// it: the pipeline's answer, a rendered error, the Echo challenge, 2.31 Continue, the 5.03 while
// draining, a separate response. The empty ACK and the RST never pass through a layer.

const MARK = Buffer.from('wrapped!');

/** Marks every answer it hands down (an ETag of its own), and records what went up and came down. */
function markingLayer(): Layer & { seen: Inbound[]; answers: Answer[] } {
  const seen: Inbound[] = [];
  const answers: Answer[] = [];
  return {
    seen,
    answers,
    async handle(inbound, next) {
      seen.push(inbound);
      const answer = await next(inbound);
      answers.push(answer);
      return { ...answer, reply: { ...answer.reply, response: { ...answer.reply.response, etag: MARK } } };
    },
  };
}

function stack(t: Test, above: Layer[] = [], piggybackReplyMs = 10_000) {
  const logger = pino({ level: 'silent' });
  const nowMs = Date.now;
  const render = createRenderError(logger, nowMs);
  const handler = new StubHandler();
  const marking = markingLayer();
  const drain = createDrainLayer();
  const blockWise = createBlockWiseLayer({
    admit: (request, source, declared) => handler.admit(request, source, declared), render, nowMs,
    blockBufferBytes: 1 << 20, blockLifetimeSec: 60, representationBytes: 1 << 20,
  });
  const sent: Sent[] = [];
  const { notify, until } = conditions();
  const messaging = createMessagingLayer({
    up: stackOf([marking, drain, createAddressLayer({ nowMs }), ...above, blockWise, createRequestLayer({ handler, render })], render),
    send: (datagram, peer) => { sent.push(recorded(datagram, peer)); notify(); },
    render, logger, nowMs, piggybackReplyMs, exchangeLifetimeSec: 247, maxExchanges: 100, exchangeBytes: 1 << 20,
    transmission: FAST,
  });
  t.teardown(() => {
    messaging.clear();
    blockWise.clear();
  });
  const ask = async (datagram: Buffer): Promise<Sent> => {
    const before = sent.length;
    messaging.handle(datagram, PEER_A);
    await until(() => sent.length > before, 'an answer');
    return sent[before]!;
  };
  return { handler, marking, drain, messaging, sent, until, ask };
}

const marked = (s: Sent) => option(s, 'ETag')?.equals(MARK) === true;

t.test('every answer, whichever layer made it, comes down through the layer above messaging', async (t) => {
  const h = stack(t);
  h.handler.handleImpl = (req) => {
    if (req.path === '/missing') throw new RequestError('GW_ERR_NOT_FOUND', 'no route');
    return { code: '2.05', payload: patterned(req.path.startsWith('/big') ? 300 : 10) };
  };
  const answers = {
    pipeline: await h.ask(request({ accessToken: 'tok' })),
    refusal: await h.ask(request({ path: ['missing'], accessToken: 'tok' })),
    // A path long enough that the 4.01 has room for its Echo option.
    challenge: await h.ask(request({ path: ['big', 'readings'] })),
    continued: await h.ask(request({ code: 'POST', path: ['up'], accessToken: 'tok', block1: [0, true, 2], payload: patterned(64) })),
  };
  t.same(Object.fromEntries(Object.entries(answers).map(([name, s]) => [name, s.packet.code])),
    { pipeline: '2.05', refusal: '4.04', challenge: '4.01', continued: '2.31' }, 'each answer by the layer that made it');
  t.ok(option(answers.challenge, '252') !== undefined, 'the challenge carries its Echo value');
  t.ok(Object.values(answers).every(marked), 'and each came down through the marking layer');
  t.equal(h.marking.seen.length, 4, 'which saw each request on its way up');
  t.same(h.marking.answers.map((a) => a.error?.code), [undefined, 'GW_ERR_NOT_FOUND', 'GW_ERR_AUTH_ADDRESS_UNVERIFIED', undefined],
    'with the reason for the log beside each refusal');
  t.same(h.marking.answers.map((a) => a.principal?.deviceId), ['stub-device', 'stub-device', undefined, 'stub-device'],
    'and who each request proved to be');

  h.drain.stop();
  const busy = await h.ask(request({ path: ['some', 'longer', 'path'], accessToken: 'tok' }));
  t.equal(busy.packet.code, '5.03', 'while draining: 5.03');
  t.ok(marked(busy), 'also through the marking layer');
});

t.test('a separate answer comes down through the layers too; its empty ACK and a ping\'s RST do not', async (t) => {
  const h = stack(t, [], 10);
  const release = h.handler.hold();
  h.messaging.handle(request({ messageId: 0x0707, accessToken: 'tok' }), PEER_A);
  await h.until(() => h.sent.length >= 1, 'the empty ACK');
  t.ok(h.sent[0]!.packet.ack && h.sent[0]!.packet.code === '0.00', 'an empty ACK first');
  t.notOk(marked(h.sent[0]!), 'unmarked: the messaging layer makes it alone');
  release[0]!({ code: '2.05', payload: Buffer.from('late') });
  await h.until(() => h.sent.length >= 2, 'the separate response');
  t.equal(h.sent[1]!.packet.confirmable, true, 'then the separate response, a CON');
  t.ok(marked(h.sent[1]!), 'marked: it came down through the layers');
  h.messaging.handle(emptyMessage('ack', h.sent[1]!.packet.messageId), PEER_A);
  h.messaging.handle(emptyMessage('ping', 0x0808), PEER_A);
  t.equal(h.sent[2]?.packet.reset, true, 'a ping gets its RST from the messaging layer itself');
  t.notOk(marked(h.sent[2]!), 'unmarked: it never went up');
  t.equal(h.marking.seen.length, 1, 'only the request reached the layers');
});

t.test('what a layer throws is rendered where it was thrown, so the layers below see an answer', async (t) => {
  const throwing: Layer = { handle: async () => { throw new RequestError('GW_ERR_BAD_REQUEST', 'thrown in a layer'); } };
  const h = stack(t, [throwing]);
  const reply = await h.ask(request({ path: ['a', 'path', 'with', 'room'], accessToken: 'tok' }));
  t.equal(reply.packet.code, '4.00');
  t.ok(marked(reply), 'rendered, then passed down like any answer');
  t.equal(h.marking.answers[0]?.error?.reason, 'thrown in a layer', 'with the reason for the log');
  t.equal(h.handler.handled.length, 0, 'the layers above it saw nothing');
});
