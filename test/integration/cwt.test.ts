import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParsedPacket } from 'coap-packet';
import { createLocalJWKSet, jwtVerify } from 'jose';
import t, { type Test } from 'tap';
import { decodeCoseSign1, signCoseSign1 } from '../../gateway/src/auth/tokens/cose-sign1.ts';
import { CwtClaim, cwtExternalAad, kidBytes, newCti, readCwtClaims } from '../../gateway/src/auth/tokens/cwt.ts';
import { generateSecret, hashSecret, newRecordId } from '../../gateway/src/auth/index.ts';
import {
  AuthRequestKey, AuthResponseKey, ContentFormat, ErrorKey, TokenFormat, WireError, decodeCbor, encodeCbor,
} from '../../gateway/src/wire/index.ts';
import { RawCoapClient, isAnswerTo, rawRequest, type RawRequest } from '../helpers/bridge-raw-coap.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { runCli } from '../helpers/cli-run.ts';
import { libcoap, requireLibcoap } from '../helpers/libcoap-client.ts';
import { foreignKey } from '../helpers/token-forge.ts';

const TTL_SEC = 3600;
const LEEWAY_SEC = 30;
/** A realistic id: the demo's. */
const DEVICE = 'demo-sensor-01';
/** A 25-byte CBOR reading: {"temp": 215, "seq": 1234, "unit": "degC"}. */
const READING = encodeCbor(new Map<string, unknown>([['temp', 215], ['seq', 1234], ['unit', 'degC']]));

let nextId = 1;
/** What a device sends and gets: every datagram as it was on the wire. */
async function exchange(raw: RawCoapClient, request: Omit<RawRequest, 'messageId' | 'token'>)
  : Promise<{ answer: ParsedPacket; sentBytes: number; answerBytes: number }> {
  const token = randomBytes(2); // a device's usual CoAP token
  const datagram = rawRequest({ ...request, messageId: nextId++, token });
  await raw.send(datagram);
  const answer = await raw.next(isAnswerTo(token), `${request.method ?? 'GET'} /${request.path.join('/')}`);
  return { answer, sentBytes: datagram.length, answerBytes: raw.sizeOf(answer) };
}

async function provision(h: Harness, id: string, extra: { tokenFormat?: 'jwt' | 'cwt' } = {}): Promise<Buffer> {
  const secret = generateSecret();
  await h.gateway.store.devices.add([{
    id, secretHash: hashSecret(secret), scopes: ['telemetry:write', 'config:read'],
    createdAt: new Date(h.clock.nowMs()).toISOString(), recordId: newRecordId(), ...extra,
  }]);
  return secret;
}

function login(raw: RawCoapClient, id: string, secret: Buffer, format?: number) {
  const body = new Map<number, unknown>([[AuthRequestKey.deviceId, id], [AuthRequestKey.secret, secret]]);
  if (format !== undefined) body.set(AuthRequestKey.tokenFormat, format);
  return exchange(raw, { method: 'POST', path: ['auth'], contentFormat: ContentFormat.cbor, payload: encodeCbor(body) });
}

async function cwtLogin(t: Test, h: Harness, raw: RawCoapClient, id = DEVICE): Promise<{ cwt: Buffer; answerBytes: number }> {
  const secret = await provision(h, id);
  const { answer, answerBytes } = await login(raw, id, secret, TokenFormat.cwt);
  t.equal(answer.code, '2.01', `${id} logs in asking for a CWT`);
  const cwt = (decodeCbor(answer.payload) as Map<number, unknown>).get(AuthResponseKey.accessToken);
  t.ok(Buffer.isBuffer(cwt) || cwt instanceof Uint8Array, 'the access token is a byte string');
  return { cwt: Buffer.from(cwt as Uint8Array), answerBytes };
}

const telemetry = (token: Buffer | string) => ({
  method: 'POST' as const, path: ['telemetry', 'temp'], contentFormat: ContentFormat.cbor, payload: READING, accessToken: token,
});
const config = (token: Buffer | string) => ({ method: 'GET' as const, path: ['config'], accessToken: token });

function wireError(answer: ParsedPacket): unknown {
  return (decodeCbor(answer.payload) as Map<number, unknown>).get(ErrorKey.code);
}

async function refused(t: Test, h: Harness, raw: RawCoapClient, token: Buffer, what: string, wire: number = WireError.tokenInvalid) {
  const before = h.backend.requests.length;
  const { answer } = await exchange(raw, telemetry(token));
  t.equal(answer.code, '4.01', `${what}: 4.01`);
  t.equal(wireError(answer), wire, `${what}: wire error ${wire}`);
  t.equal(h.backend.requests.length, before, `${what}: never reached the backend`);
}

