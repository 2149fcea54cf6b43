import { conditions } from '../helpers/condition.ts';
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { generate, parse, type Option as PacketOption, type ParsedPacket } from 'coap-packet';
import { Decoder } from 'cbor-x';
import { pino, type Logger } from 'pino';
import { createEndpoint, type EndpointOptions, type EvictedTable } from '../../gateway/src/coap/endpoint.ts';
import type { DropReason } from '../../gateway/src/coap/decode-datagram.ts';
import type { Peer } from '../../gateway/src/coap/peer.ts';
import { AuthError, BridgeError, RequestError } from '../../gateway/src/errors.ts';
import type { CoapRequest, CoapResponse, RequestContext, RequestHandler, UploadLimits } from '../../gateway/src/messages.ts';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';

// The endpoint without a socket (aedes-style `handle(datagram, peer)`): datagrams in, datagrams
// out through a recording `send`, a stub RequestHandler (our own interface), an injected clock.
// Datagrams are written and read with coap-packet, the codec. Tests wait for the Nth datagram
// sent (a promise with a failure guard), never for a fixed time.

const FAST = { ackTimeoutMs: 20, ackRandomFactor: 1, maxRetransmit: 4 };
const PEER_A: Peer = { address: '192.0.2.10', port: 5683 };
const PEER_B: Peer = { address: '2001:db8::b', port: 5683 };
const PEER_A_OTHER_PORT: Peer = { address: '192.0.2.10', port: 5684 };
const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });

// ---------------------------------------------------------------------------------------------
// The stub handler: records what reached admit() and handle(), answers what the test says.
// admit() grants `maxBodyBytes` to every request, authenticated unless `authenticated` says not.
// Like the pipeline after a token verifies, admit() and handle() mark a request that carries an
// Access-Token as authenticated: only its answer may be larger than the request (RFC 7252
// section 11.3); a tokenless one gets 4.01 with an Echo option instead (RFC 9175 section 2.4).

interface Admitted { request: CoapRequest; declaredBytes: number | undefined; uploadBytesAtAdmit: number }

class StubHandler implements RequestHandler {
  readonly admitted: Admitted[] = [];
  readonly handled: CoapRequest[] = [];
  uploadBytes: () => number = () => 0;
  maxBodyBytes = 16_384;
  authenticated: (request: CoapRequest) => boolean = () => true;
  admitImpl: (request: CoapRequest, declaredBytes: number | undefined) => void = () => {};
  handleImpl: (request: CoapRequest, context: RequestContext) => CoapResponse | Promise<CoapResponse> = () => ({ code: '2.05', payload: Buffer.from('ok'), contentFormat: 0 });

  async admit(request: CoapRequest, context: RequestContext, declaredBytes: number | undefined): Promise<UploadLimits> {
    this.admitted.push({ request, declaredBytes, uploadBytesAtAdmit: this.uploadBytes() });
    this.admitImpl(request, declaredBytes);
    if (request.accessToken !== undefined) context.authenticated = true;
    return { maxBodyBytes: this.maxBodyBytes, authenticated: this.authenticated(request) };
  }

  async handle(request: CoapRequest, context: RequestContext): Promise<CoapResponse> {
    this.handled.push(request);
    if (request.accessToken !== undefined) context.authenticated = true;
    return this.handleImpl(request, context);
  }

  /** Every later handle() waits until the test releases it, in call order. */
  hold(): ((response: CoapResponse) => void)[] {
    const releases: ((response: CoapResponse) => void)[] = [];
    this.handleImpl = () => new Promise<CoapResponse>((resolve) => { releases.push(resolve); });
    return releases;
  }
}

// ---------------------------------------------------------------------------------------------
// The harness: an endpoint, what it sent, what it reported.

interface Sent { datagram: Buffer; peer: Peer; packet: ParsedPacket }

