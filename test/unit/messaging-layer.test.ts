import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { generate } from 'coap-packet';
import { pino, type Logger } from 'pino';
import type { LaterAnswer } from '../../gateway/src/coap/layer.ts';
import { createMessagingLayer } from '../../gateway/src/coap/messaging-layer.ts';
import { createRenderError } from '../../gateway/src/coap/render-error.ts';
import { conditions } from '../helpers/condition.ts';
import {
  ECHO, FAST, PEER_A, PEER_A_OTHER_PORT, PEER_B, STUB_PRINCIPAL, emptyMessage, harness, isEmptyAck, option, patterned, recorded, request,
  samePeer, type Sent,
} from '../helpers/endpoint-harness.ts';

// The messaging layer, at the bottom of the endpoint's stack (RFC 7252 sections 4 and 5): piggybacked
// and separate answers, retransmission, deduplication, ping, RST and junk, what goes to which peer.
// Through the whole stack (`createEndpoint`), without a socket: datagrams in, datagrams out.

t.test('a CON request is answered piggybacked in an ACK with its message ID and token', async (t) => {
  const h = harness(t);
  const reply = await h.ask(request({ messageId: 0x1234, token: 'a1b2c3', path: ['sensors', 'temp'], accessToken: 'tok-1' }));
  t.equal(reply.packet.ack, true, 'an ACK');
  t.equal(reply.packet.messageId, 0x1234, 'the request message ID');
  t.equal(reply.packet.token.toString('hex'), 'a1b2c3', 'the request token');
  t.equal(reply.packet.code, '2.05');
  t.equal(reply.packet.payload.toString(), 'ok');
  t.same(reply.peer, PEER_A);
  t.equal(h.sent.length, 1, 'one datagram');
  t.equal(h.handler.handled.length, 1);
  const seen = h.handler.handled[0]!;
  t.equal(seen.method, 'GET');
  t.equal(seen.path, '/sensors/temp');
  t.equal(seen.accessToken, 'tok-1');
  t.same(seen.peer, PEER_A);
});

for (const stop of ['ack', 'reset'] as const) {
  t.test(`a slow answer: empty ACK, then a CON separate response retransmitted until the peer's ${stop.toUpperCase()}`, async (t) => {
    const h = harness(t, { piggybackReplyMs: 10 });
    const release = h.handler.hold();
    // Authenticated requests (the stub treats an Access-Token as verified): their answers are CONs.
    h.endpoint.handle(request({ messageId: 0x0a0a, token: 'aa', accessToken: 'token-a' }), PEER_A);
    h.endpoint.handle(request({ messageId: 0x0b0b, token: 'bb', accessToken: 'token-b' }), PEER_B);
    await h.until(() => h.sent.length >= 2, 'two empty ACKs');
    const ackA = h.sent.find((s) => samePeer(s.peer, PEER_A))!;
    const ackB = h.sent.find((s) => samePeer(s.peer, PEER_B))!;
    t.ok(isEmptyAck(ackA, 0x0a0a), 'empty ACK of A, its message ID');
    t.ok(isEmptyAck(ackB, 0x0b0b), 'empty ACK of B, its message ID');
    t.equal(h.handler.handled.length, 2);

    release[0]!({ code: '2.05', payload: Buffer.from('late A') });
    release[1]!({ code: '2.05', payload: Buffer.from('late B') });
    await h.until(() => h.sent.length >= 4, 'two separate responses');
    const conA = h.sent.slice(2).find((s) => samePeer(s.peer, PEER_A))!;
    const conB = h.sent.slice(2).find((s) => samePeer(s.peer, PEER_B))!;
    for (const [name, con, requestId, token, payload] of [['A', conA, 0x0a0a, 'aa', 'late A'], ['B', conB, 0x0b0b, 'bb', 'late B']] as const) {
      t.equal(con.packet.confirmable, true, `${name}: the separate response is a CON (section 5.2.2)`);
      t.equal(con.packet.code, '2.05', `${name}: code`);
      t.equal(con.packet.token.toString('hex'), token, `${name}: the request token`);
      t.not(con.packet.messageId, requestId, `${name}: a message ID of its own`);
      t.equal(con.packet.payload.toString(), payload, `${name}: payload`);
    }
    t.not(conA.packet.messageId, conB.packet.messageId, 'distinct message IDs');

    // The same message ID from another port of the same host is another endpoint: it stops nothing.
    const strayReason = stop === 'ack' ? 'stray_ack' : 'stray_reset';
    h.endpoint.handle(emptyMessage(stop, conA.packet.messageId), PEER_A_OTHER_PORT);
    t.same(h.dropped, [strayReason], `from another endpoint: counted as ${strayReason}`);
    h.endpoint.handle(emptyMessage(stop, conA.packet.messageId), PEER_A);
    t.same(h.dropped, [strayReason], 'from A itself: it matched');
    if (stop === 'reset') t.equal(h.counts.resets, 2, 'every RST received is counted');

    // B was armed after A with the same timeout: by B's second retransmission, A's would have come.
    const copies = (of: Sent) => h.sent.filter((s) => s.datagram.equals(of.datagram));
    await h.until(() => copies(conB).length >= 3, 'two retransmissions of B');
    t.equal(copies(conA).length, 1, 'A was not retransmitted after its peer stopped it');
    t.ok(copies(conB).every((s) => samePeer(s.peer, PEER_B)), 'B retransmitted to B, byte for byte');
    t.equal(h.counts.retransmitted, 2, 'only B was retransmitted');
    h.endpoint.handle(emptyMessage(stop, conB.packet.messageId), PEER_B);
    t.same(h.dropped, [strayReason], 'B stopped by its own peer');
    t.equal(h.sent.filter((s) => s.packet.token.toString('hex') === 'aa' && s.packet.code === '2.05').length, 1, 'one separate response for A');
  });
}

