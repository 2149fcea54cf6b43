import { generate, type Packet, type ParsedPacket } from 'coap-packet';
import t from 'tap';
import { ACCESS_TOKEN_OPTION } from '../../gateway/src/wire/index.ts';
import { RawCoapClient, isAnswerTo, loginToken } from '../helpers/bridge-raw-coap.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness } from '../helpers/harness.ts';

// RFC 7252 section 11.3: an unauthenticated answer is never larger than its request, counting the
// header, the token and every option; larger answers wait for the source address to be proved
// with an Echo round trip (RFC 9175 section 2.4), so a forged source never makes a reflector.

const ECHO = 252;
const TOKENS: readonly [string, Buffer][] = [['0-byte token', Buffer.alloc(0)], ['8-byte token', Buffer.from('0123456789abcdef', 'hex')]];

function datagram(token: Buffer, messageId: number, path: string[], options: Packet['options'] = [], payload?: Buffer, code = 'GET'): Buffer {
  return generate({
    code, messageId, token, confirmable: true, payload: payload ?? Buffer.alloc(0),
    options: [...path.map((segment) => ({ name: 'Uri-Path' as const, value: Buffer.from(segment) })), ...(options ?? [])],
  });
}

const echoOf = (p: ParsedPacket) => p.options.find((o) => o.name === String(ECHO))?.value;
let nextId = 0x100;

t.test('every refusal class, with a 0- and an 8-byte token: the answer is never larger than the request', async (t) => {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 1 } });
  const client = await RawCoapClient.open(t, h.port);
  const badToken = 'eyJhbGciOiJFUzI1NiJ9.e30.' + 'A'.repeat(86);
  const cases: [string, (token: Buffer) => Buffer, string][] = [
    ['4.00 malformed CBOR login', (tk) => datagram(tk, nextId++, ['auth'], [{ name: 'Content-Format', value: Buffer.from([60]) }], Buffer.from([0xff]), 'POST'), '4.00'],
    ['4.01 no Access-Token', (tk) => datagram(tk, nextId++, ['config']), '4.01'],
    ['4.01 a bad token', (tk) => datagram(tk, nextId++, ['config'], [{ name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(badToken) }]), '4.01'],
    ['4.02 an unknown critical option', (tk) => datagram(tk, nextId++, ['config'], [{ name: '65001', value: Buffer.from('x') }]), '4.02'],
    ['4.05 POST /.well-known/core', (tk) => datagram(tk, nextId++, ['.well-known', 'core'], [], undefined, 'POST'), '4.05'],
    ['4.08 a Block1 block without block 0', (tk) => datagram(tk, nextId++, ['auth'], [{ name: 'Block1', value: Buffer.from([0x1e]) }], Buffer.alloc(16), 'POST'), '4.08'],
    ['4.13 Size1 over the limit on block 0', (tk) => datagram(tk, nextId++, ['auth'],
      [{ name: 'Block1', value: Buffer.from([0x0e]) }, { name: 'Size1', value: Buffer.from([0xff, 0xff]) }], Buffer.alloc(1024), 'POST'), '4.13'],
    ['4.15 a JSON login', (tk) => datagram(tk, nextId++, ['auth'], [{ name: 'Content-Format', value: Buffer.from([50]) }], Buffer.from('{}'), 'POST'), '4.15'],
    ['5.05 Proxy-Scheme', (tk) => datagram(tk, nextId++, ['config'], [{ name: 'Proxy-Scheme', value: Buffer.from('http') }]), '5.05'],
  ];
  for (const [tokenWhat, token] of TOKENS) {
    for (const [what, build, code] of cases) {
      const request = build(token);
      await client.send(request);
      const answer = await client.next(isAnswerTo(token), `${what}, ${tokenWhat}`);
      const size = client.sizeOf(answer);
      t.equal(answer.code, code, `${what}, ${tokenWhat}: ${code}`);
      t.ok(size <= request.length, `${what}, ${tokenWhat}: ${size} bytes answer ${request.length} bytes`);
    }
  }
  // 4.29 with Max-Age: failed logins past the limit (1 a minute here).
  const { Encoder } = await import('cbor-x');
  const cbor = new Encoder({ mapsAsObjects: false, useRecords: false });
  const wrong = cbor.encode(new Map<number, unknown>([[1, 'sensor-x'], [2, Buffer.alloc(32)]]));
  for (const [tokenWhat, token] of TOKENS) {
    let answer: ParsedPacket | undefined;
    let request: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 3; i += 1) {
      request = datagram(token, nextId++, ['auth'], [{ name: 'Content-Format', value: Buffer.from([60]) }], wrong, 'POST');
      await client.send(request);
      answer = await client.next(isAnswerTo(token), `login ${i}, ${tokenWhat}`);
    }
    t.equal(answer?.code, '4.29', `4.29 past the login limit, ${tokenWhat}`);
    t.ok(client.sizeOf(answer!) <= request.length, `4.29, ${tokenWhat}: ${client.sizeOf(answer!)} bytes answer ${request.length}`);
  }
  await h.assertStillServes(t);
});

