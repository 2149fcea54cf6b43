import { Decoder } from 'cbor-x';
import { generate, type ParsedPacket } from 'coap-packet';
import t, { type Test } from 'tap';
import { ACCESS_TOKEN_OPTION, ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { sampleSum, sampleValue } from '../helpers/admin-prometheus.ts';
import { blockValue } from '../helpers/coap-wire.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import type { BackendHandler } from '../helpers/test-backend.ts';
import { UdpProbe, describe, type Peer } from '../helpers/udp-probe.ts';

// RFC 7252 section 4 messaging of the gateway's own endpoint, against the real gateway process
// (`gateway serve`) with raw datagrams: what it answers with RST, what it must never answer, that
// it answers only the address and port a request came from, and that separate responses are
// retransmitted until the device acknowledges or resets them. Silence is proven by the ping
// barrier of UdpProbe (a ping sent after the datagram; nothing may arrive before its RST).

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });
const CON = 0;
const NON = 1;
const ACK = 2;
const RST = 3;
const GET = 0x01;
/** RFC 9175 section 2.2. */
const ECHO_OPTION = 252;

let gw: GatewayProcess;
let accessToken: string;
let gateway: Peer;

t.before(async () => {
  // A piggyback window wide enough that a loopback backend always answers within it (a slow
  // backend is simulated by holding its answer), so which answers are piggybacked is certain.
  gw = await startGatewayProcess(t, { admin: true, devices: 3, config: { piggybackReplyMs: 500 } });
  gateway = { address: '127.0.0.1', port: gw.port };
  accessToken = await gw.login(0);
});

/** The fixed 4-byte header (RFC 7252 section 3), any field value allowed, followed by `rest`. */
function header(type: number, tokenLength: number, code: number, messageId: number, rest: number[] = [], version = 1): Buffer {
  return Buffer.from([(version << 6) | (type << 4) | tokenLength, code, messageId >> 8, messageId & 0xff, ...rest]);
}

interface Request {
  messageId: number;
  token: Buffer;
  path?: string[];
  method?: 'GET' | 'POST' | 'FETCH';
  confirmable?: boolean;
  withToken?: boolean;
  options?: { name: string; value: Buffer }[];
  payload?: Buffer;
}

/** A well-formed request; by default a tokened GET /config (option 65003 = the device's access token). */
function request(r: Request): Buffer {
  const options: { name: string; value: Buffer }[] = (r.path ?? ['config']).map((segment) => ({ name: 'Uri-Path', value: Buffer.from(segment) }));
  if (r.withToken !== false) options.push({ name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(accessToken) });
  options.push(...(r.options ?? []));
  return generate({
    code: r.method ?? 'GET', messageId: r.messageId, token: r.token, confirmable: r.confirmable ?? true, options,
    payload: r.payload ?? Buffer.alloc(0),
  }, 65_535);
}

const answerTo = (token: Buffer) => (p: ParsedPacket) => p.code !== '0.00' && p.token.equals(token);
const resetOf = (messageId: number) => (p: ParsedPacket) => p.reset && p.code === '0.00' && p.messageId === messageId;

/**
 * A request the gateway answers without any I/O (no token to verify, no backend), so that an
 * answer it should not have sent would come before the RST of the ping barrier.
 */
function wellKnownCore(messageId: number, token: string): Buffer {
  return request({ messageId, token: Buffer.from(token), path: ['.well-known', 'core'], withToken: false });
}

function versioned(datagram: Buffer, version: number): Buffer {
  const copy = Buffer.from(datagram);
  copy[0] = (copy[0]! & 0x3f) | (version << 6);
  return copy;
}

/** The test backend's default answer, put back after a test that changed it. */
const okHandler: BackendHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, path: req.url }));
};

/** Every datagram a probe received came from the gateway's own address and port. */
function allFromGateway(t: Test, probe: UdpProbe, what: string): void {
  const elsewhere = probe.received.filter((a) => a.from.address !== gateway.address || a.from.port !== gateway.port);
  t.same(elsewhere.map(describe), [], `${what}: every datagram came from the gateway's address and port`);
}