t.test('a slow answer to a request nobody authenticated goes once, as NON: no retransmissions to an unproved address', async (t) => {
  const h = harness(t, { piggybackReplyMs: 10 });
  const release = h.handler.hold();
  h.endpoint.handle(request({ messageId: 0x0c0c, token: 'cc' }), PEER_A);
  await h.until(() => h.sent.length >= 1, 'the empty ACK');
  release[0]!({ code: '4.04' });
  await h.until(() => h.sent.length >= 2, 'the separate response');
  t.equal(h.sent[1]!.packet.confirmable, false, 'NON');
  t.equal(h.sent[1]!.packet.ack, false, 'not an ACK');
  t.equal(h.sent[1]!.packet.code, '4.04');
  t.equal(h.counts.retransmitted, 0, 'never retransmitted');
});

t.test('a duplicate CON gets the identical stored reply bytes; the handler is called once', async (t) => {
  const h = harness(t);
  const datagram = request({ messageId: 0x2222, token: 'c1c2' });
  const first = await h.ask(datagram);
  for (const copy of [2, 3]) {
    h.endpoint.handle(datagram, PEER_A);
    t.equal(h.sent.length, copy, `copy ${copy} answered at once`);
    t.ok(h.sent[copy - 1]!.datagram.equals(first.datagram), `copy ${copy}: the same bytes`);
    t.same(h.sent[copy - 1]!.peer, PEER_A);
  }
  t.equal(h.handler.handled.length, 1, 'the handler saw one request');
});

t.test('a duplicate CON while its answer is pending gets nothing, then the one answer', async (t) => {
  const h = harness(t);
  const release = h.handler.hold();
  const datagram = request({ messageId: 0x2323, token: 'c3' });
  h.endpoint.handle(datagram, PEER_A);
  h.endpoint.handle(datagram, PEER_A);
  t.equal(h.handler.handled.length, 1, 'the copy did not reach the handler');
  t.equal(h.sent.length, 0, 'and got no answer of its own within the piggyback window');
  release[0]!({ code: '2.05', payload: Buffer.from('x') });
  await h.until(() => h.sent.length >= 1, 'the answer');
  t.equal(h.sent[0]!.packet.ack, true);
  h.endpoint.handle(datagram, PEER_A);
  t.ok(h.sent[1]?.datagram.equals(h.sent[0]!.datagram), 'a later copy gets the stored answer');
  t.equal(h.handler.handled.length, 1);
});

