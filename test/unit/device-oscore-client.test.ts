import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { defaultTiming, updateTiming } from 'coap';
import { parse, type ParsedPacket } from 'coap-packet';
import t, { type Test } from 'tap';
import { DeviceClient, OscoreAnswerError } from '../../device-sim/src/device-client.ts';
import { DeviceOscoreContext } from '../../device-sim/src/oscore-context.ts';
import { optionNumber } from '../../gateway/src/coap/options.ts';
import { ContentFormat, ErrorKey, decodeCbor, encodeCbor } from '../../gateway/src/wire/index.ts';
import { readOscoreOption, type CoapMessage } from '../../gateway/src/wire/oscore/index.ts';
import { BLOCK1, BLOCK2, CBOR_FORMAT, ECHO, oscoreKeys as keys, oscoreServer, opt } from '../helpers/oscore-test-server.ts';

// The simulator's OSCORE client (DeviceClient with a DeviceOscoreContext) against a small OSCORE
// server built from the core's server-side functions (test/helpers/oscore-test-server.ts) over
// node:dgram: every byte the client sends is read off a real socket.

async function client(t: Test, port: number, oscore: DeviceOscoreContext, extra: { tokenBytes?: number } = {}): Promise<DeviceClient> {
  const c = await DeviceClient.open('127.0.0.1', port, { timeoutMs: 5000, oscore, ...extra });
  t.teardown(() => c.close());
  return c;
}

const optionsOf = (packet: ParsedPacket) => packet.options.map((o) => ({ number: optionNumber(o.name), value: o.value }));
const innerOption = (inner: CoapMessage | undefined, number: number) => inner?.options.filter((o) => o.number === number).map((o) => o.value.toString());

t.test('a protected reading: outer POST with only the OSCORE option, the inner request whole, the answer verified', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway]);
  const c = await client(t, server.port, device, { tokenBytes: 2 });
  const reading = new Map<string, unknown>([['temp', 215], ['seq', 1234], ['unit', 'degC']]);
  const answer = await c.send({ method: 'POST', path: '/telemetry/temp', body: reading, token: Buffer.from('a-cwt') });

  t.equal(answer.code, '2.01', 'the inner code');
  t.equal(answer.protection, 'oscore', 'the answer verified under the context');
  t.same(answer.body, new Map([['seq', 0]]), 'the inner CBOR body, decoded');
  t.equal(answer.contentFormat, ContentFormat.cbor, 'Content-Format from the inner options');

  t.equal(server.seen.length, 1, 'one datagram');
  const { packet, inner, datagram } = server.seen[0]!;
  t.equal(packet.code, '0.02', 'the outer code is POST (RFC 8613 section 4.2), for a POST as for anything else');
  t.same(optionsOf(packet).map((o) => o.number), [9], 'outside: the OSCORE option and nothing else (no Uri-Path, no Content-Format, no Access-Token)');
  t.equal(packet.token.length, 2, 'the 2-byte CoAP token asked for');
  t.notOk(datagram.includes(Buffer.from('telemetry')), 'the path is not on the wire in clear');
  t.notOk(datagram.includes(Buffer.from('a-cwt')), 'nor the access token');
  t.notOk(datagram.includes(encodeCbor(reading)), 'nor the reading');
  const option = readOscoreOption(optionsOf(packet)[0]!.value);
  t.same(option.kid, Buffer.of(0x2a), 'kid: the device\'s Sender ID');
  t.same(option.partialIv, Buffer.of(0), 'Partial IV 0: the first request of the context');
  t.equal(inner?.code, '0.02', 'inside: POST');
  t.same(innerOption(inner, 11), ['telemetry', 'temp'], 'inside: the Uri-Path');
  t.same(inner?.options.find((o) => o.number === 12)?.value, CBOR_FORMAT, 'inside: Content-Format 60');
  t.same(innerOption(inner, 65_003), ['a-cwt'], 'inside: the Access-Token');
  t.same(decodeCbor(inner!.payload), reading, 'inside: the reading');
  t.same(c.lastRequestDatagram, datagram, 'lastRequestDatagram is the datagram as it went on the wire');
  // 4 header + 2 token + 4 OSCORE option + 1 marker + ciphertext (1 code + 10 + 5 Uri-Path + 2 Content-Format + 8 Access-Token
  // + 1 marker + 25) + 8 tag.
  t.equal(datagram.length, 4 + 2 + 4 + 1 + (1 + 10 + 5 + 2 + 8 + 1 + 25) + 8, `${datagram.length} bytes on the wire`);
  t.same(c.oscoreStats(), { protectedRequests: 1, echoRecoveries: 0, unprotectedErrors: 0, refusedAnswers: 0 });
});

