import t from 'tap';
import { generate, type Packet } from 'coap-packet';
import { decodeDatagram } from '../../gateway/src/coap/decode-datagram.ts';

// RFC 7252 sections 3 and 4: what the endpoint may answer to each kind of datagram. Well-formed
// datagrams come from coap-packet's `generate` (the codec); malformed ones are written byte by byte.

const MID = 0x1234;
const MID_BYTES = '1234';

/** A well-formed CON GET /sensors with a 2-byte token. */
const validGet = (extra: Partial<Packet> = {}): Buffer => generate({
  code: 'GET', messageId: MID, token: Buffer.from('a1b2', 'hex'), confirmable: true,
  options: [{ name: 'Uri-Path', value: Buffer.from('sensors') }], ...extra,
});

/** Header bytes: version 1, type (0 CON, 1 NON, 2 ACK, 3 RST), token length, code, message ID 0x1234. */
const header = (type: number, tokenLength: number, code: number, version = 1): Buffer =>
  Buffer.concat([Buffer.from([(version << 6) | (type << 4) | tokenLength, code]), Buffer.from(MID_BYTES, 'hex')]);

const CON = 0;
const NON = 1;
const ACK = 2;
const RST = 3;
const GET = 0x01;

t.test('fewer than 4 bytes: dropped as short', async (t) => {
  for (const hex of ['', '40', '4001', '400112']) {
    t.same(decodeDatagram(Buffer.from(hex, 'hex')), { kind: 'drop', reason: 'short' }, `${hex.length / 2} bytes`);
  }
});

t.test('version 0, 2 and 3 are silently ignored, also as an empty CON (section 3)', async (t) => {
  const valid = validGet();
  for (const version of [0, 2, 3]) {
    const datagram = Buffer.from(valid);
    datagram[0] = (datagram[0]! & 0x3f) | (version << 6);
    t.same(decodeDatagram(datagram), { kind: 'drop', reason: 'version' }, `request with version ${version}`);
    t.same(decodeDatagram(header(CON, 0, 0, version)), { kind: 'drop', reason: 'version' }, `empty CON with version ${version}`);
  }
});

t.test('token length 9-15 on a CON: rejected with an RST of its message ID (section 3: reserved)', async (t) => {
  for (let tkl = 9; tkl <= 15; tkl += 1) {
    // Enough bytes for any reading of the length (RFC 8974 would read 13 and 14 as extended lengths).
    const datagram = Buffer.concat([header(CON, tkl, GET), Buffer.alloc(300, 0xab)]);
    t.same(decodeDatagram(datagram), { kind: 'reject', reason: 'format', messageId: MID }, `TKL ${tkl}`);
  }
});

t.test('token length 9-15 on a NON: dropped without an answer', async (t) => {
  for (let tkl = 9; tkl <= 15; tkl += 1) {
    const datagram = Buffer.concat([header(NON, tkl, GET), Buffer.alloc(300, 0xab)]);
    t.same(decodeDatagram(datagram), { kind: 'drop', reason: 'format' }, `TKL ${tkl}`);
  }
});

t.test('a token length longer than the datagram: format error', async (t) => {
  const datagram = Buffer.concat([header(CON, 8, GET), Buffer.from('a1b2', 'hex')]);
  t.same(decodeDatagram(datagram), { kind: 'reject', reason: 'format', messageId: MID });
});

t.test('an empty CON is a CoAP ping (section 4.3)', async (t) => {
  t.same(decodeDatagram(generate({ code: '0.00', messageId: MID, confirmable: true })), { kind: 'ping', messageId: MID });
  t.same(decodeDatagram(header(CON, 0, 0)), { kind: 'ping', messageId: MID }, 'hand-made, the same');
});

t.test('an empty NON is dropped as empty_non', async (t) => {
  t.same(decodeDatagram(header(NON, 0, 0)), { kind: 'drop', reason: 'empty_non' });
});

t.test('an empty CON with more than the header (a byte, a token) is rejected (section 4.1)', async (t) => {
  t.same(decodeDatagram(Buffer.concat([header(CON, 0, 0), Buffer.from('ff', 'hex')])), { kind: 'reject', reason: 'format', messageId: MID }, 'a trailing byte');
  t.same(decodeDatagram(Buffer.concat([header(CON, 0, 0), Buffer.from('b1', 'hex'), Buffer.from('a')])), { kind: 'reject', reason: 'format', messageId: MID }, 'an option');
  t.same(decodeDatagram(Buffer.concat([header(CON, 1, 0), Buffer.from('aa', 'hex')])), { kind: 'reject', reason: 'format', messageId: MID }, 'a 1-byte token');
  t.same(decodeDatagram(header(CON, 1, 0)), { kind: 'reject', reason: 'format', messageId: MID }, 'a token length with no token');
  t.same(decodeDatagram(Buffer.concat([header(NON, 0, 0), Buffer.from('ff', 'hex')])), { kind: 'drop', reason: 'format' }, 'the same on a NON: dropped');
});