t.test('a duplicate CON after a separate response began gets the empty ACK again (section 4.5)', async (t) => {
  const h = harness(t, { piggybackReplyMs: 10 });
  const release = h.handler.hold();
  const datagram = request({ messageId: 0x2424, token: 'c4' });
  h.endpoint.handle(datagram, PEER_A);
  await h.until(() => h.sent.length >= 1, 'the empty ACK');
  t.ok(isEmptyAck(h.sent[0]!, 0x2424));
  h.endpoint.handle(datagram, PEER_A);
  t.equal(h.sent.length, 2, 'the copy is acknowledged at once');
  t.ok(isEmptyAck(h.sent[1]!, 0x2424), 'with the empty ACK');
  t.equal(h.handler.handled.length, 1, 'and does not reach the handler');
  release[0]!({ code: '2.05' });
  await h.until(() => h.sent.length >= 3, 'the separate response');
  h.endpoint.handle(emptyMessage('ack', h.sent[2]!.packet.messageId), PEER_A);
});

t.test('a duplicate NON is ignored: one answer, one handler call', async (t) => {
  const h = harness(t);
  const datagram = request({ type: 'non', messageId: 0x3333, token: 'd1' });
  await h.ask(datagram);
  h.endpoint.handle(datagram, PEER_A);
  t.same(h.dropped, ['duplicate_non'], 'counted as duplicate_non');
  // A fresh request after the copy: once it is answered, an answer to the copy would have come first.
  await h.ask(request({ type: 'non', messageId: 0x3334, token: 'd2' }));
  t.equal(h.sent.length, 2, 'two answers: the first request and the barrier');
  t.same(h.sent.map((s) => s.packet.token.toString('hex')), ['d1', 'd2']);
  t.equal(h.handler.handled.length, 2);
});

t.test('a NON request is answered with a NON echoing its token', async (t) => {
  const h = harness(t);
  const reply = await h.ask(request({ type: 'non', messageId: 0x4444, token: 'e1e2' }));
  t.equal(reply.packet.confirmable, false, 'not a CON');
  t.equal(reply.packet.ack, false, 'not an ACK');
  t.equal(reply.packet.reset, false, 'not an RST');
  t.equal(reply.packet.code, '2.05');
  t.equal(reply.packet.token.toString('hex'), 'e1e2');
  t.same(reply.peer, PEER_A);
});

t.test('an empty CON (CoAP ping) gets an RST with its message ID; the handler is not called', async (t) => {
  const h = harness(t);
  h.endpoint.handle(emptyMessage('ping', 0x5555), PEER_B);
  t.equal(h.sent.length, 1, 'answered at once');
  const rst = h.sent[0]!;
  t.equal(rst.packet.reset, true);
  t.equal(rst.packet.code, '0.00');
  t.equal(rst.packet.messageId, 0x5555);
  t.equal(rst.datagram.length, 4, 'an Empty message');
  t.same(rst.peer, PEER_B);
  t.equal(h.handler.handled.length, 0);
  t.equal(h.handler.admitted.length, 0);
});

t.test('junk: a CON with a format error gets an RST, everything else no answer; the endpoint still serves', async (t) => {
  const h = harness(t);
  const tkl9 = Buffer.concat([Buffer.from('49011234', 'hex'), Buffer.alloc(12, 0xab)]);
  // RFC 8974 extended token (TKL 13, 13 + 200 bytes): the datagram that crashed node-coap when repeated.
  const longToken = Buffer.concat([Buffer.from('4d011235c8', 'hex'), Buffer.alloc(213, 0xcd), Buffer.from('b3617574', 'hex')]);
  const version2 = Buffer.from(request({ messageId: 0x1236 }));
  version2[0] = (version2[0]! & 0x3f) | 0x80;
  const conResponse = generate({ code: '2.05', messageId: 0x1237, confirmable: true, payload: Buffer.from('x') });
  const nonFormat = Buffer.from('5001123801', 'hex'); // NON GET, an option announcing 1 byte that is missing
  h.endpoint.handle(tkl9, PEER_A);
  h.endpoint.handle(longToken, PEER_B);
  h.endpoint.handle(longToken, PEER_B);
  h.endpoint.handle(version2, PEER_A);
  h.endpoint.handle(conResponse, PEER_B);
  h.endpoint.handle(nonFormat, PEER_A);
  h.endpoint.handle(emptyMessage('reset', 0x7777), PEER_A);
  h.endpoint.handle(emptyMessage('ack', 0x7778), PEER_A);
  h.endpoint.handle(Buffer.from('40', 'hex'), PEER_A);
  const rsts = h.sent.map((s) => [s.packet.reset, s.packet.messageId, s.peer.address]);
  t.same(rsts, [[true, 0x1234, PEER_A.address], [true, 0x1235, PEER_B.address], [true, 0x1235, PEER_B.address], [true, 0x1237, PEER_B.address]],
    'RSTs for the CONs only, each to its sender');
  t.ok(h.sent.every((s) => s.datagram.length === 4), 'never a diagnostic payload');
  t.same(h.dropped, ['format', 'format', 'format', 'version', 'response', 'format', 'stray_reset', 'stray_ack', 'short']);
  t.equal(h.handler.handled.length, 0);
  const ok = await h.ask(request({ token: 'f0' }));
  t.equal(ok.packet.code, '2.05', 'still serving');
});