t.test('/.well-known/core to an unproved address: 4.01 with Echo, no larger than the request; with the Echo: the listing', async (t) => {
  const h = await startHarness(t);
  const client = await RawCoapClient.open(t, h.port);
  for (const [tokenWhat, token] of TOKENS) {
    const request = datagram(token, nextId++, ['.well-known', 'core']);
    await client.send(request);
    const challenge = await client.next(isAnswerTo(token), `challenge, ${tokenWhat}`);
    t.equal(challenge.code, '4.01', `${tokenWhat}: 4.01`);
    t.ok(client.sizeOf(challenge) <= request.length, `${tokenWhat}: ${client.sizeOf(challenge)} bytes answer ${request.length}`);
    const echo = echoOf(challenge);
    t.ok(echo !== undefined && echo.length > 0, `${tokenWhat}: with an Echo option`);
    await client.send(datagram(token, nextId++, ['.well-known', 'core'], [{ name: String(ECHO), value: echo! }]));
    const listing = await client.next(isAnswerTo(token), `listing, ${tokenWhat}`);
    t.equal(listing.code, '2.05', `${tokenWhat}: the Echo proves the address: 2.05`);
    t.match(listing.payload.toString(), /<\/auth>/);
  }
  t.equal(await metricValue(h, 'coap_gateway_address_challenges_total'), 2, 'each challenge counted');

  // An Echo value is good for its own address only, and for a minute or two.
  const first = datagram(Buffer.from([1]), nextId++, ['.well-known', 'core']);
  await client.send(first);
  const echo = echoOf(await client.next(isAnswerTo(Buffer.from([1])), 'a challenge'))!;
  const forged = Buffer.from(echo);
  forged[forged.length - 1] = forged[forged.length - 1]! ^ 1;
  await client.send(datagram(Buffer.from([2]), nextId++, ['.well-known', 'core'], [{ name: String(ECHO), value: forged }]));
  t.equal((await client.next(isAnswerTo(Buffer.from([2])), 'forged echo')).code, '4.01', 'a changed Echo value is refused');
  h.clock.advanceSec(121);
  await client.send(datagram(Buffer.from([3]), nextId++, ['.well-known', 'core'], [{ name: String(ECHO), value: echo }]));
  t.equal((await client.next(isAnswerTo(Buffer.from([3])), 'stale echo')).code, '4.01', 'an Echo value two minutes old is refused');
  t.equal(h.backend.requests.length, 0);
  await h.assertStillServes(t);
});

t.test('a device with a valid token gets /.well-known/core at once, and large bridged answers without Echo', async (t) => {
  const h = await startHarness(t);
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const token = Buffer.from('aa', 'hex');
  await client.send(datagram(token, nextId++, ['.well-known', 'core'], [{ name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(accessToken) }]));
  t.equal((await client.next(isAnswerTo(token), 'listing')).code, '2.05', 'the token proves who asks');
  h.backend.setHandler((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: 'x'.repeat(800) })));
  const token2 = Buffer.from('bb', 'hex');
  await client.send(datagram(token2, nextId++, ['config'], [{ name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(accessToken) }]));
  const big = await client.next(isAnswerTo(token2), 'config');
  t.equal(big.code, '2.05');
  t.ok(big.payload.length > 800, 'an authenticated answer may be larger than its request');
});

t.test('a made-up Access-Token does not make later Block2 blocks of an unauthenticated answer authenticated', async (t) => {
  const h = await startHarness(t);
  const client = await RawCoapClient.open(t, h.port);
  const madeUp = [{ name: String(ACCESS_TOKEN_OPTION), value: Buffer.from('X') }];
  for (const num of [0, 1, 2]) {
    const token = Buffer.from([0x40 + num]);
    // Block2 num/M=0/SZX 0 (16-byte blocks).
    const request = datagram(token, nextId++, ['.well-known', 'core'], [...madeUp, { name: 'Block2', value: Buffer.from(num === 0 ? [] : [num << 4]) }]);
    await client.send(request);
    const answer = await client.next(isAnswerTo(token), `block ${num}`);
    t.ok(client.sizeOf(answer) <= request.length, `block ${num}: ${client.sizeOf(answer)} bytes answer ${request.length}`);
    t.equal(answer.code, '4.01', `block ${num}: challenged, not served`);
  }
});

t.test('a later Block2 block of a POST answer no longer kept gets 4.08: the POST is not run again', async (t) => {
  const h = await startHarness(t);
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const token = Buffer.from('cc', 'hex');
  await client.send(datagram(token, nextId++, ['telemetry', 'temp'], [
    { name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(accessToken) }, { name: 'Block2', value: Buffer.from([0x21]) },
  ], Buffer.from([0xa0]), 'POST'));
  const answer = await client.next(isAnswerTo(token), 'block 2 of a POST never stored');
  t.equal(answer.code, '4.08');
  t.equal(h.backend.requests.length, 0, 'the backend saw nothing');
});

t.test('later blocks of a stored login answer go to a proven address only (tokenless requests are challenged)', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const { Encoder } = await import('cbor-x');
  const body = new Encoder({ mapsAsObjects: false, useRecords: false }).encode(new Map<number, unknown>([[1, 'sensor-1'], [2, secret]]));
  const cf = { name: 'Content-Format' as const, value: Buffer.from([60]) };
  const loginToken = Buffer.from('d0', 'hex');
  // The device's own login, asking for 16-byte blocks: the answer is stored for its later blocks.
  await client.send(datagram(loginToken, nextId++, ['auth'], [cf, { name: 'Block2', value: Buffer.from([0x00]) }], body, 'POST'));
  t.equal((await client.next(isAnswerTo(loginToken), 'login block 0')).code, '2.01');
  // A tiny request for a later block, as a forged source would send it: no payload, no token.
  const probe = Buffer.from('d1', 'hex');
  // Block 1 in the login's own 16-byte blocks (the login answer is 473 bytes: no 512-byte block 1 any more).
  const request = datagram(probe, nextId++, ['auth'], [cf, { name: 'Block2', value: Buffer.from([0x10]) }], undefined, 'POST');
  await client.send(request);
  const answer = await client.next(isAnswerTo(probe), 'a later block, tokenless');
  t.equal(answer.code, '4.01', 'challenged, not served');
  t.ok(client.sizeOf(answer) <= request.length, `${client.sizeOf(answer)} bytes answer ${request.length}`);
});