t.test('ping (an Empty CON) gets an RST with its message ID; the RST is an Empty message', async (t) => {
  const probe = await UdpProbe.open(t, gateway);
  await probe.send(header(CON, 0, 0, 0x1234));
  const rst = await probe.next(resetOf(0x1234), 'RST to the ping');
  t.equal(rst.token.length, 0, 'no token');
  t.equal(rst.options.length + rst.payload.length, 0, 'no options, no payload');
  await probe.expectSilence(t, 'nothing but the RST');
  allFromGateway(t, probe, 'ping');
});

interface Hostile { what: string; datagram: Buffer; answer: 'silence' | 'rst' }

t.test('malformed, foreign and stray datagrams: an RST for a confirmable format error, silence for the rest', async (t) => {
  const probe = await UdpProbe.open(t, gateway);
  const random = seededRandom(0x5eed7);
  const before = await gw.metrics();
  let mid = 0x2000;
  const cases: Hostile[] = [
    { what: 'an Empty NON', datagram: header(NON, 0, 0, mid++), answer: 'silence' },
    { what: 'version 2 (a GET /.well-known/core)', datagram: versioned(wellKnownCore(mid++, 'v2'), 2), answer: 'silence' },
    { what: 'version 0 (a GET /.well-known/core)', datagram: versioned(wellKnownCore(mid++, 'v0'), 0), answer: 'silence' },
    { what: 'version 3, an Empty CON', datagram: header(CON, 0, 0, mid++, [], 3), answer: 'silence' },
    { what: 'a 1-byte datagram', datagram: Buffer.from([0x40]), answer: 'silence' },
    { what: 'a 3-byte datagram', datagram: Buffer.from([0x40, 0x01, 0x12]), answer: 'silence' },
    { what: 'an empty datagram', datagram: Buffer.alloc(0), answer: 'silence' },
    ...Array.from({ length: 20 }, (_, i): Hostile => {
      // Random bytes, with a version that is not 1: no CoAP endpoint may answer them.
      const junk = random.bytes(1 + random.int(300));
      junk[0] = (junk[0]! & 0x3f) | (random.pick([0, 2, 3]) << 6);
      return { what: `random garbage ${i} (${junk.length} bytes)`, datagram: junk, answer: 'silence' };
    }),
    { what: 'token length 9, CON', datagram: header(CON, 9, GET, mid++, [...Buffer.alloc(9, 7)]), answer: 'rst' },
    { what: 'token length 15, CON', datagram: header(CON, 15, GET, mid++, [...Buffer.alloc(15, 7)]), answer: 'rst' },
    { what: 'token length 9, NON', datagram: header(NON, 9, GET, mid++, [...Buffer.alloc(9, 7)]), answer: 'silence' },
    { what: 'an RFC 8974 extended token (TKL 13, 200 bytes), CON', datagram: header(CON, 13, GET, mid++, [187, ...Buffer.alloc(200, 9)]), answer: 'rst' },
    { what: 'an Empty CON with a byte after the header', datagram: header(CON, 0, 0, mid++, [0x00]), answer: 'rst' },
    { what: 'option delta 15 that is not the payload marker, CON', datagram: header(CON, 0, GET, mid++, [0xf1, 0x41]), answer: 'rst' },
    { what: 'option length 15 (reserved), CON', datagram: header(CON, 0, GET, mid++, [0xbf, 0x61]), answer: 'rst' },
    { what: 'an option running past the end, CON', datagram: header(CON, 0, GET, mid++, [0xb8, 0x63, 0x6f]), answer: 'rst' },
    { what: 'a payload marker with no payload, CON', datagram: header(CON, 0, GET, mid++, [0xb6, ...Buffer.from('config'), 0xff]), answer: 'rst' },
    { what: 'a payload marker with no payload, NON', datagram: header(NON, 0, GET, mid++, [0xb6, ...Buffer.from('config'), 0xff]), answer: 'silence' },
    { what: 'a response code (2.05) in a CON', datagram: header(CON, 1, 0x45, mid++, [0x01]), answer: 'rst' },
    { what: 'a response code (2.05) in a NON', datagram: header(NON, 1, 0x45, mid++, [0x01]), answer: 'silence' },
    { what: 'a reserved code class (7.01), CON', datagram: header(CON, 0, 0xe1, mid++), answer: 'rst' },
    { what: 'a stray ACK carrying a response', datagram: header(ACK, 1, 0x45, mid++, [0x01, 0xff, 0x41]), answer: 'silence' },
    { what: 'a stray empty ACK', datagram: header(ACK, 0, 0, mid++), answer: 'silence' },
    { what: 'a stray RST', datagram: header(RST, 0, 0, mid++), answer: 'silence' },
    { what: 'an RST carrying a code (not Empty)', datagram: header(RST, 0, GET, mid++), answer: 'silence' },
  ];
  for (const c of cases) {
    await probe.send(c.datagram);
    if (c.answer === 'rst') {
      const messageId = c.datagram.readUInt16BE(2);
      await probe.next(resetOf(messageId), `${c.what}: RST with message ID ${messageId}`);
      t.pass(`${c.what}: RST (RFC 7252 section 4.2)`);
    }
    await probe.expectSilence(t, `${c.what}: ${c.answer === 'rst' ? 'nothing but the RST' : 'no answer'}`);
  }
  allFromGateway(t, probe, 'hostile datagrams');
  const after = await gw.metrics();
  for (const reason of ['version', 'short', 'format', 'empty_non', 'stray_ack', 'stray_reset', 'response']) {
    const delta = sampleSum(after, 'coap_gateway_datagrams_dropped_total', { reason }) - sampleSum(before, 'coap_gateway_datagrams_dropped_total', { reason });
    t.ok(delta > 0, `coap_gateway_datagrams_dropped_total{reason="${reason}"} counted them (+${delta})`);
  }
  await gw.assertStillServes(t);
});