function harness(t: Test, overrides: Partial<EndpointOptions> = {}) {
  let now = 1_700_000_000_000;
  const handler = new StubHandler();
  const sent: Sent[] = [];
  const dropped: DropReason[] = [];
  const uploadReports: number[] = [];
  const evicted: EvictedTable[] = [];
  const counts = { retransmitted: 0, resets: 0, challenged: 0 };
  const { notify, until } = conditions();
  const endpoint = createEndpoint({
    handler,
    send: (datagram, peer) => {
      // A datagram coap-packet cannot parse is recorded as such; the tests check that none is.
      let packet: ParsedPacket;
      try {
        packet = parse(datagram);
      } catch {
        packet = { code: 'unparseable', confirmable: false, reset: false, ack: false, messageId: -1, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0) };
      }
      sent.push({ datagram: Buffer.from(datagram), peer, packet });
      notify();
    },
    logger: pino({ level: 'silent' }),
    nowMs: () => now,
    piggybackReplyMs: 10_000,
    exchangeLifetimeSec: 247,
    maxExchanges: 1000,
    exchangeBytes: 1 << 20,
    blockBufferBytes: 1 << 20,
    blockLifetimeSec: 60,
    representationBytes: 1 << 20,
    transmission: FAST,
    observer: {
      dropped: (reason) => { dropped.push(reason); },
      retransmitted: () => { counts.retransmitted += 1; },
      resetReceived: () => { counts.resets += 1; },
      challenged: () => { counts.challenged += 1; },
      uploadBytes: (bytes) => { uploadReports.push(bytes); },
      evicted: (table) => { evicted.push(table); },
    },
    ...overrides,
  });
  handler.uploadBytes = () => endpoint.uploadBytes();
  t.teardown(() => endpoint.clear());

  /** Hands one datagram to the endpoint and resolves with the first datagram it then sends to that peer. */
  const ask = async (datagram: Buffer, peer: Peer = PEER_A): Promise<Sent> => {
    const before = sent.length;
    const toPeer = () => sent.slice(before).find((s) => samePeer(s.peer, peer));
    endpoint.handle(datagram, peer);
    await until(() => toPeer() !== undefined, `an answer to ${peer.address}:${peer.port}`);
    return toPeer()!;
  };
  return { endpoint, handler, sent, dropped, uploadReports, evicted, counts, until, ask, advanceMs: (ms: number) => { now += ms; }, nowMs: () => now };
}

const samePeer = (a: Peer, b: Peer) => a.address === b.address && a.port === b.port;

// ---------------------------------------------------------------------------------------------
// Requests and replies, through coap-packet.

let nextMessageId = 100;
let nextToken = 1;

interface RequestSpec {
  code?: string;
  type?: 'con' | 'non';
  messageId?: number;
  token?: string;
  path?: string[];
  accessToken?: string;
  contentFormat?: number;
  payload?: Buffer;
  block1?: [num: number, more: boolean, szx: number];
  block2?: [num: number, more: boolean, szx: number];
  size1?: number;
  size2?: boolean;
  extra?: [number, Buffer][];
}

const uint = (n: number): Buffer => {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
};
const readUint = (value: Buffer | undefined): number | undefined => (value === undefined ? undefined : value.reduce((n, byte) => n * 256 + byte, 0));
const blockValue = ([num, more, szx]: [number, boolean, number]) => uint(num * 16 + (more ? 8 : 0) + szx);

function request(spec: RequestSpec = {}): Buffer {
  const options: PacketOption[] = [];
  const add = (number: number, value: Buffer) => options.push({ name: String(number), value });
  for (const segment of spec.path ?? ['sensors']) add(11, Buffer.from(segment));
  if (spec.contentFormat !== undefined) add(12, uint(spec.contentFormat));
  if (spec.block2 !== undefined) add(23, blockValue(spec.block2));
  if (spec.block1 !== undefined) add(27, blockValue(spec.block1));
  if (spec.size2 === true) add(28, Buffer.alloc(0));
  if (spec.size1 !== undefined) add(60, uint(spec.size1));
  if (spec.accessToken !== undefined) add(65003, Buffer.from(spec.accessToken));
  for (const [number, value] of spec.extra ?? []) add(number, value);
  return generate({
    code: spec.code ?? 'GET',
    messageId: spec.messageId ?? (nextMessageId = (nextMessageId + 1) & 0xffff),
    token: Buffer.from(spec.token ?? (nextToken++).toString(16).padStart(4, '0'), 'hex'),
    confirmable: (spec.type ?? 'con') === 'con',
    options,
    payload: spec.payload ?? Buffer.alloc(0),
  }, 65_535);
}

const emptyMessage = (kind: 'ack' | 'reset' | 'ping', messageId: number) =>
  generate({ code: '0.00', messageId, ack: kind === 'ack', reset: kind === 'reset', confirmable: kind === 'ping' });

/** An option of a reply, by coap-packet's name. */
const option = (sent: Sent, name: string): Buffer | undefined => sent.packet.options.find((o) => String(o.name) === name)?.value;
const block = (sent: Sent, name: 'Block1' | 'Block2') => {
  const n = readUint(option(sent, name));
  return n === undefined ? undefined : { num: Math.floor(n / 16), more: (n & 8) !== 0, szx: n & 7 };
};
const errorBody = (sent: Sent) => cbor.decode(sent.packet.payload) as Map<number, number>;
const isEmptyAck = (s: Sent, messageId: number) => s.packet.ack && s.packet.code === '0.00' && s.packet.messageId === messageId && s.datagram.length === 4;

/** A body whose every byte depends on its position, so that a misplaced block shows. */
const patterned = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + (i >> 8)) & 0xff));

// ---------------------------------------------------------------------------------------------
// Messaging (RFC 7252 section 4)

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

