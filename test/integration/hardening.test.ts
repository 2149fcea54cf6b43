import t from 'tap';
import { Decoder } from 'cbor-x';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { startHarness } from '../helpers/harness.ts';
import { RawCoapClient, isAnswerTo, loginToken, rawRequest, uintOption } from '../helpers/bridge-raw-coap.ts';
import { holdingHandler } from '../helpers/bridge-fixtures.ts';

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });
const wireCode = (payload: Buffer): unknown => (payload.length > 0 ? (cbor.decode(payload) as Map<number, unknown>).get(ErrorKey.code) : 'no body');

t.test('a refused GET with Observe is answered 4.01, not 2.05 (node-coap\'s Observe stream)', async (t) => {
  const h = await startHarness(t);
  const client = await RawCoapClient.open(t, h.port);
  const token = Buffer.from('0b5e', 'hex');
  await client.send(rawRequest({ path: ['config'], messageId: 10, token, extraOptions: [{ name: 'Observe', value: Buffer.alloc(0) }] }));
  const answer = await client.next(isAnswerTo(token), 'answer to GET with Observe');
  t.equal(answer.code, '4.01');
  t.equal(h.backend.requests.length, 0);
  await h.assertStillServes(t);
});

t.test('If-Match and If-None-Match (not supported) get 4.02; Proxy-Uri and Proxy-Scheme get 5.05', async (t) => {
  const h = await startHarness(t);
  const access = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const cases: [string, Buffer, string, number][] = [
    ['If-Match', Buffer.from('abcd', 'hex'), '4.02', WireError.badOption],
    ['If-None-Match', Buffer.alloc(0), '4.02', WireError.badOption],
    ['Proxy-Uri', Buffer.from('coap://example.org/x'), '5.05', WireError.proxyingNotSupported],
    ['Proxy-Scheme', Buffer.from('coap'), '5.05', WireError.proxyingNotSupported],
  ];
  let messageId = 20;
  for (const [name, value, code, wire] of cases) {
    const token = Buffer.from([messageId]);
    await client.send(rawRequest({ path: ['config'], accessToken: access, messageId, token, extraOptions: [{ name, value }] }));
    const answer = await client.next(isAnswerTo(token), `answer with ${name}`);
    t.equal(answer.code, code, name);
    t.equal(wireCode(answer.payload), wire, `${name}: wire code`);
    messageId += 1;
  }
  t.equal(h.backend.requests.length, 0, 'none reached the backend');
  await h.assertStillServes(t);
});

t.test('failed logins in a device\'s name cannot lock it out: the right secret always gets in', async (t) => {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 3 } });
  const secret = await h.provision('sensor-1');
  const attacker = await h.device();
  const codes: string[] = [];
  for (let i = 0; i < 5; i += 1) codes.push((await attacker.login('sensor-1', Buffer.alloc(32, i))).answer.code);
  t.same(codes, ['4.01', '4.01', '4.01', '4.29', '4.29'], 'wrong secrets: 4.01, then 4.29 past the limit');
  const limited = await attacker.login('sensor-1', Buffer.alloc(32, 9));
  t.ok((limited.answer.maxAgeSec ?? 0) >= 1, '4.29 says how long to wait (Max-Age)');
  const device = await h.device();
  t.equal((await device.login('sensor-1', secret)).answer.code, '2.01', 'the device itself still logs in');
});

t.test('removing a device and adding it again does not bring its old tokens back', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const old = (await device.login('sensor-1', secret)).tokens!;
  t.equal((await device.send({ path: '/config', token: old.accessToken })).code, '2.05', 'the old token works');
  await h.gateway.store.devices.remove('sensor-1');
  h.clock.advanceSec(1);
  // Provisioned again, e.g. after a compromise: a new secret, a new record.
  const fresh = await h.provision('sensor-1');
  const stale = await device.send({ path: '/config', token: old.accessToken });
  t.equal(stale.code, '4.01', 'the old access token is refused');
  t.equal(wireCode(stale.payload), WireError.tokenInvalid);
  t.equal((await device.refresh(old.refreshToken)).answer.code, '4.01', 'the old refresh token is refused');
  t.equal((await device.login('sensor-1', secret)).answer.code, '4.01', 'the old secret is refused');
  const renewed = await device.login('sensor-1', fresh);
  t.equal(renewed.answer.code, '2.01');
  t.equal((await device.send({ path: '/config', token: renewed.tokens!.accessToken })).code, '2.05', 'new tokens work');
});

t.test('a backend answer over 1 MB is cut off as it arrives: 5.02', async (t) => {
  const h = await startHarness(t);
  h.backend.setHandler((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.alloc(1024 * 1024 + 1));
  });
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  const answer = await device.send({ path: '/config', token: tokens!.accessToken });
  t.equal(answer.code, '5.02');
  t.equal(wireCode(answer.payload), WireError.badGateway);
  t.ok(h.logs.some((l) => String(l.reason).includes('larger than 1048576 bytes')), 'the log says why');
  h.backend.setHandler((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  await h.assertStillServes(t);
});

t.test('a backend trickling its answer is cut off at the timeout: 5.04', async (t) => {
  const h = await startHarness(t, { config: { backendTimeoutMs: 300 } });
  let stopped = false;
  h.backend.setHandler((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('[');
    // A chunk every 100 ms keeps undici's per-chunk bodyTimeout from ever firing.
    const timer = setInterval(() => {
      if (stopped || res.destroyed) return clearInterval(timer);
      res.write('0,');
    }, 100);
    res.on('close', () => clearInterval(timer));
  });
  t.teardown(() => { stopped = true; });
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  const answer = await device.send({ path: '/config', token: tokens!.accessToken });
  t.equal(answer.code, '5.04');
  t.equal(wireCode(answer.payload), WireError.gatewayTimeout);
  stopped = true;
  h.backend.setHandler((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  await h.assertStillServes(t);
});

t.test('close() lets requests in flight finish, answers new ones 5.03, and can be called twice', async (t) => {
  const h = await startHarness(t);
  const { handler, release } = holdingHandler();
  h.backend.setHandler(handler);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  const inFlight = device.send({ path: '/config', token: tokens!.accessToken });
  await h.backend.waitForRequests(1);
  const closing = h.gateway.close();
  const late = await device.send({ path: '/config', token: tokens!.accessToken });
  t.equal(late.code, '5.03', 'a request arriving while closing is turned away');
  t.equal(late.maxAgeSec, 5, 'with a Max-Age to come back');
  t.equal(h.backend.requests.length, 1, 'and never reaches the backend');
  release();
  t.equal((await inFlight).code, '2.05', 'the request in flight is answered');
  await Promise.all([closing, h.gateway.close()]);
  t.pass('closed, twice');
});

t.test('4.13 tells the device the largest body it may send (Size1, RFC 7252 section 5.9.2.9)', async (t) => {
  const h = await startHarness(t, { config: { maxPayloadBytes: 64 } });
  const access = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const token = Buffer.from('5153', 'hex');
  await client.send(rawRequest({ method: 'POST', path: ['telemetry', 'temp'], accessToken: access, messageId: 40, token, payload: Buffer.alloc(65, 0xa0), contentFormat: 60 }));
  const answer = await client.next(isAnswerTo(token), 'answer to a 65-byte body');
  t.equal(answer.code, '4.13');
  t.equal(uintOption(answer, 'Size1'), 64);
  t.equal(h.backend.requests.length, 0);
  await h.assertStillServes(t);
});