t.test('a GET, a query and Accept travel inside; the sequence number grows by one a request', async (t) => {
  const { device, gateway } = keys(Buffer.of(0x01, 0x02));
  const server = await oscoreServer(t, [gateway], { answer: () => ({ code: '2.05', options: [opt(12, CBOR_FORMAT), opt(14, Buffer.of(60))], payload: encodeCbor({ interval: 60 }) }) });
  const c = await client(t, server.port, device);
  for (let i = 0; i < 3; i += 1) {
    const answer = await c.send({ path: '/config', query: 'a=1&b=2', accept: ContentFormat.cbor });
    t.equal(answer.code, '2.05');
    t.equal(answer.maxAgeSec, 60, 'Max-Age from the inner options');
  }
  t.same(server.seen.map((s) => s.sequenceNumber), [0, 1, 2], 'sequence numbers 0, 1, 2');
  t.same(server.seen.map((s) => s.packet.code), ['0.02', '0.02', '0.02'], 'a GET goes out as POST');
  t.same(innerOption(server.seen[0]!.inner, 15), ['a=1', 'b=2'], 'Uri-Query inside');
  t.equal(server.seen[0]!.inner?.code, '0.01', 'the inner code is GET');
  t.same(readOscoreOption(optionsOf(server.seen[0]!.packet)[0]!.value).kid, Buffer.of(0x01, 0x02), 'a 2-byte kid');
  t.equal(device.nextSequenceNumber, 3, 'the context\'s next number');
  const again = await client(t, server.port, device);
  await again.send({ path: '/config' });
  t.equal(server.seen[3]!.sequenceNumber, 3, 'a second client of the same context continues the count: no number used twice');
});

t.test('a retransmission is the same datagram: the same sequence number, never a new encryption', async (t) => {
  // node-coap's retransmission timer, short (for the requests of this test), so that it takes milliseconds.
  updateTiming({ ackTimeout: 0.05, ackRandomFactor: 1 });
  t.teardown(() => defaultTiming());
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway], { send: 'drop-first' });
  const c = await client(t, server.port, device);
  const answer = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 } });
  t.equal(answer.code, '2.01', 'answered after the retransmission');
  t.equal(server.datagrams.length, 2, 'sent twice');
  t.same(server.datagrams[1], server.datagrams[0], 'byte for byte the same datagram');
  t.equal(device.nextSequenceNumber, 1, 'one sequence number spent');
});

t.test('Echo recovery (RFC 8613 Appendix B.1.2): a protected 4.01 with Echo, answered at once with a new number and the Echo inside', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway], { echoFirst: true });
  const c = await client(t, server.port, device);
  const answer = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 } });
  t.equal(answer.code, '2.01', 'the caller sees the answer to the repeated request');
  t.equal(answer.protection, 'oscore');
  t.equal(server.seen.length, 2, 'two requests');
  t.same(server.seen.map((s) => s.sequenceNumber), [0, 1], 'the repetition under a new sequence number');
  t.notOk(server.seen[0]!.inner?.options.some((o) => o.number === ECHO), 'the first had no Echo');
  t.equal(server.seen[1]!.inner?.options.filter((o) => o.number === ECHO).length, 1, 'the second carries the Echo, inside the protection');
  t.notOk(optionsOf(server.seen[1]!.packet).some((o) => o.number === ECHO), 'and not outside');
  t.same(innerOption(server.seen[1]!.inner, 11), ['telemetry', 'temp'], 'the same request otherwise');
  t.equal(c.oscoreStats().echoRecoveries, 1, 'counted as one Echo recovery');
  const next = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 2 } });
  t.equal(next.code, '2.01', 'the window is established: the next request needs no Echo');
  t.equal(c.oscoreStats().echoRecoveries, 1);
});

t.test('a success in clear is refused: anyone on the path could have sent it', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway], { send: 'clear-success' });
  const c = await client(t, server.port, device);
  await t.rejects(c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 } }),
    { name: 'OscoreAnswerError', code: 'OSCORE_UNPROTECTED_SUCCESS', coapCode: '2.01' });
  t.equal(c.oscoreStats().refusedAnswers, 1);
});

t.test('a protected answer with one ciphertext bit changed is refused', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway], { send: 'tampered' });
  const c = await client(t, server.port, device);
  const refused = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 } }).then(() => undefined, (err: unknown) => err);
  t.ok(refused instanceof OscoreAnswerError, 'an OscoreAnswerError');
  t.equal((refused as OscoreAnswerError).code, 'OSCORE_ANSWER_NOT_VERIFIED');
  t.match((refused as Error).message, /does not verify \(decrypt_failed\)/, 'the message says why');
  t.equal(c.oscoreStats().refusedAnswers, 1);
});

t.test('an answer protected under another context is refused', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway], { answerWith: keys().gateway });
  const c = await client(t, server.port, device);
  await t.rejects(c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 } }), { code: 'OSCORE_ANSWER_NOT_VERIFIED', coapCode: '2.04' });
  t.ok(server.seen[0]!.inner !== undefined, 'the request itself verified at the server');
});

