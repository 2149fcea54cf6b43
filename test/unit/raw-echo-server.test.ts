import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { generate, parse } from 'coap-packet';
import t from 'tap';
import { MessageType, writeHeader } from '../../device-sim/src/coap-header.ts';
import { buildRawEchoServer, echoAnswer } from '../../device-sim/src/raw-echo-server.ts';

// The bench's floor answers by flipping header bits; coap-packet (node-coap's codec) builds the
// requests and reads the answers, so the bytes are checked by an implementation of its own.

const header = (type: number, tokenLength: number, code: number, messageId: number, version = 1): Buffer =>
  writeHeader(Buffer.alloc(4), type, tokenLength, code, messageId, version);

t.test('the header writer puts each field where RFC 7252 section 3 says', async (t) => {
  t.equal(header(MessageType.con, 0, 0x01, 0x1234).toString('hex'), '40011234', 'version 1, CON, no token, GET');
  t.equal(header(MessageType.rst, 0, 0, 0xffff).toString('hex'), '7000ffff', 'RST, empty');
  t.equal(header(MessageType.ack, 8, 0x45, 0x0001).toString('hex'), '68450001', 'ACK, 8-byte token, 2.05');
  t.equal(header(MessageType.non, 2, 0x02, 0x0203, 3).toString('hex'), 'd2020203', 'any version is written as given');
});

t.test('a request is echoed: ACK for CON, NON for NON, 2.01 for POST, token and payload kept', async (t) => {
  const token = Buffer.from('a1b2c3', 'hex');
  const con = parse(echoAnswer(generate({
    code: 'GET', messageId: 0x4242, token, confirmable: true, payload: Buffer.from('reading'),
    options: [{ name: 'Uri-Path', value: Buffer.from('telemetry') }, { name: '65003', value: Buffer.alloc(300, 0x65) }],
  }))!);
  t.ok(con.ack, 'a CON request gets an ACK');
  t.equal(con.code, '2.05');
  t.equal(con.messageId, 0x4242, 'with its message ID');
  t.same(con.token, token, 'and its token');
  t.same(con.payload, Buffer.from('reading'), 'the payload comes back, past an option with a 2-byte extended length');
  t.same(con.options, [], 'no options');

  const non = parse(echoAnswer(generate({ code: 'POST', messageId: 7, token, confirmable: false }))!);
  t.notOk(non.ack, 'a NON request gets no ACK');
  t.notOk(non.confirmable, 'but a NON');
  t.equal(non.code, '2.01', 'POST: 2.01');
  t.same(non.payload, Buffer.alloc(0), 'no payload, no marker');
});

t.test('a CON ping gets an RST; whatever is not a request is dropped', async (t) => {
  const rst = parse(echoAnswer(header(MessageType.con, 0, 0, 0x0102))!);
  t.ok(rst.reset, 'RST');
  t.equal(rst.code, '0.00');
  t.equal(rst.messageId, 0x0102, 'of the ping\'s message ID');
  const get = 0x01;
  const dropped: [string, Buffer][] = [
    ['an empty NON', header(MessageType.non, 0, 0, 1)],
    ['an empty ACK', header(MessageType.ack, 0, 0, 1)],
    ['an RST', header(MessageType.rst, 0, 0, 1)],
    ['a request in an ACK', header(MessageType.ack, 0, get, 1)],
    ['a response', header(MessageType.con, 0, 0x45, 1)],
    ['version 2', header(MessageType.con, 0, get, 1, 2)],
    ['three bytes', Buffer.from('400100', 'hex')],
    ['a token length of 9', Buffer.concat([header(MessageType.con, 9, get, 1), Buffer.alloc(9)])],
    ['a token longer than the datagram', Buffer.concat([header(MessageType.con, 4, get, 1), Buffer.alloc(2)])],
    ['option delta 15 (reserved)', Buffer.concat([header(MessageType.con, 0, get, 1), Buffer.from([0xf1, 0x00])])],
    ['a payload marker with no payload', Buffer.concat([header(MessageType.con, 0, get, 1), Buffer.from([0xff])])],
  ];
  for (const [what, datagram] of dropped) t.equal(echoAnswer(datagram), undefined, what);
});

t.test('the server answers over UDP, to the port the request came from', async (t) => {
  const server = await buildRawEchoServer();
  t.teardown(() => server.close());
  const socket = createSocket('udp4');
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const answered = once(socket, 'message') as Promise<[Buffer]>;
  socket.send(generate({ code: 'GET', messageId: 9, token: Buffer.from('0909', 'hex'), confirmable: true }), server.port, '127.0.0.1');
  const [datagram] = await answered;
  const answer = parse(datagram);
  t.ok(answer.ack);
  t.equal(answer.messageId, 9);
  t.same(answer.token, Buffer.from('0909', 'hex'));
});