t.test('a handler that throws a non-GatewayError gets 5.00, and the endpoint keeps working', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => { throw new TypeError('cannot read properties of undefined'); };
  const failed = await h.ask(request({ path: ['sensors', 'temp'], token: 'a0a0a0a0' }));
  t.equal(failed.packet.code, '5.00');
  t.equal(failed.packet.ack, true, 'still a proper piggybacked answer');
  t.same(errorBody(failed), new Map([[ErrorKey.code, WireError.internal], [ErrorKey.serverTimeSec, Math.floor(h.nowMs() / 1000)]]),
    'the tiny CBOR error body');
  t.notMatch(failed.packet.payload.toString('latin1'), /cannot read/, 'the reason stays in the log');
  h.handler.handleImpl = () => Promise.reject('not even an Error');
  t.equal((await h.ask(request())).packet.code, '5.00', 'a rejected non-Error too');
  h.handler.handleImpl = () => ({ code: '2.05', payload: Buffer.from('fine') });
  const next = await h.ask(request());
  t.equal(next.packet.code, '2.05', 'the next request is served');
  t.equal(next.packet.payload.toString(), 'fine');
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

t.test('an error answer is never larger than the request (RFC 7252 section 11.3)', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => { throw new RequestError('GW_ERR_NOT_FOUND', 'no route'); };
  const tiny = Buffer.from('40014321', 'hex'); // CON GET, no token, no options: 4 bytes
  const reply = await h.ask(tiny);
  t.equal(reply.packet.code, '4.04');
  t.equal(reply.packet.payload.length, 0, 'no room for the error body');
  t.ok(reply.datagram.length <= tiny.length, `${reply.datagram.length} <= ${tiny.length} bytes`);
  const withToken = request({ path: [], token: '0102030405060708' });
  const tokenReply = await h.ask(withToken);
  t.ok(tokenReply.datagram.length <= withToken.length, `with an 8-byte token: ${tokenReply.datagram.length} <= ${withToken.length} bytes`);
  const roomy = request({ path: ['a-longer-path-with-room'], token: '01' });
  const roomyReply = await h.ask(roomy);
  t.equal(errorBody(roomyReply).get(ErrorKey.code), WireError.notFound, 'a request with room gets the body');
  t.ok(roomyReply.datagram.length <= roomy.length, `${roomyReply.datagram.length} <= ${roomy.length} bytes`);
  const oscore = request({ path: [], token: '', extra: [[9, Buffer.alloc(0)]] });
  const oscoreReply = await h.ask(oscore);
  t.equal(oscoreReply.packet.code, '4.02', 'unimplemented critical option');
  t.ok(oscoreReply.datagram.length <= oscore.length, `4.02: ${oscoreReply.datagram.length} <= ${oscore.length} bytes`);
});

t.test('an error answer with Max-Age or Size1 is never larger than a tiny request either', async (t) => {
  const h = harness(t);
  const tiny = () => generate({ code: 'GET', messageId: (nextMessageId = (nextMessageId + 1) & 0xffff), confirmable: true });
  h.handler.handleImpl = () => { throw new BridgeError('GW_ERR_BUSY', 'overloaded', { maxAgeSec: 5 }); };
  const busy = await h.ask(tiny());
  t.equal(busy.packet.code, '5.03');
  t.ok(busy.datagram.length <= 4, `5.03 with Max-Age to a 4-byte request: ${busy.datagram.length} bytes (${busy.datagram.toString('hex')})`);
  h.handler.handleImpl = () => { throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', 'too big', { size1Bytes: 16_384 }); };
  const tooLarge = await h.ask(tiny());
  t.equal(tooLarge.packet.code, '4.13');
  t.ok(tooLarge.datagram.length <= 4, `4.13 with Size1 to a 4-byte request: ${tooLarge.datagram.length} bytes (${tooLarge.datagram.toString('hex')})`);
});

// ---------------------------------------------------------------------------------------------
// Amplification (RFC 7252 section 11.3, RFC 9175 section 2.4): an answer larger than its request
// goes only to an authenticated request or to an address that echoed the gateway's Echo value.

const ECHO = 252;

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
  h.handler.handleImpl = (_req, context) => {
    context.authenticated = true;
    return { code: '2.01', payload: patterned(400), contentFormat: 60 };
  };
  const login = request({ code: 'POST', path: ['auth'], contentFormat: 60, payload: patterned(40) });
  const reply = await h.ask(login);
  t.equal(reply.packet.code, '2.01');
  t.equal(reply.packet.payload.length, 400);
  t.equal(option(reply, String(ECHO)), undefined);
  t.equal(h.counts.challenged, 0);
});

// ---------------------------------------------------------------------------------------------
// Block1 (RFC 7959 section 2.5), 64-byte blocks (SZX 2) unless said otherwise.