t.test('every answer goes to the peer its request came from, also with the same message ID and token', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = (req) => ({ code: '2.05', payload: Buffer.from(`${req.peer.address} ${req.peer.port}`) });
  // With an Access-Token: the answers are larger than the request (RFC 7252 section 11.3).
  const datagram = request({ messageId: 0x6666, token: '0102', accessToken: 'tok-1' });
  h.endpoint.handle(datagram, PEER_A);
  h.endpoint.handle(datagram, PEER_B);
  h.endpoint.handle(datagram, PEER_A_OTHER_PORT);
  await h.until(() => h.sent.length >= 3, 'three answers');
  t.equal(h.handler.handled.length, 3, 'three endpoints, three exchanges');
  for (const peer of [PEER_A, PEER_B, PEER_A_OTHER_PORT]) {
    const answers = h.sent.filter((s) => samePeer(s.peer, peer));
    t.equal(answers.length, 1, `one answer to ${peer.address}:${peer.port}`);
    t.equal(answers[0]?.packet.payload.toString(), `${peer.address} ${peer.port}`, 'answering that peer\'s own request');
  }
});


t.test('unimplemented critical options get 4.02, proxy options 5.05, an unknown method 4.05; none reaches the handler', async (t) => {
  const h = harness(t);
  for (const number of [1, 5, 9, 19, 31, 2049, 2053, 65001]) {
    const reply = await h.ask(request({ extra: [[number, Buffer.alloc(0)]] }));
    t.equal(reply.packet.code, '4.02', `option ${number}`);
  }
  t.equal((await h.ask(request({ extra: [[35, Buffer.from('coap://example.org/')]] }))).packet.code, '5.05', 'Proxy-Uri');
  t.equal((await h.ask(request({ extra: [[39, Buffer.from('coap')]] }))).packet.code, '5.05', 'Proxy-Scheme');
  t.equal((await h.ask(request({ code: '0.08' }))).packet.code, '4.05', 'method code 0.08');
  t.equal(h.handler.handled.length, 0);
  t.equal(h.handler.admitted.length, 0);
});

t.test('a GET with Observe is answered without Observe: the device learns it is not registered (RFC 7641 section 4.1)', async (t) => {
  const h = harness(t);
  const reply = await h.ask(request({ extra: [[6, Buffer.alloc(0)]] }));
  t.equal(reply.packet.code, '2.05');
  t.equal(option(reply, 'Observe'), undefined);
  t.equal(h.handler.handled.length, 1, 'Observe is elective: the request is served');
});

t.test('an answer that cannot fit one message becomes a bare 5.02', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.01', locationPath: Array.from({ length: 8 }, () => 'x'.repeat(200)) });
  const reply = await h.ask(request({ code: 'POST', token: 'abcd' }));
  t.equal(reply.packet.code, '5.02');
  t.equal(reply.packet.token.toString('hex'), 'abcd');
  t.ok(reply.datagram.length <= 1152);
});