t.test('errors in clear (RFC 8613 section 8.2) are answers, marked unprotected: a tampered request, a replay', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway]);
  const c = await client(t, server.port, device);
  const tampered = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 }, tamperCiphertext: true });
  t.equal(tampered.code, '4.00', 'one ciphertext bit flipped: 4.00');
  t.equal(tampered.protection, 'none');
  t.equal((tampered.body as Map<number, number>).get(ErrorKey.code), 22, 'wire error 22');
  t.equal(server.seen[0]!.inner, undefined, 'the server decrypted nothing');

  const good = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 2 } });
  t.equal(good.code, '2.01');
  // The protected datagram again, from another socket (an eavesdropper's), byte for byte.
  const eavesdropper = createSocket('udp4');
  await new Promise<void>((resolve) => eavesdropper.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => eavesdropper.close(() => resolve())));
  const answered = new Promise<Buffer>((resolve) => eavesdropper.once('message', (msg) => resolve(msg)));
  eavesdropper.send(c.lastRequestDatagram!, server.port, '127.0.0.1');
  const replayed = parse(await answered);
  t.equal(replayed.code, '4.01', 'the replay: 4.01');
  t.equal((decodeCbor(replayed.payload) as Map<number, number>).get(ErrorKey.code), 23, 'wire error 23');
  t.same(c.oscoreStats(), { protectedRequests: 2, echoRecoveries: 0, unprotectedErrors: 1, refusedAnswers: 0 });
});

t.test('inner Block1 upload: each block its own protected request; inner Block2: the answer fetched block by block', async (t) => {
  const { device, gateway } = keys();
  const uploaded: Buffer[] = [];
  const big = randomBytes(700);
  const server = await oscoreServer(t, [gateway], {
    answer: (inner) => {
      const block1 = inner.options.find((o) => o.number === BLOCK1)?.value;
      const block2 = inner.options.find((o) => o.number === BLOCK2)?.value;
      if (block1 !== undefined) {
        uploaded.push(inner.payload);
        const more = (block1[block1.length - 1]! & 0x08) !== 0;
        if (more) return { code: '2.31', options: [opt(BLOCK1, block1)], payload: Buffer.alloc(0) };
        return { code: '2.04', options: [], payload: Buffer.alloc(0) };
      }
      // The answer: 700 bytes in blocks of 256 (SZX 4).
      const num = block2 === undefined ? 0 : block2.length === 0 ? 0 : block2.readUIntBE(0, block2.length) >> 4;
      const more = (num + 1) * 256 < big.length;
      return { code: '2.05', options: [opt(BLOCK2, Buffer.of((num << 4) | (more ? 8 : 0) | 4))], payload: big.subarray(num * 256, (num + 1) * 256) };
    },
  });
  const c = await client(t, server.port, device);
  const upload = randomBytes(3000);
  const put = await c.send({ method: 'PUT', path: '/firmware/log', payload: upload, contentFormat: ContentFormat.octetStream, block1Bytes: 512 });
  t.equal(put.code, '2.04', 'the last block answered 2.04');
  t.equal(uploaded.length, 6, 'six blocks of 512 for 3000 bytes');
  t.same(Buffer.concat(uploaded), upload, 'the blocks make the upload whole');
  const first = server.seen[0]!.inner!;
  t.same(first.options.find((o) => o.number === 60)?.value, Buffer.of(0x0b, 0xb8), 'Size1 3000 on the first block');
  t.same(optionsOf(server.seen[0]!.packet).map((o) => o.number), [9], 'no Block1 outside');
  t.same(server.seen.map((s) => s.sequenceNumber), [0, 1, 2, 3, 4, 5], 'a sequence number per block');

  const get = await c.send({ path: '/big' });
  t.equal(get.code, '2.05');
  t.same(get.payload, big, 'three Block2 blocks put together');
  t.equal(server.seen.length, 9, 'three more requests');
});

t.test('a client of a context refuses misuse; a request in clear still works when asked for', async (t) => {
  const { device, gateway } = keys();
  const server = await oscoreServer(t, [gateway]);
  const c = await client(t, server.port, device);
  const clear = await c.send({ method: 'POST', path: '/telemetry/temp', body: { t: 1 }, protection: 'none' });
  t.equal(clear.code, '4.01', 'the server refuses a request in clear');
  t.equal(clear.protection, undefined, 'an answer to a request in clear has no protection field');
  t.same(optionsOf(server.seen[0]!.packet).map((o) => o.number), [11, 11, 12], 'sent in clear: Uri-Path and Content-Format outside');
  await t.rejects(c.send({ path: '/x', protection: 'none', tamperCiphertext: true }), TypeError);
  await t.rejects(c.send({ path: '/x', block1Bytes: 100, payload: Buffer.alloc(300) }), /block1Bytes: one of 16, 32/);
  await t.rejects(DeviceClient.open('127.0.0.1', server.port, { tokenBytes: 9 }), TypeError);
  t.throws(() => DeviceOscoreContext.fromHex({ senderId: '', recipientId: '', masterSecret: '00', masterSalt: '' }), /never empty/);
});