const SZX64 = 2;

interface UploadOptions { peer?: Peer; accessToken?: string | undefined; size1?: number; szx?: number; path?: string[] }

/** Block `num` of `body`, with a CoAP token and message ID of its own. */
function uploadBlock(body: Buffer, num: number, options: UploadOptions = {}): Buffer {
  const size = 1 << ((options.szx ?? SZX64) + 4);
  const payload = body.subarray(num * size, (num + 1) * size);
  const more = (num + 1) * size < body.length;
  return request({
    code: 'POST', path: options.path ?? ['readings'], contentFormat: 60, payload,
    accessToken: 'accessToken' in options ? options.accessToken : 'tok-A',
    block1: [num, more, options.szx ?? SZX64], ...(num === 0 && options.size1 !== undefined ? { size1: options.size1 } : {}),
  });
}

t.test('Block1: a refusing admit on block 0 answers its error, and nothing is buffered', async (t) => {
  const h = harness(t);
  h.handler.admitImpl = () => { throw new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no Access-Token'); };
  const body = patterned(300);
  const refused = await h.ask(uploadBlock(body, 0, { accessToken: undefined, size1: 300 }));
  t.equal(refused.packet.code, '4.01');
  t.equal(h.handler.admitted.length, 1, 'admit ran on block 0');
  t.equal(h.handler.admitted[0]?.uploadBytesAtAdmit, 0, 'before anything was buffered');
  t.equal(h.endpoint.uploadBytes(), 0);
  t.ok(h.uploadReports.every((bytes) => bytes === 0), 'the buffer gauge never rose');
  t.equal(h.handler.handled.length, 0);
  const next = await h.ask(uploadBlock(body, 1, { accessToken: undefined }));
  t.equal(next.packet.code, '4.08', 'block 1 then finds no upload');
});

t.test('Block1: blocks with new tokens and the same Access-Token assemble; handle() gets the whole body once', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const body = patterned(3 * 64 + 10);
  const replies: Sent[] = [];
  for (let num = 0; num < 4; num += 1) replies.push(await h.ask(uploadBlock(body, num, { size1: body.length })));
  t.equal(new Set(replies.map((r) => r.packet.token.toString('hex'))).size, 4, 'four blocks, four CoAP tokens');
  for (const num of [0, 1, 2]) {
    t.equal(replies[num]!.packet.code, '2.31', `block ${num}: 2.31 Continue`);
    t.same(block(replies[num]!, 'Block1'), { num, more: true, szx: SZX64 }, `block ${num}: 2.31 carries Block1`);
  }
  t.equal(replies[3]!.packet.code, '2.04', 'the final answer is the handler\'s');
  t.same(block(replies[3]!, 'Block1'), { num: 3, more: false, szx: SZX64 }, 'and carries Block1 of the last block');
  t.equal(h.handler.admitted.length, 1, 'admit once, on block 0');
  t.equal(h.handler.admitted[0]?.uploadBytesAtAdmit, 0, 'before block 0 was buffered');
  t.equal(h.handler.admitted[0]?.declaredBytes, body.length, 'with the Size1 of block 0');
  t.equal(h.handler.handled.length, 1, 'handle once');
  t.ok(h.handler.handled[0]?.payload.equals(body), 'with the whole body, in order');
  t.equal(h.handler.handled[0]?.accessToken, 'tok-A');
  t.equal(h.handler.handled[0]?.path, '/readings');
  t.equal(Math.max(...h.uploadReports), body.length, 'the gauge rose to the whole body before it was handed over');
  t.equal(h.endpoint.uploadBytes(), 0, 'and the buffer is empty afterwards');
});

t.test('Block1: two endpoints uploading to the same resource at once are assembled apart', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const bodyA = patterned(150);
  const bodyB = Buffer.alloc(150, 0xbb);
  for (let num = 0; num < 3; num += 1) {
    await h.ask(uploadBlock(bodyA, num), PEER_A);
    await h.ask(uploadBlock(bodyB, num), PEER_B);
  }
  t.equal(h.handler.handled.length, 2);
  t.ok(h.handler.handled[0]?.payload.equals(bodyA), 'A got A\'s body');
  t.ok(h.handler.handled[1]?.payload.equals(bodyB), 'B got B\'s body');
});

t.test('Block1: a later block with another Access-Token gets 4.01 and the upload goes on with the right one', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const body = patterned(150);
  t.equal((await h.ask(uploadBlock(body, 0))).packet.code, '2.31');
  const intruder = await h.ask(uploadBlock(body, 1, { accessToken: 'tok-other' }));
  t.equal(intruder.packet.code, '4.01');
  const missing = await h.ask(uploadBlock(body, 1, { accessToken: undefined }));
  t.equal(missing.packet.code, '4.01', 'no Access-Token at all: 4.01 too');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '2.31');
  t.equal((await h.ask(uploadBlock(body, 2))).packet.code, '2.04');
  t.equal(h.handler.handled.length, 1);
  t.ok(h.handler.handled[0]?.payload.equals(body));
});