t.test('a CWT login, then a bridged request: the backend gets a JWT with the same sub, jti and exp, verifying with the JWKS', async (t) => {
  const h = await startHarness(t);
  const raw = await RawCoapClient.open(t, h.port);
  const { cwt } = await cwtLogin(t, h, raw);
  t.equal(cwt[0], 0xd2, 'a tagged COSE_Sign1');
  const claims = readCwtClaims(decodeCoseSign1(cwt).payload);
  t.equal(claims.sub, DEVICE);

  const { answer } = await exchange(raw, telemetry(cwt));
  t.equal(answer.code, '2.01', 'bridged');
  const { answer: second } = await exchange(raw, telemetry(cwt));
  t.equal(second.code, '2.01', 'and again (from the verified-token cache)');
  t.equal(h.backend.requests.length, 2);
  const [first, again] = h.backend.requests.map((r) => r.headers.authorization as string);
  t.equal(first, again, 'one JWT per CWT: minted once, then cached');
  const jwt = first!.replace(/^Bearer /, '');
  const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(h.gateway.keystore.jwks() as never), {
    issuer: 'coap-gateway', audience: 'coap-gateway', typ: 'at+jwt',
  });
  t.equal(payload.sub, DEVICE);
  t.equal(payload.jti, claims.cti.toString('base64url'), 'same jti');
  t.equal(payload.exp, claims.exp, 'same exp');
  t.equal(payload.scope, 'telemetry:write config:read', 'the device record\'s scopes, as given');
  t.equal(protectedHeader.kid, h.gateway.keystore.signingKey().kid);
  t.equal(h.backend.requests[0]!.headers['x-device-id'], DEVICE);
});

t.test('wire sizes, measured on real datagrams: CWT, a 25-byte reading, GET /config, the login answer', async (t) => {
  const h = await startHarness(t);
  const raw = await RawCoapClient.open(t, h.port);
  t.equal(READING.length, 25, 'the reading is 25 bytes');
  const { cwt, answerBytes } = await cwtLogin(t, h, raw);
  t.ok(cwt.length <= 120, `CWT ${cwt.length} bytes <= 120`);
  t.ok(answerBytes <= 200, `login answer with CWT and opaque refresh token: ${answerBytes} bytes <= 200`);
  const reading = await exchange(raw, telemetry(cwt));
  t.equal(reading.answer.code, '2.01');
  t.ok(reading.sentBytes <= 175, `25-byte reading to /telemetry/temp: ${reading.sentBytes} bytes <= 175`);
  const get = await exchange(raw, config(cwt));
  t.equal(get.answer.code, '2.05');
  t.ok(get.sentBytes <= 140, `GET /config: ${get.sentBytes} bytes <= 140`);
  t.comment(`CWT ${cwt.length} B, login answer ${answerBytes} B, reading ${reading.sentBytes} B, GET /config ${get.sentBytes} B`);

  // The same with a JWT (demo-sensor-02: as long an id as demo-sensor-01), for the wire contract's table.
  const jwtLogin = await login(raw, 'demo-sensor-02', await provision(h, 'demo-sensor-02'), TokenFormat.jwt);
  const jwt = (decodeCbor(jwtLogin.answer.payload) as Map<number, unknown>).get(AuthResponseKey.accessToken) as string;
  const jwtReading = await exchange(raw, telemetry(jwt));
  const jwtGet = await exchange(raw, config(jwt));
  t.ok(jwt.length <= 250, `JWT ${jwt.length} characters <= 250`);
  t.equal(jwtReading.answer.code, '2.01');
  t.equal(jwtGet.answer.code, '2.05');
  t.comment(`JWT ${jwt.length} chars, login answer ${jwtLogin.answerBytes} B, reading ${jwtReading.sentBytes} B, GET /config ${jwtGet.sentBytes} B`);
});

t.test('libcoap\'s client sends a CWT as option 65003 (hex) and is bridged: it is standard CoAP', async (t) => {
  if (!(await requireLibcoap(t))) return;
  const h = await startHarness(t);
  const raw = await RawCoapClient.open(t, h.port);
  const { cwt } = await cwtLogin(t, h, raw);
  const run = await libcoap(t, `coap://127.0.0.1:${h.port}/config`, ['-m', 'get', '-O', `65003,0x${cwt.toString('hex')}`]);
  t.equal(run.answer.code, '2.05', 'GET /config with the CWT from libcoap');
  t.equal(h.backend.requests.at(-1)?.headers['x-device-id'], DEVICE);
});