t.test('an empty ACK and an empty RST are classified for the reliability layer', async (t) => {
  t.same(decodeDatagram(generate({ code: '0.00', messageId: MID, ack: true })), { kind: 'ack', messageId: MID });
  t.same(decodeDatagram(generate({ code: '0.00', messageId: MID, reset: true })), { kind: 'reset', messageId: MID });
});

t.test('an ACK carrying a response answers nothing of ours: stray_ack', async (t) => {
  const ack = generate({ code: '2.05', messageId: MID, token: Buffer.from('a1', 'hex'), ack: true, payload: Buffer.from('x') });
  t.same(decodeDatagram(ack), { kind: 'drop', reason: 'stray_ack' });
});

t.test('ACK and RST with framing errors, and an RST with content, are dropped as format', async (t) => {
  t.same(decodeDatagram(generate({ code: '2.05', messageId: MID, reset: true })), { kind: 'drop', reason: 'format' }, 'RST with a response code');
  t.same(decodeDatagram(Buffer.concat([header(RST, 0, 0), Buffer.from('00', 'hex')])), { kind: 'drop', reason: 'format' }, 'RST 0.00 with a trailing byte');
  t.same(decodeDatagram(Buffer.concat([header(RST, 1, 0), Buffer.from('aa', 'hex')])), { kind: 'drop', reason: 'format' }, 'RST 0.00 with a token');
  t.same(decodeDatagram(Buffer.concat([header(ACK, 0, 0), Buffer.from('00', 'hex')])), { kind: 'drop', reason: 'format' }, 'ACK 0.00 with a trailing byte');
  t.same(decodeDatagram(Buffer.concat([header(ACK, 9, 0x45), Buffer.alloc(20)])), { kind: 'drop', reason: 'format' }, 'ACK with TKL 9');
});

t.test('a CON carrying a response code (2.xx, 4.xx, 5.xx) is rejected as response; a NON is dropped', async (t) => {
  for (const code of ['2.05', '2.31', '4.04', '5.00', '5.05']) {
    const con = generate({ code, messageId: MID, token: Buffer.from('a1', 'hex'), confirmable: true, payload: Buffer.from('x') });
    t.same(decodeDatagram(con), { kind: 'reject', reason: 'response', messageId: MID }, `CON ${code}`);
    const non = generate({ code, messageId: MID, token: Buffer.from('a1', 'hex'), payload: Buffer.from('x') });
    t.same(decodeDatagram(non), { kind: 'drop', reason: 'response' }, `NON ${code}`);
  }
});

t.test('reserved code classes (1, 3, 6, 7) are format errors', async (t) => {
  for (const code of [0x21, 0x61, 0xc1, 0xe0, 0xff]) {
    const label = `${code >> 5}.${String(code & 0x1f).padStart(2, '0')}`;
    t.same(decodeDatagram(header(CON, 0, code)), { kind: 'reject', reason: 'format', messageId: MID }, `CON ${label}`);
    t.same(decodeDatagram(header(NON, 0, code)), { kind: 'drop', reason: 'format' }, `NON ${label}`);
  }
});

t.test('an option delta nibble of 15 (not the payload marker) is a format error', async (t) => {
  for (const optionByte of ['f0', 'f1', 'fe']) {
    const datagram = Buffer.concat([header(CON, 0, GET), Buffer.from(`${optionByte}0000`, 'hex')]);
    t.same(decodeDatagram(datagram), { kind: 'reject', reason: 'format', messageId: MID }, `option byte 0x${optionByte}`);
  }
  const non = Buffer.concat([header(NON, 0, GET), Buffer.from('f100', 'hex')]);
  t.same(decodeDatagram(non), { kind: 'drop', reason: 'format' }, 'the same on a NON: dropped');
});

t.test('an option length nibble of 15 is a format error', async (t) => {
  const datagram = Buffer.concat([header(CON, 0, GET), Buffer.from('bf', 'hex'), Buffer.alloc(20, 0x61)]);
  t.same(decodeDatagram(datagram), { kind: 'reject', reason: 'format', messageId: MID });
});

t.test('an option whose length runs past the end of the datagram is a format error', async (t) => {
  // Uri-Path claiming 5 bytes, 2 present.
  const short = Buffer.concat([header(CON, 0, GET), Buffer.from('b5', 'hex'), Buffer.from('ab')]);
  t.same(decodeDatagram(short), { kind: 'reject', reason: 'format', messageId: MID }, 'value cut short');
  // Uri-Path claiming 13 + 200 bytes (extended length), 3 present.
  const extended = Buffer.concat([header(CON, 0, GET), Buffer.from('bdc8', 'hex'), Buffer.from('abc')]);
  t.same(decodeDatagram(extended), { kind: 'reject', reason: 'format', messageId: MID }, 'extended length cut short');
  // Option header announcing an extended delta / length byte that is missing.
  t.same(decodeDatagram(Buffer.concat([header(CON, 0, GET), Buffer.from('d0', 'hex')])), { kind: 'reject', reason: 'format', messageId: MID }, 'extended delta byte missing');
  t.same(decodeDatagram(Buffer.concat([header(CON, 0, GET), Buffer.from('1d', 'hex')])), { kind: 'reject', reason: 'format', messageId: MID }, 'extended length byte missing');
  t.same(decodeDatagram(Buffer.concat([header(CON, 0, GET), Buffer.from('e0', 'hex')])), { kind: 'reject', reason: 'format', messageId: MID }, '2-byte extended delta missing');
  t.same(decodeDatagram(Buffer.concat([header(NON, 0, GET), Buffer.from('b5', 'hex'), Buffer.from('ab')])), { kind: 'drop', reason: 'format' }, 'on a NON: dropped');
});