t.test('Block1: an out-of-order block gets 4.08 and the upload is dropped', async (t) => {
  const h = harness(t);
  const body = patterned(64 * 4);
  t.equal((await h.ask(uploadBlock(body, 0))).packet.code, '2.31');
  t.equal((await h.ask(uploadBlock(body, 2))).packet.code, '4.08', 'block 2 after block 0');
  t.equal(h.endpoint.uploadBytes(), 0, 'its bytes freed');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '4.08', 'the upload is gone');
  t.equal(h.handler.handled.length, 0);
});

t.test('Block1: block N without block 0 gets 4.08, without admit or handle', async (t) => {
  const h = harness(t);
  const reply = await h.ask(uploadBlock(patterned(64 * 4), 3));
  t.equal(reply.packet.code, '4.08');
  t.equal(h.handler.admitted.length, 0);
  t.equal(h.handler.handled.length, 0);
});

t.test('Block1: Size1 above maxBodyBytes on block 0 gets what admit throws (4.13 with Size1), nothing buffered', async (t) => {
  const h = harness(t);
  h.handler.maxBodyBytes = 16_384;
  h.handler.admitImpl = (_request, declaredBytes) => {
    if (declaredBytes !== undefined && declaredBytes > 16_384) {
      throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', 'declared too large', { size1Bytes: 16_384 });
    }
  };
  const reply = await h.ask(uploadBlock(patterned(20_000), 0, { size1: 20_000, szx: 6 }));
  t.equal(reply.packet.code, '4.13');
  t.equal(readUint(option(reply, 'Size1')), 16_384, 'Size1 says how much is accepted');
  t.equal(h.handler.admitted[0]?.declaredBytes, 20_000);
  t.equal(h.endpoint.uploadBytes(), 0);
});

t.test('Block1: an upload growing past admit\'s maxBodyBytes without Size1 gets 4.13 with Size1, and is dropped', async (t) => {
  const h = harness(t);
  h.handler.maxBodyBytes = 128;
  const body = patterned(64 * 3);
  t.equal((await h.ask(uploadBlock(body, 0))).packet.code, '2.31');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '2.31');
  const reply = await h.ask(uploadBlock(body, 2));
  t.equal(reply.packet.code, '4.13');
  t.equal(readUint(option(reply, 'Size1')), 128);
  t.equal(h.endpoint.uploadBytes(), 0);
  t.equal(h.handler.handled.length, 0);
});

t.test('Block1: block 0 larger than admit\'s maxBodyBytes gets 4.13 with Size1, nothing buffered', async (t) => {
  const h = harness(t);
  h.handler.maxBodyBytes = 32;
  const reply = await h.ask(uploadBlock(patterned(64 * 3), 0));
  t.equal(reply.packet.code, '4.13');
  t.equal(readUint(option(reply, 'Size1')), 32);
  t.equal(h.endpoint.uploadBytes(), 0);
  t.ok(h.uploadReports.every((bytes) => bytes === 0), 'the buffer gauge never rose');
});

t.test('Block1: a new upload gets 5.03 with Max-Age when reservations fill the buffer; the upload under way finishes', async (t) => {
  // 256 bytes: 224 for authenticated uploads, 32 for unauthenticated ones.
  const h = harness(t, { blockBufferBytes: 256 });
  h.handler.handleImpl = () => ({ code: '2.04' });
  const bodyA = patterned(64 * 3);
  const bodyB = Buffer.alloc(64 * 3, 0xbb);
  t.equal((await h.ask(uploadBlock(bodyA, 0, { size1: bodyA.length }), PEER_A)).packet.code, '2.31', 'A: 192 bytes set aside');
  const refused = await h.ask(uploadBlock(bodyB, 0, { accessToken: 'tok-B', size1: bodyB.length }), PEER_B);
  t.equal(refused.packet.code, '5.03', 'B: 192 + 192 set aside would pass 224, though only 64 bytes are buffered');
  t.equal(readUint(option(refused, 'Max-Age')), 5, 'with Max-Age');
  t.equal(h.endpoint.uploadBytes(), 64, 'A is still buffered, nothing of B');
  t.equal((await h.ask(uploadBlock(bodyA, 1), PEER_A)).packet.code, '2.31', 'A: block 1 has its room');
  t.equal((await h.ask(uploadBlock(bodyA, 2), PEER_A)).packet.code, '2.04', 'A: finished');
  t.ok(h.handler.handled[0]?.payload.equals(bodyA), 'with its whole body');
  t.same(h.evicted, [], 'nobody was pushed out');
  t.equal(h.endpoint.uploadBytes(), 0);
  t.equal((await h.ask(uploadBlock(bodyB, 0, { accessToken: 'tok-B', size1: bodyB.length }), PEER_B)).packet.code, '2.31',
    'B: room again once A is done');
});