t.test('1,000 stray RSTs and 1,000 stray empty ACKs get no answer at all', async (t) => {
  const probe = await UdpProbe.open(t, gateway);
  const before = await gw.metrics();
  for (let i = 0; i < 1000; i += 1) {
    await probe.send(header(RST, 0, 0, (0x3000 + i) & 0xffff));
    await probe.send(header(ACK, 0, 0, (0x5000 + i) & 0xffff));
  }
  const stray = await probe.silence();
  t.equal(stray.length, 0, `zero answers to 2,000 stray messages (got ${stray.length}: ${stray.slice(0, 3).map(describe).join('; ')})`);
  const after = await gw.metrics();
  const resets = (sampleValue(after, 'coap_gateway_resets_received_total') ?? 0) - (sampleValue(before, 'coap_gateway_resets_received_total') ?? 0);
  t.equal(resets, 1000, 'coap_gateway_resets_received_total counts the 1,000 RSTs');
  await gw.assertStillServes(t);
});

t.test('each unimplemented critical option gets 4.02 Bad Option; an unknown elective one is ignored', async (t) => {
  const probe = await UdpProbe.open(t, gateway);
  const backendBefore = gw.backend.requests.length;
  const critical: [number, Buffer][] = [
    [19, blockValue(0, false, 2)], // Q-Block1
    [31, blockValue(0, false, 2)], // Q-Block2
    [2049, Buffer.from([0x10, 0x00])], // OCF-Accept-Content-Format-Version
    [2053, Buffer.from([0x10, 0x00])], // OCF-Content-Format-Version
    [65001, Buffer.from('x')], // experimental, critical, unknown to every library
  ];
  let messageId = 0x4000;
  for (const [number, value] of critical) {
    const token = Buffer.from([0x0b, number >> 8, number & 0xff]);
    await probe.send(request({ messageId: messageId++, token, options: [{ name: String(number), value }] }));
    const answer = await probe.next(answerTo(token), `answer with option ${number}`);
    t.equal(answer.code, '4.02', `option ${number}: 4.02`);
    t.ok(answer.ack, `option ${number}: piggybacked in the ACK`);
    t.equal((cbor.decode(answer.payload) as Map<number, unknown>).get(ErrorKey.code), WireError.badOption, `option ${number}: wire error badOption`);
  }
  // OSCORE (9) is implemented: a device that asked for protection never gets plaintext, and an
  // empty kid names no context (4.01, wire code 21, in clear: RFC 8613 section 8.2).
  const oscoreToken = Buffer.from('0b0009', 'hex');
  await probe.send(request({ messageId: messageId++, token: oscoreToken, options: [{ name: '9', value: Buffer.from([0x09, 0x01]) }] }));
  const oscore = await probe.next(answerTo(oscoreToken), 'answer with option 9');
  t.equal(oscore.code, '4.01', 'option 9 with an empty kid: 4.01');
  t.equal((cbor.decode(oscore.payload) as Map<number, unknown>).get(ErrorKey.code), WireError.oscoreUnknownContext, 'wire code 21: no such context');
  t.equal(gw.backend.requests.length, backendBefore, 'none reached the backend');
  const token = Buffer.from('e1ec', 'hex');
  await probe.send(request({ messageId: messageId++, token, options: [{ name: '65000', value: Buffer.from('x') }] }));
  t.equal((await probe.next(answerTo(token), 'answer with option 65000')).code, '2.05', 'elective option 65000: ignored, 2.05');
  await probe.expectSilence(t, 'one answer each, nothing more');
  await gw.assertStillServes(t);
});

