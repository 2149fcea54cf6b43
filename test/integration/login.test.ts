import t from 'tap';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import { AuthRequestKey, AuthResponseKey, ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { startHarness } from '../helpers/harness.ts';
import { readJti } from '../../gateway/src/auth/tokens/token-id.ts';

t.test('login: a provisioned device gets an ES256 access token, a refresh token and server time', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1', ['telemetry:write']);
  const device = await h.device();
  const { answer, tokens } = await device.login('sensor-1', secret);
  t.equal(answer.code, '2.01');
  t.equal(answer.contentFormat, 'application/cbor');
  const body = answer.body as Map<number, unknown>;
  t.same([...body.keys()].sort(), [1, 2, 3, 4], 'integer keys 1-4 on the wire');
  t.equal(body.get(AuthResponseKey.expiresInSec), 3600);
  t.ok(Math.abs((body.get(AuthResponseKey.serverTimeSec) as number) - Date.now() / 1000) < 5, 'server time in seconds');
  const header = decodeProtectedHeader(tokens!.accessToken);
  t.equal(header.alg, 'ES256');
  t.equal(header.kid, h.gateway.keystore.signingKey().kid);
  const claims = decodeJwt(tokens!.accessToken);
  // Only what verification uses: the jti holds the family, the issue second and the record's tag.
  t.same(Object.keys(claims).sort(), ['exp', 'jti', 'sub']);
  t.equal(header.typ, 'at+jwt');
  t.equal(claims.sub, 'sensor-1');
  const parts = readJti(claims.jti!);
  t.ok(parts, 'a jti of 16 bytes');
  t.equal(claims.exp! - parts!.iatSec, 3600);
  t.ok(tokens!.accessToken.length <= 250, `a JWT of ${tokens!.accessToken.length} characters (at most 250)`);
});

t.test('login: wrong secret and unknown device get the same 4.01, never saying which was wrong', async (t) => {
  const h = await startHarness(t);
  await h.provision('sensor-1');
  const device = await h.device();
  const wrong = await device.login('sensor-1', Buffer.alloc(32, 7));
  const unknown = await device.login('sensor-9', Buffer.alloc(32, 7));
  for (const answer of [wrong.answer, unknown.answer]) {
    t.equal(answer.code, '4.01');
    const body = answer.body as Map<number, unknown>;
    t.equal(body.get(ErrorKey.code), WireError.badCredentials);
    t.type(body.get(ErrorKey.serverTimeSec), 'number', '4.01 carries server time');
    t.ok(answer.payload.length <= 16, 'tiny error body');
  }
  t.same(wrong.answer.payload.subarray(0, 3), unknown.answer.payload.subarray(0, 3), 'same error for both');
  await h.assertStillServes(t);
});

t.test('login: malformed CBOR gets 4.00', async (t) => {
  const h = await startHarness(t);
  const device = await h.device();
  for (const hex of ['a201', 'ff', 'a1016161ff', '']) {
    const answer = await device.send({ method: 'POST', path: '/auth', payload: Buffer.from(hex, 'hex'), contentFormat: 60 });
    t.equal(answer.code, '4.00', `payload ${hex || '(empty)'}`);
  }
  await h.assertStillServes(t);
});

t.test('login: CBOR of the wrong shape gets 4.00', async (t) => {
  const h = await startHarness(t);
  await h.provision('sensor-1');
  const device = await h.device();
  const shapes: [string, unknown][] = [
    // Large enough that the error body fits: an answer is never larger than its request.
    ['an array', [1, 2, 3, 4, 5, 6, 7, 8]],
    ['a number', 2 ** 40],
    ['text keys', { 1: 'sensor-1', 2: Buffer.alloc(32) }],
    ['id as bytes', new Map<number, unknown>([[AuthRequestKey.deviceId, Buffer.from('sensor-1')], [AuthRequestKey.secret, Buffer.alloc(32)]])],
    ['secret as text', new Map<number, unknown>([[AuthRequestKey.deviceId, 'sensor-1'], [AuthRequestKey.secret, 'hunter2']])],
    ['no secret', new Map<number, unknown>([[AuthRequestKey.deviceId, 'sensor-1']])],
  ];
  for (const [name, body] of shapes) {
    const answer = await device.send({ method: 'POST', path: '/auth', body });
    t.equal(answer.code, '4.00', name);
    t.equal((answer.body as Map<number, unknown> | undefined)?.get(ErrorKey.code), WireError.badRequest, `${name}: wire code`);
  }
  const json = await device.send({ method: 'POST', path: '/auth', payload: Buffer.from('{}'), contentFormat: 50 });
  t.equal(json.code, '4.15', 'JSON instead of CBOR');
  await h.assertStillServes(t);
});