t.test('Block1: an upload without Size1 sets aside the largest body admit allows; with Size1, only that', async (t) => {
  // 1024 bytes: 896 for authenticated uploads.
  const h = harness(t, { blockBufferBytes: 1024 });
  h.handler.maxBodyBytes = 512;
  const body = patterned(64 * 3);
  t.equal((await h.ask(uploadBlock(body, 0), PEER_A)).packet.code, '2.31', 'A: 512 set aside');
  t.equal((await h.ask(uploadBlock(body, 0, { accessToken: 'tok-B' }), PEER_B)).packet.code, '5.03', 'B without Size1: 512 more would pass 896');
  t.equal((await h.ask(uploadBlock(body, 0, { accessToken: 'tok-B', size1: body.length }), PEER_B)).packet.code, '2.31',
    'B with Size1 192: 704 fits');
  t.equal(h.endpoint.uploadBytes(), 128);
});

t.test('Block1: a body passing its own Size1 gets 4.00 and the upload is dropped', async (t) => {
  const h = harness(t);
  const body = patterned(64 * 3);
  t.equal((await h.ask(uploadBlock(body, 0, { size1: 100 }))).packet.code, '2.31', 'block 0: 64 of the 100 announced');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '4.00', 'block 1: 128 bytes, more than the device announced');
  t.equal(h.endpoint.uploadBytes(), 0, 'its bytes freed');
  t.equal((await h.ask(uploadBlock(body, 2))).packet.code, '4.08', 'the upload is gone');
  t.equal(h.handler.handled.length, 0);
  t.same(h.evicted, [], 'not an eviction');
});

t.test('Block1: a Size1 smaller than block 0 cannot make the buffer pass its bound', async (t) => {
  // 8192 bytes, 1024 of them for unauthenticated uploads; every peer announces 1 byte and sends 1024.
  const h = harness(t, { blockBufferBytes: 8192 });
  const body = patterned(2048);
  const peer = (n: number): Peer => ({ address: '198.51.100.7', port: 30_000 + n });
  h.handler.authenticated = () => false;
  for (let n = 0; n < 20; n += 1) await h.ask(uploadBlock(body, 0, { accessToken: undefined, size1: 1, szx: 6 }), peer(n));
  t.ok(h.endpoint.uploadBytes() <= 1024, `unauthenticated uploads buffer at most an eighth: ${h.endpoint.uploadBytes()} <= 1024 bytes`);
  h.handler.authenticated = () => true;
  for (let n = 20; n < 40; n += 1) await h.ask(uploadBlock(body, 0, { size1: 1, szx: 6 }), peer(n));
  t.ok(h.endpoint.uploadBytes() <= 8192, `all uploads buffer at most blockBufferBytes: ${h.endpoint.uploadBytes()} <= 8192 bytes`);
});

t.test('Block1: an anonymous upload cannot take the room of an authenticated upload from another peer', async (t) => {
  // 1024 bytes: 128 for unauthenticated uploads (logins), 896 for authenticated ones.
  const h = harness(t, { blockBufferBytes: 1024 });
  h.handler.authenticated = (req) => req.accessToken !== undefined;
  h.handler.handleImpl = (req) => ({ code: req.accessToken === undefined ? '2.01' : '2.04' });
  const login = patterned(128);
  const greedy = await h.ask(uploadBlock(patterned(1024), 0, { path: ['auth'], accessToken: undefined, size1: 1024 }), PEER_B);
  t.equal(greedy.packet.code, '5.03', 'an anonymous upload announcing the whole buffer is refused, the buffer empty');
  t.equal(readUint(option(greedy, 'Max-Age')), 5, 'with Max-Age');
  t.equal((await h.ask(uploadBlock(login, 0, { path: ['auth'], accessToken: undefined, size1: login.length }), PEER_B)).packet.code, '2.31',
    'B: an anonymous upload within the eighth');
  t.equal((await h.ask(uploadBlock(login, 0, { path: ['auth'], accessToken: undefined, size1: 128 }), PEER_A_OTHER_PORT)).packet.code,
    '5.03', 'another anonymous peer: the eighth is taken');
  const body = patterned(896);
  const codes: string[] = [];
  for (let num = 0; num < 14; num += 1) codes.push((await h.ask(uploadBlock(body, num, { size1: body.length }), PEER_A)).packet.code);
  t.same(codes, [...Array<string>(13).fill('2.31'), '2.04'], 'A: all seven eighths set aside and used, beside the anonymous upload');
  t.ok(h.handler.handled.at(-1)?.payload.equals(body), 'A got its whole body');
  t.equal((await h.ask(uploadBlock(login, 1, { path: ['auth'], accessToken: undefined }), PEER_B)).packet.code, '2.01',
    'B\'s anonymous upload finishes too');
  t.ok(h.handler.handled.at(-1)?.payload.equals(login));
  t.same(h.evicted, []);
  t.equal(h.endpoint.uploadBytes(), 0);
});