t.test('a GET with Observe is answered without Observe: the device knows it is not registered (RFC 7641 section 4.1)', async (t) => {
  const probe = await UdpProbe.open(t, gateway);
  const token = Buffer.from('0b5e', 'hex');
  await probe.send(request({ messageId: 0x4100, token, options: [{ name: 'Observe', value: Buffer.alloc(0) }] }));
  const answer = await probe.next(answerTo(token), 'answer to GET with Observe');
  t.equal(answer.code, '2.05');
  t.notOk(answer.options.some((o) => o.name === 'Observe'), 'no Observe option');
  await probe.expectSilence(t, 'one answer, no notifications');
});

t.test('a retransmitted CON with an 8-byte token gets the same answer; the backend sees one request', async (t) => {
  const probe = await UdpProbe.open(t, gateway);
  let served = 0;
  gw.backend.setHandler((_req, res) => {
    served += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ served }));
  });
  t.teardown(() => gw.backend.setHandler(okHandler));
  const token = Buffer.from('0123456789abcdef', 'hex');
  const datagram = request({ messageId: 0x4200, token });
  await probe.send(datagram);
  const first = await probe.next(answerTo(token), 'the first answer');
  t.equal(first.code, '2.05');
  t.ok(first.ack && first.messageId === 0x4200, 'piggybacked in the ACK');
  t.same(first.token, token, 'echoes the whole 8-byte token');
  for (const copy of [2, 3, 4]) {
    await probe.send(datagram);
    const again = await probe.next(answerTo(token), `answer to copy ${copy}`);
    t.same(again, first, `copy ${copy}: the same answer`);
  }
  await probe.expectSilence(t, 'one answer per copy, nothing more');
  t.equal(served, 1, 'the backend saw the request once');
  // node-coap's server threw "Max packet size is 1152" (and the process exited) for exactly this, with extended tokens.
  for (const path of [['.well-known', 'core'], ['auth']]) {
    const extended = header(CON, 13, path[0] === 'auth' ? 0x02 : GET, 0x4300 + path.length, [
      187, ...Buffer.alloc(200, 0xee), ...generate({ code: 'GET', messageId: 0, token: Buffer.alloc(0), options: path.map((s) => ({ name: 'Uri-Path', value: Buffer.from(s) })) }).subarray(4),
    ]);
    for (const copy of [1, 2]) {
      await probe.send(extended);
      await probe.next(resetOf(0x4300 + path.length), `RST to copy ${copy} of an extended-token request to /${path.join('/')}`);
    }
    t.pass(`an extended (RFC 8974) token to /${path.join('/')}, twice: an RST each time`);
  }
  await gw.assertStillServes(t);
});