t.test('a payload marker with no payload is a format error (section 3)', async (t) => {
  const withOption = Buffer.concat([validGet(), Buffer.from('ff', 'hex')]);
  t.same(decodeDatagram(withOption), { kind: 'reject', reason: 'format', messageId: MID }, 'after an option');
  const bare = Buffer.concat([header(CON, 0, GET), Buffer.from('ff', 'hex')]);
  t.same(decodeDatagram(bare), { kind: 'reject', reason: 'format', messageId: MID }, 'right after the header');
  const non = Buffer.concat([header(NON, 0, GET), Buffer.from('ff', 'hex')]);
  t.same(decodeDatagram(non), { kind: 'drop', reason: 'format' }, 'on a NON: dropped');
});

t.test('a valid request without payload is a request, parsed', async (t) => {
  const result = decodeDatagram(validGet());
  t.equal(result.kind, 'request');
  if (result.kind !== 'request') return;
  t.equal(result.packet.code, '0.01');
  t.equal(result.packet.messageId, MID);
  t.equal(result.packet.confirmable, true);
  t.equal(result.packet.token.toString('hex'), 'a1b2');
  t.same(result.packet.options.map((o) => [o.name, o.value.toString()]), [['Uri-Path', 'sensors']]);
  t.equal(result.packet.payload.length, 0);
  const minimal = header(CON, 0, GET);
  t.equal(decodeDatagram(minimal).kind, 'request', 'the 4-byte GET with no token and no options');
  t.equal(decodeDatagram(header(NON, 0, GET)).kind, 'request', 'the same as a NON');
});

t.test('a valid request with payload is a request, payload intact', async (t) => {
  const payload = Buffer.from([0xff, 0x00, 0xff, 0xa1, 0x01]);
  const datagram = generate({
    code: 'POST', messageId: MID, token: Buffer.from('0102030405060708', 'hex'), payload,
    options: [{ name: 'Uri-Path', value: Buffer.from('readings') }, { name: 'Content-Format', value: Buffer.from([60]) }],
  });
  const result = decodeDatagram(datagram);
  t.equal(result.kind, 'request');
  if (result.kind !== 'request') return;
  t.equal(result.packet.confirmable, false, 'NON');
  t.equal(result.packet.code, '0.02');
  t.equal(result.packet.token.length, 8, 'an 8-byte token is fine');
  t.ok(result.packet.payload.equals(payload), 'payload as sent, 0xFF bytes included');
});

t.test('a valid request whose last option value ends in 0xFF is not a payload marker', async (t) => {
  const cases: [string, Packet['options']][] = [
    ['Uri-Query ending in ff', [{ name: 'Uri-Path', value: Buffer.from('x') }, { name: 'Uri-Query', value: Buffer.from('6b3dff', 'hex') }]],
    ['ETag ff ff', [{ name: 'ETag', value: Buffer.from('ffff', 'hex') }]],
    ['Content-Format 255', [{ name: 'Content-Format', value: Buffer.from('ff', 'hex') }]],
    ['Access-Token of 0xFF bytes', [{ name: '65003', value: Buffer.alloc(20, 0xff) }]],
  ];
  for (const [label, options] of cases) {
    const datagram = generate({ code: 'GET', messageId: MID, token: Buffer.from('a1', 'hex'), confirmable: true, options });
    t.equal(datagram[datagram.length - 1], 0xff, `${label}: the datagram ends in 0xFF`);
    const result = decodeDatagram(datagram);
    t.equal(result.kind, 'request', `${label}: a request`);
    if (result.kind === 'request') {
      t.equal(result.packet.payload.length, 0, `${label}: no payload`);
      t.equal(result.packet.options.at(-1)?.value.at(-1), 0xff, `${label}: the value keeps its last byte`);
    }
  }
  const withPayload = generate({
    code: 'PUT', messageId: MID, confirmable: true, payload: Buffer.from('ok'),
    options: [{ name: 'ETag', value: Buffer.from('ffff', 'hex') }],
  });
  const result = decodeDatagram(withPayload);
  t.equal(result.kind, 'request', 'the same followed by a real payload');
  if (result.kind === 'request') t.equal(result.packet.payload.toString(), 'ok');
});