t.test('Block1: anonymous uploads never evict one under way: a newcomer waits (5.03) while the eighth is full', async (t) => {
  // 2048 bytes: 256 for unauthenticated uploads, room for two of 128.
  const h = harness(t, { blockBufferBytes: 2048 });
  h.handler.authenticated = () => false;
  h.handler.handleImpl = () => ({ code: '2.01' });
  const first = Buffer.alloc(128, 0x31);
  const second = Buffer.alloc(128, 0x32);
  const other = Buffer.alloc(128, 0x33);
  const anonymous = (body: Buffer, num: number, path: string[]) =>
    uploadBlock(body, num, { path, accessToken: undefined, ...(num === 0 ? { size1: body.length } : {}) });
  t.equal((await h.ask(anonymous(first, 0, ['auth']), PEER_B)).packet.code, '2.31', 'B: first upload');
  t.equal((await h.ask(anonymous(other, 0, ['auth']), PEER_A_OTHER_PORT)).packet.code, '2.31', 'another peer: the eighth now full');
  t.equal((await h.ask(anonymous(second, 0, ['refresh']), PEER_B)).packet.code, '5.03', 'B: a second upload waits');
  t.same(h.evicted, [], 'nothing under way was evicted (another host may share an address)');
  t.equal((await h.ask(anonymous(first, 1, ['auth']), PEER_B)).packet.code, '2.01', 'the first upload finishes');
  t.equal((await h.ask(anonymous(other, 1, ['auth']), PEER_A_OTHER_PORT)).packet.code, '2.01', 'the other peer\'s upload finishes');
  t.equal((await h.ask(anonymous(second, 0, ['refresh']), PEER_B)).packet.code, '2.31', 'now B\'s second upload fits');
  t.equal((await h.ask(anonymous(second, 1, ['refresh']), PEER_B)).packet.code, '2.01');
  t.same(h.handler.handled.map((req) => [req.path, req.payload.toString()]),
    [['/auth', first.toString()], ['/auth', other.toString()], ['/refresh', second.toString()]], 'each with its own body');
});

t.test('Block1: SZX 7 (BERT) is refused with 4.02 on UDP', async (t) => {
  const h = harness(t);
  const reply = await h.ask(request({ code: 'POST', path: ['readings'], payload: Buffer.alloc(16), block1: [0, true, 7] }));
  t.equal(reply.packet.code, '4.02');
  t.equal(h.endpoint.uploadBytes(), 0);
});

t.test('Block1: a single block (block 0, M=0) is handled at once and answered with its Block1', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const reply = await h.ask(uploadBlock(patterned(40), 0));
  t.equal(reply.packet.code, '2.04');
  t.same(block(reply, 'Block1'), { num: 0, more: false, szx: SZX64 });
  t.equal(h.handler.handled[0]?.payload.length, 40);
});

// ---------------------------------------------------------------------------------------------
// Block2 (RFC 7959 section 2.4)

function bigAnswer(h: ReturnType<typeof harness>, size: number): Buffer {
  const body = patterned(size);
  h.handler.handleImpl = () => ({ code: '2.05', payload: body, contentFormat: 60 });
  return body;
}

const getBlock = (num: number | undefined, options: { szx?: number; accessToken?: string; size2?: boolean } = {}) => request({
  path: ['big'], accessToken: options.accessToken ?? 'tok-A', size2: options.size2,
  ...(num === undefined ? {} : { block2: [num, false, options.szx ?? 6] as [number, boolean, number] }),
});

t.test('Block2: a 5000-byte answer goes in 1024-byte blocks with an ETag; later blocks do not call handle()', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 5000);
  const first = await h.ask(getBlock(undefined));
  t.equal(first.packet.code, '2.05');
  t.same(block(first, 'Block2'), { num: 0, more: true, szx: 6 });
  t.equal(first.packet.payload.length, 1024);
  const etag = option(first, 'ETag');
  t.equal(etag?.length, 8, 'an 8-byte ETag');
  t.equal(readUint(option(first, 'Content-Format')), 60, 'with the Content-Format');
  t.equal(option(first, 'Size2'), undefined, 'no Size2 unless asked');
  const parts = [first.packet.payload];
  for (let num = 1; num <= 4; num += 1) {
    const datagram = getBlock(num);
    const reply = await h.ask(datagram);
    t.equal(reply.packet.token.toString('hex'), parse(datagram).token.toString('hex'), `block ${num}: answers its own CoAP token`);
    t.same(block(reply, 'Block2'), { num, more: num < 4, szx: 6 }, `block ${num}: Block2`);
    t.ok(option(reply, 'ETag')?.equals(etag!), `block ${num}: the same ETag`);
    parts.push(reply.packet.payload);
  }
  t.equal(parts[4]?.length, 5000 - 4 * 1024, 'the last block is the rest');
  t.ok(Buffer.concat(parts).equals(body), 'the blocks make the answer');
  t.equal(h.handler.handled.length, 1, 'handle() once for five blocks');
});