t.test('the format: key 6 asks, else the device\'s default; a bad key 6 is 4.00', async (t) => {
  const h = await startHarness(t);
  const raw = await RawCoapClient.open(t, h.port);
  const plain = await provision(h, 'plain-1');
  const compact = await provision(h, 'compact-1', { tokenFormat: 'cwt' });
  const tokenOf = (answer: ParsedPacket) => (decodeCbor(answer.payload) as Map<number, unknown>).get(AuthResponseKey.accessToken);
  t.type(tokenOf((await login(raw, 'plain-1', plain)).answer), 'string', 'no key 6, no default: a JWT (text)');
  t.ok(tokenOf((await login(raw, 'compact-1', compact)).answer) instanceof Uint8Array, 'a device provisioned for CWT gets bytes');
  const jwt = tokenOf((await login(raw, 'compact-1', compact, TokenFormat.jwt)).answer);
  t.type(jwt, 'string', 'key 6 = 1 asks for a JWT whatever the default');
  t.equal((await exchange(raw, config(jwt as string))).answer.code, '2.05', 'and the JWT works');
  for (const bad of [0, 3, 'cwt', -1]) {
    const body = encodeCbor(new Map<number, unknown>([[1, 'plain-1'], [2, plain], [6, bad]]));
    const { answer } = await exchange(raw, { method: 'POST', path: ['auth'], contentFormat: ContentFormat.cbor, payload: body });
    t.equal(answer.code, '4.00', `key 6 = ${JSON.stringify(bad)}: 4.00`);
    t.equal(wireError(answer), WireError.badRequest);
  }
  // A refresh keeps asking: key 6 on /auth/refresh.
  const { answer } = await login(raw, 'plain-1', plain, TokenFormat.cwt);
  const refreshToken = (decodeCbor(answer.payload) as Map<number, unknown>).get(AuthResponseKey.refreshToken) as Uint8Array;
  const body = encodeCbor(new Map<number, unknown>([[AuthRequestKey.refreshToken, refreshToken], [AuthRequestKey.tokenFormat, TokenFormat.cwt]]));
  const refreshed = await exchange(raw, { method: 'POST', path: ['auth', 'refresh'], contentFormat: ContentFormat.cbor, payload: body });
  t.equal(refreshed.answer.code, '2.01');
  const next = tokenOf(refreshed.answer) as Uint8Array;
  t.ok(next instanceof Uint8Array, 'the refreshed token is a CWT too');
  t.equal((await exchange(raw, config(Buffer.from(next)))).answer.code, '2.05', 'and works');
});

t.test('tampered CWTs are refused with 4.01, and the gateway still serves', async (t) => {
  const h = await startHarness(t);
  const raw = await RawCoapClient.open(t, h.port);
  const { cwt } = await cwtLogin(t, h, raw);
  const message = decodeCoseSign1(cwt);
  const flip = (offset: number) => {
    const copy = Buffer.from(cwt);
    copy[offset]! ^= 0x01;
    return copy;
  };
  const payloadAt = cwt.indexOf(message.payload);
  const signatureAt = cwt.length - 64;
  const protectedAt = cwt.indexOf(message.protectedBytes);
  const otherAlg = Buffer.from(cwt);
  otherAlg[protectedAt + 2] = otherAlg[protectedAt + 2] === 0x26 ? 0x27 : 0x26; // -7 <-> -8
  const unknownKid = Buffer.from(cwt);
  const kidAt = cwt.indexOf(message.kid, protectedAt + message.protectedBytes.length);
  unknownKid[kidAt]! ^= 0xff;
  const body = cwt.subarray(1);
  const asArrayOf3 = Buffer.concat([Buffer.of(0xd2, 0x83), body.subarray(1, body.length - 66)]);
  const cases: [string, Buffer][] = [
    ['a payload byte', flip(payloadAt + 3)],
    ['the last payload byte', flip(payloadAt + message.payload.length - 1)],
    ['a signature byte', flip(signatureAt + 5)],
    ['the protected header changed to the other alg', otherAlg],
    ['an unknown kid', unknownKid],
    ['the tag missing', body],
    ['an array of 3', asArrayOf3],
    ['a trailing byte', Buffer.concat([cwt, Buffer.of(0x00)])],
    ['nested tags (18 in 18)', Buffer.concat([Buffer.of(0xd2), cwt])],
    ['tag 61 (CWT) around it', Buffer.concat([Buffer.of(0xd8, 0x3d), cwt])],
    ['cut short', cwt.subarray(0, cwt.length - 10)],
    ['one byte', Buffer.of(0xd2)],
  ];
  for (const [what, token] of cases) await refused(t, h, raw, token, what);
  const { answer } = await exchange(raw, telemetry(cwt));
  t.equal(answer.code, '2.01', 'the untouched CWT still works');
});