t.test('every answer goes to the address and port the request came from (127.0.0.2, not 127.0.0.1)', async (t) => {
  // node-coap answered some malformed datagrams without an address, so Node sent them to
  // 127.0.0.1 at the sender's port. A sentinel on 127.0.0.1 at the same port sees any such answer.
  const device = await UdpProbe.open(t, gateway, '127.0.0.2');
  const sentinel = await UdpProbe.open(t, gateway, '127.0.0.1', device.local.port).catch(() => undefined);
  if (sentinel === undefined) t.comment(`port ${device.local.port} is taken on 127.0.0.1: the sentinel is left out this run`);
  let messageId = 0x6000;
  const token = () => Buffer.from([0x51, messageId & 0xff]);
  const sends: [string, Buffer, boolean][] = [
    ['a ping', header(CON, 0, 0, messageId++), true],
    ['a 1-byte datagram', Buffer.from([0x40]), false],
    ['version 0', header(CON, 0, GET, messageId++, [], 0), false],
    ['token length 9, CON', header(CON, 9, GET, messageId++, [...Buffer.alloc(9)]), true],
    ['FETCH without Content-Format', request({ messageId: messageId++, token: token(), method: 'FETCH', payload: Buffer.from('{}') }), true],
    ['Observe on POST', request({ messageId: messageId++, token: token(), method: 'POST', path: ['telemetry', 't'], options: [{ name: 'Observe', value: Buffer.alloc(0) }], payload: Buffer.from([0xa0]) }), true],
    ['a zero-length Block1', request({ messageId: messageId++, token: token(), method: 'POST', path: ['telemetry', 't'], options: [{ name: 'Block1', value: Buffer.alloc(0) }], payload: Buffer.from([0xa0]) }), true],
    ['a tokenless GET /config', request({ messageId: messageId++, token: token(), withToken: false }), true],
    ['GET /.well-known/core', request({ messageId: messageId++, token: token(), path: ['.well-known', 'core'], withToken: false }), true],
  ];
  const answers = new Map<string, ParsedPacket>();
  for (const [what, datagram, answered] of sends) {
    await device.send(datagram);
    if (answered) answers.set(what, await device.next((p) => p.messageId === datagram.readUInt16BE(2), `the answer to ${what}`));
    await device.expectSilence(t, `${what}: ${answered ? 'answered once, on 127.0.0.2' : 'no answer'}`);
  }
  // RFC 9175 section 2.4: the listing is larger than the request, so the answer above was a 4.01
  // with an Echo value; the request repeated with it proves 127.0.0.2 and gets the listing, there.
  const challenge = answers.get('GET /.well-known/core');
  const echo = challenge?.options.find((o) => o.name === String(ECHO_OPTION))?.value;
  t.equal(challenge?.code, '4.01', 'GET /.well-known/core without an Access-Token: first a 4.01');
  t.ok(echo !== undefined, 'with an Echo option');
  const withEcho = request({
    messageId: messageId++, token: token(), path: ['.well-known', 'core'], withToken: false,
    options: [{ name: String(ECHO_OPTION), value: echo ?? Buffer.alloc(1) }],
  });
  await device.send(withEcho);
  const listing = await device.next((p) => p.messageId === withEcho.readUInt16BE(2), 'the answer to GET /.well-known/core with the Echo value');
  t.equal(listing.code, '2.05', 'with the Echo value from 127.0.0.2: the listing');
  t.match(listing.payload.toString('utf8'), /<\/auth>/);
  await device.expectSilence(t, 'GET /.well-known/core with the Echo value: answered once, on 127.0.0.2');
  allFromGateway(t, device, 'device on 127.0.0.2');
  if (sentinel !== undefined) await sentinel.expectSilence(t, 'the sentinel on 127.0.0.1 at the same port got nothing');
  await gw.assertStillServes(t);
});