t.test('Block2: Size2 is returned when the request carries Size2', async (t) => {
  const h = harness(t);
  bigAnswer(h, 5000);
  const first = await h.ask(getBlock(undefined, { size2: true }));
  t.equal(readUint(option(first, 'Size2')), 5000);
  const later = await h.ask(getBlock(2, { size2: true }));
  t.equal(readUint(option(later, 'Size2')), 5000, 'on a stored block too');
  const without = await h.ask(getBlock(3));
  t.equal(option(without, 'Size2'), undefined, 'not when not asked');
});

t.test('Block2: the device\'s SZX 2 (64-byte blocks) is honoured', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 5000);
  const first = await h.ask(getBlock(0, { szx: 2 }));
  t.same(block(first, 'Block2'), { num: 0, more: true, szx: 2 });
  t.ok(first.packet.payload.equals(body.subarray(0, 64)));
  const second = await h.ask(getBlock(1, { szx: 2 }));
  t.same(block(second, 'Block2'), { num: 1, more: true, szx: 2 });
  t.ok(second.packet.payload.equals(body.subarray(64, 128)));
  t.equal(h.handler.handled.length, 1);
});

t.test('Block2: a later block with another Access-Token is not served from the stored answer', async (t) => {
  const h = harness(t);
  bigAnswer(h, 5000);
  await h.ask(getBlock(undefined));
  await h.ask(getBlock(1, { accessToken: 'tok-other' }));
  t.equal(h.handler.handled.length, 2, 'the other token went through the handler');
});

t.test('Block2: an answer that fits one block is sent whole, without Block2 or ETag', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 1000);
  const reply = await h.ask(getBlock(undefined));
  t.ok(reply.packet.payload.equals(body));
  t.equal(option(reply, 'Block2'), undefined);
  t.equal(option(reply, 'ETag'), undefined);
});

t.test('Block2: a tokenless request gets 4.01 with Echo for every block, and the blocks with the Echo value', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 3000);
  // A path long enough that the 4.01 has room for its Echo option.
  const tokenless = (num: number | undefined, extra: [number, Buffer][] = []) => request({
    path: ['big', 'readings'], extra, ...(num === undefined ? {} : { block2: [num, false, 6] as [number, boolean, number] }),
  });
  const challenge = await h.ask(tokenless(undefined));
  t.equal(challenge.packet.code, '4.01');
  const echo = option(challenge, String(ECHO));
  if (echo === undefined) {
    t.fail('the 4.01 carries an Echo option');
    return;
  }
  t.equal((await h.ask(tokenless(1))).packet.code, '4.01', 'a later block without the Echo value: 4.01 too');
  const parts: Buffer[] = [];
  for (let num = 0; num < 3; num += 1) {
    const reply = await h.ask(tokenless(num, [[ECHO, echo]]));
    t.same(block(reply, 'Block2'), { num, more: num < 2, szx: 6 }, `block ${num} with the Echo value`);
    parts.push(reply.packet.payload);
  }
  t.ok(Buffer.concat(parts).equals(body), 'the blocks make the answer');
});

// ---------------------------------------------------------------------------------------------
// Shutdown and robustness

t.test('drain(): new requests get 5.03 with Max-Age; it resolves once the request in flight is answered', async (t) => {
  const h = harness(t);
  const release = h.handler.hold();
  h.endpoint.handle(request({ token: 'f1' }), PEER_A);
  let drained = false;
  const draining = h.endpoint.drain().then(() => { drained = true; });
  const busy = await h.ask(request({ path: ['some', 'longer', 'path'], token: 'f2' }), PEER_B);
  t.equal(busy.packet.code, '5.03');
  t.ok(option(busy, 'Max-Age') !== undefined, 'with Max-Age');
  t.equal(h.handler.handled.length, 1, 'the new request did not reach the handler');
  t.equal(drained, false, 'not drained while a request is in flight');
  release[0]!({ code: '2.05', payload: Buffer.from('last') });
  await draining;
  t.equal(h.endpoint.inFlight(), 0);
  const last = h.sent.find((s) => s.packet.token.toString('hex') === 'f1');
  t.equal(last?.packet.code, '2.05', 'the request in flight was answered');
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