/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('handle() never throws and never fails inside for 2,000 seeded random and mutated datagrams', async (t) => {
  const SEED = 0xc0a9;
  const random = prng(SEED);
  const int = (n: number) => Math.floor(random() * n);
  const errorLines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { errorLines.push(chunk.toString()); done(); } });
  const logger: Logger = pino({ level: 'error' }, sink);
  const h = harness(t, { logger, blockBufferBytes: 8192 });
  h.handler.maxBodyBytes = 4096;
  // Requests without an Access-Token count as unauthenticated, so both shares of the buffer are fuzzed.
  h.handler.authenticated = (req) => req.accessToken !== undefined;
  h.handler.handleImpl = (req) => ({ code: '2.05', payload: Buffer.alloc((req.payload.length * 37 + req.path.length * 101) % 3000, 0x5a) });
  // A valid Echo value for the fuzzing address, so mutated Echo options reach both outcomes of the check.
  const fuzzAddress = '198.51.100.1';
  const challenge = await h.ask(request({ path: ['sensors', 'temp'], token: 'a1b3' }), { address: fuzzAddress, port: 20_000 });
  const echo = option(challenge, String(ECHO));
  t.ok(echo !== undefined, 'the fuzzing address got an Echo value');
  const seeds = [
    request({ path: ['sensors', 'temp'], token: 'a1b4', extra: [[ECHO, echo ?? Buffer.from('x')]] }),
    request({ path: ['sensors', 'temp'], accessToken: 'tok', token: 'a1b2' }),
    request({ code: 'POST', path: ['readings'], contentFormat: 60, payload: patterned(64), block1: [0, true, 2], size1: 200, accessToken: 'tok' }),
    request({ code: 'POST', path: ['readings'], contentFormat: 60, payload: patterned(64), block1: [1, true, 2], accessToken: 'tok' }),
    request({ path: ['big'], block2: [1, false, 6], size2: true, accessToken: 'tok' }),
    request({ type: 'non', code: 'PUT', path: ['a', 'b'], payload: patterned(30), extra: [[15, Buffer.from('q=1')], [292, Buffer.from('01', 'hex')]] }),
    emptyMessage('ping', 1),
    emptyMessage('ack', 2),
  ];
  const mutate = (input: Buffer): Buffer => {
    let out = Buffer.from(input);
    for (let n = 1 + int(4); n > 0; n -= 1) {
      switch (int(5)) {
        case 0: if (out.length > 0) out[int(out.length)] = int(256); break;
        case 1: if (out.length > 0) out[int(out.length)]! ^= 1 << int(8); break;
        case 2: out = out.subarray(0, int(out.length + 1)); break;
        case 3: out = Buffer.concat([out, Buffer.from(Array.from({ length: 1 + int(16) }, () => int(256)))]); break;
        default: { const at = int(out.length + 1); out = Buffer.concat([out.subarray(0, at), Buffer.from([0xff]), out.subarray(at)]); }
      }
    }
    return out;
  };
  let thrown = 0;
  let firstThrow: unknown;
  const fuzzPorts = new Set<number>([20_000]);
  for (let i = 0; i < 2000; i += 1) {
    let datagram: Buffer;
    const kind = int(4);
    if (kind === 0) datagram = Buffer.from(Array.from({ length: int(48) }, () => int(256)));
    else if (kind === 1) datagram = Buffer.from([0x40 | int(64), int(256), ...Array.from({ length: 2 + int(40) }, () => int(256))]);
    else datagram = mutate(seeds[int(seeds.length)]!);
    const peer = { address: fuzzAddress, port: 20_000 + int(20) };
    fuzzPorts.add(peer.port);
    try {
      h.endpoint.handle(datagram, peer);
    } catch (err) {
      thrown += 1;
      firstThrow ??= err;
    }
  }
  t.equal(thrown, 0, `handle() threw ${thrown} times (seed ${SEED})${firstThrow === undefined ? '' : `: ${String(firstThrow)}`}`);
  // With an Access-Token: the fuzz handler's answer (808 bytes) is larger than the request.
  const still = await h.ask(request({ token: 'beef', accessToken: 'tok' }));
  t.equal(still.packet.code, '2.05', 'still serving');
  await h.endpoint.drain();
  t.equal(h.endpoint.inFlight(), 0, 'every request answered');
  t.equal(h.dropped.filter((reason) => reason === 'internal').length, 0, 'no datagram dropped after an internal error');
  t.same(errorLines, [], 'nothing logged at error level (no unexpected error reached renderError or the guard)');
  t.ok(h.sent.every((s) => s.packet.code !== 'unparseable'), 'every datagram sent is well-formed CoAP');
  t.ok(h.sent.every((s) => s.datagram.length <= 1152), 'and fits 1152 bytes');
  t.ok(h.sent.every((s) => samePeer(s.peer, PEER_A) || (s.peer.address === fuzzAddress && fuzzPorts.has(s.peer.port))),
    'and goes to a peer that sent something');
  t.ok(h.counts.challenged > 1, `tokenless requests were challenged (${h.counts.challenged} times)`);
  t.ok(h.sent.length > 100, `the fuzz reached the request path (${h.sent.length} datagrams sent)`);
});

// ---------------------------------------------------------------------------------------------
// Later answers (`Answer.later`): what an Observe layer will hand down as notifications.