t.test('CWTs the gateway did not sign, or signed for another record, audience or with a retired key: 4.01', async (t) => {
  const h = await startHarness(t, { config: { tokenTtlSec: TTL_SEC, leewaySec: LEEWAY_SEC } });
  const raw = await RawCoapClient.open(t, h.port);
  const { cwt } = await cwtLogin(t, h, raw);
  const record = (await h.gateway.store.devices.get(DEVICE))!;
  const nowSec = Math.floor(h.clock.nowMs() / 1000);
  const claims = (changes: Record<number, unknown> = {}) => encodeCbor(new Map<number, unknown>([
    [CwtClaim.sub, DEVICE], [CwtClaim.exp, nowSec + 600], [CwtClaim.cti, newCti(randomBytes(8).toString('base64url'), nowSec)],
    ...Object.entries(changes).map(([k, v]) => [Number(k), v] as [number, unknown]),
  ]));
  const active = h.gateway.keystore.signingKey();
  const kid = kidBytes(active.kid);
  const aad = cwtExternalAad('coap-gateway', 'coap-gateway', record.recordId!);
  // The control: built here with the gateway's own key, it is accepted; each case below changes one thing.
  const good = signCoseSign1(claims(), { alg: active.alg, kid, privateKey: active.privateKey }, aad);
  t.equal((await exchange(raw, telemetry(good))).answer.code, '2.01', 'a CWT built here with the gateway key verifies');
  const stranger = foreignKey('ES256');
  await refused(t, h, raw, signCoseSign1(claims(), { alg: 'ES256', kid, privateKey: stranger.privateKey as never }, aad),
    'signed by a key not in the keystore, under its kid');
  await refused(t, h, raw, signCoseSign1(claims(), { alg: active.alg, kid, privateKey: active.privateKey },
    cwtExternalAad('coap-gateway', 'someone-else', record.recordId!)), 'for another audience');
  await refused(t, h, raw, signCoseSign1(claims(), { alg: active.alg, kid, privateKey: active.privateKey },
    cwtExternalAad('coap-gateway', 'coap-gateway', newRecordId())), 'of an earlier record of the device');
  await refused(t, h, raw, signCoseSign1(claims({ [CwtClaim.iss]: 'elsewhere' }), { alg: active.alg, kid, privateKey: active.privateKey }, aad),
    'naming another issuer');

  // Rotate, then retire the key that signed `cwt`.
  await h.gateway.keystore.rotate('ES256');
  t.equal((await exchange(raw, telemetry(cwt))).answer.code, '2.01', 'after a rotation the old key still verifies');
  await h.gateway.keystore.retire(active.kid);
  await refused(t, h, raw, cwt, 'the kid of a retired key (cached before: refused all the same)');
  await refused(t, h, raw, good, 'the kid of a retired key (never seen)');
});

t.test('CWT expiry: within the leeway accepted, beyond it 4.01 tokenExpired', async (t) => {
  const h = await startHarness(t, { config: { tokenTtlSec: TTL_SEC, leewaySec: LEEWAY_SEC } });
  const raw = await RawCoapClient.open(t, h.port);
  const { cwt } = await cwtLogin(t, h, raw);
  const { cwt: other } = await cwtLogin(t, h, raw, 'demo-sensor-02');
  h.clock.advanceSec(TTL_SEC + LEEWAY_SEC - 5);
  t.equal((await exchange(raw, telemetry(cwt))).answer.code, '2.01', `${LEEWAY_SEC - 5} s past exp: within the leeway`);
  h.clock.advanceSec(10);
  await refused(t, h, raw, cwt, 'past exp and the leeway (cached)', WireError.tokenExpired);
  await refused(t, h, raw, other, 'past exp and the leeway (never seen)', WireError.tokenExpired);
});

t.test('the CLI provisions a device\'s default format and refuses one it does not know', async (t) => {
  const state = await mkdtemp(join(tmpdir(), 'gw-cwt-cli-'));
  t.teardown(() => rm(state, { recursive: true, force: true }));
  const add = await runCli(['devices', 'add', 'radio-1', '--token-format', 'cwt', '--state', state]);
  t.equal(add.code, 0, `devices add --token-format cwt exits 0 (${add.stderr.trim()})`);
  const list = await runCli(['devices', 'list', '--json', '--state', state]);
  t.match(JSON.parse(list.stdout), [{ id: 'radio-1', tokenFormat: 'cwt' }], 'devices list shows it');
  const bad = await runCli(['devices', 'add', 'radio-2', '--token-format', 'xml', '--state', state]);
  t.equal(bad.code, 2, 'an unknown format: exit 2');
  t.match(bad.stderr, /"jwt" or "cwt"/);
  const after = await runCli(['devices', 'list', '--json', '--state', state]);
  t.equal(JSON.parse(after.stdout).length, 1, 'and nothing was added');
});