t.test('a separate response is retransmitted until ACKed, and stops on ACK or on RST', async (t) => {
  // Transmission defaults (RFC 7252 section 4.8): copies at 0, 2-3 s, 6-9 s, 14-21 s... A third
  // copy can come no later than ACK_TIMEOUT x ACK_RANDOM_FACTOR x (1 + 2) = 9 s after the first.
  t.setTimeout(30_000);
  const LAST_THIRD_COPY_MS = 9000;
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  gw.backend.setHandler(async (req, res) => {
    await released;
    okHandler(req, res);
  });
  t.teardown(() => gw.backend.setHandler(okHandler));
  const before = await gw.metrics();
  const exchanges = await Promise.all(['ack', 'rst', 'none'].map(async (how, i) => {
    const probe = await UdpProbe.open(t, gateway);
    const token = Buffer.from(`sep-${how}`);
    await probe.send(request({ messageId: 0x7000 + i, token }));
    await probe.next((p) => p.ack && p.code === '0.00' && p.messageId === 0x7000 + i, `empty ACK (${how})`);
    return { how, probe, token };
  }));
  t.pass('each request got an empty ACK: the answer will be separate (RFC 7252 section 5.2.2)');
  release();
  const runs = await Promise.all(exchanges.map(async ({ how, probe, token }) => {
    const first = await probe.next(answerTo(token), `separate response (${how})`);
    const firstAtMs = performance.now();
    const second = await probe.next(answerTo(token), `first retransmission (${how})`);
    const gapMs = performance.now() - firstAtMs;
    const ackOrReset = how === 'ack' ? ACK : RST;
    if (how !== 'none') await probe.send(header(ackOrReset, 0, 0, second.messageId));
    return { how, probe, token, first, second, firstAtMs, gapMs };
  }));
  for (const r of runs) {
    t.ok(r.first.confirmable && r.first.code === '2.05', `${r.how}: a CON 2.05`);
    t.equal(r.second.messageId, r.first.messageId, `${r.how}: the retransmission has the same message ID`);
    t.same(r.second.payload, r.first.payload, `${r.how}: and the same payload`);
    t.ok(r.gapMs >= 1900 && r.gapMs <= 3500, `${r.how}: sent again after ${Math.round(r.gapMs)} ms (ACK_TIMEOUT 2-3 s)`);
  }
  // Absence over time can only be shown by waiting past the moment a copy would have come.
  const waitMs = Math.max(...runs.map((r) => r.firstAtMs)) + LAST_THIRD_COPY_MS + 300 - performance.now();
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  const none = runs.find((r) => r.how === 'none')!;
  // Claimed, so the silence checks below see only what comes after it (a missing one fails the count).
  await none.probe.next(answerTo(none.token), 'third copy', 0).catch(() => undefined);
  for (const r of runs) {
    const copies = r.probe.received.filter((a) => a.packet !== undefined && answerTo(r.token)(a.packet)).length;
    if (r.how === 'none') t.equal(copies, 3, 'never acknowledged: a third copy came (the wait was long enough to see one)');
    else t.equal(copies, 2, `${r.how === 'ack' ? 'ACK' : 'RST'} after the second copy: no third copy`);
  }
  await none.probe.send(header(RST, 0, 0, none.first.messageId));
  const after = await gw.metrics();
  const delta = (name: string) => (sampleValue(after, name) ?? 0) - (sampleValue(before, name) ?? 0);
  t.equal(delta('coap_gateway_retransmissions_total'), 4, 'coap_gateway_retransmissions_total: 1 + 1 + 2');
  t.ok(delta('coap_gateway_resets_received_total') >= 1, 'coap_gateway_resets_received_total moved');
  for (const r of runs) await r.probe.expectSilence(t, `${r.how}: nothing more arrived`);
  await gw.assertStillServes(t);
});