/**
 * The messaging layer alone, on a stub of the layers above that answers with `later` answers.
 * `ended()` tells the waits that the later answers' iterator has returned.
 */
function messagingWithLater(t: Test, later: (ended: () => void) => AsyncIterable<LaterAnswer>) {
  let over = false;
  const sent: Sent[] = [];
  const { notify, until } = conditions();
  const messaging = createMessagingLayer({
    up: async () => ({
      reply: { response: { code: '2.05', payload: Buffer.from('first') } }, principal: STUB_PRINCIPAL, log: {},
      later: later(() => { over = true; notify(); }),
    }),
    send: (datagram, peer) => { sent.push(recorded(datagram, peer)); notify(); },
    render: createRenderError(pino({ level: 'silent' }), Date.now),
    logger: pino({ level: 'silent' }), nowMs: Date.now, piggybackReplyMs: 10_000, exchangeLifetimeSec: 247,
    maxExchanges: 100, exchangeBytes: 1 << 20, transmission: FAST,
  });
  t.teardown(() => messaging.clear());
  return { messaging, sent, until, ended: () => over };
}

const notification = (text: string, confirmable: boolean): LaterAnswer => ({ reply: { response: { code: '2.05', payload: Buffer.from(text) } }, confirmable });

t.test('later answers go in messages of their own with the request token: a CON waits for its ACK, the next follows', async (t) => {
  const h = messagingWithLater(t, async function* (ended) {
    try {
      yield notification('second', true);
      yield notification('third', false);
      yield notification('fourth', true);
    } finally {
      ended();
    }
  });
  h.messaging.handle(request({ messageId: 0x0100, token: '5151' }), PEER_A);
  await h.until(() => h.sent.length >= 2, 'the answer and the first later answer');
  const [first, second] = h.sent;
  t.equal(first!.packet.ack, true, 'the first answer is piggybacked');
  t.equal(second!.packet.confirmable, true, 'a confirmable later answer is a CON');
  t.equal(second!.packet.token.toString('hex'), '5151', 'with the request token');
  t.not(second!.packet.messageId, 0x0100, 'and a message ID of its own');
  await h.until(() => h.sent.length >= 3, 'a retransmission while unacknowledged');
  t.ok(h.sent[2]!.datagram.equals(second!.datagram), 'the same CON again: the next waits');
  h.messaging.handle(emptyMessage('ack', second!.packet.messageId), PEER_A);
  await h.until(() => h.sent.some((s) => s.packet.payload.toString() === 'fourth'), 'the fourth');
  const third = h.sent.find((s) => s.packet.payload.toString() === 'third')!;
  const fourth = h.sent.find((s) => s.packet.payload.toString() === 'fourth')!;
  t.equal(third.packet.confirmable, false, 'a NON later answer');
  t.equal(third.packet.ack, false);
  t.equal(new Set([first, second, third, fourth].map((s) => s!.packet.messageId)).size, 4, 'four message IDs');
  h.messaging.handle(emptyMessage('ack', fourth.packet.messageId), PEER_A);
  await h.until(h.ended, 'the stream to end');
  t.ok(h.sent.every((s) => samePeer(s.peer, PEER_A)), 'every message to the peer that asked');
});

for (const [how, stop] of [['an RST', 'reset'], ['no ACK at all', undefined]] as const) {
  t.test(`a CON later answer met with ${how} ends the later answers (their iterator returns)`, async (t) => {
    let asked = 0;
    const h = messagingWithLater(t, async function* (ended) {
      try {
        for (;;) {
          asked += 1;
          yield notification(`n${asked}`, true);
        }
      } finally {
        ended();
      }
    });
    h.messaging.handle(request({ token: '6161' }), PEER_A);
    await h.until(() => h.sent.length >= 2, 'the answer and a later answer');
    const con = h.sent[1]!;
    if (stop !== undefined) h.messaging.handle(emptyMessage(stop, con.packet.messageId), PEER_A);
    await h.until(h.ended, 'the stream to end');
    t.equal(asked, 1, 'no later answer was taken after it');
    t.ok(h.sent.slice(1).every((s) => s.datagram.equals(con.datagram)), 'only that one, and its retransmissions');
    if (stop === undefined) t.equal(h.sent.length, 2 + FAST.maxRetransmit, 'retransmitted MAX_RETRANSMIT times first');
  });
}
