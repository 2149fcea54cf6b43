import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CompactSign, calculateJwkThumbprint, compactVerify, importJWK, type CryptoKey } from 'jose';
import t, { type Test } from 'tap';
import { generateDeviceKeyPair, parseDevicePublicKey, MAX_PUBLIC_KEY_CHARS } from '../../gateway/src/auth/index.ts';
import { AdminError } from '../../gateway/src/errors.ts';
import type { DeviceKey } from '../../gateway/src/store/index.ts';

// A device's public key as an operator gives it: made by node:crypto and by openssl, as PEM and
// as JWK; everything else refused with a message that says why.

const run = promisify(execFile);
const NOW = new Date('2030-01-01T00:00:00Z');

function nodePair(alg: DeviceKey['alg']) {
  return alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
}

async function refuses(t: Test, input: unknown, message: RegExp, what: string, options: { expiresAt?: string } = {}): Promise<void> {
  const err = await parseDevicePublicKey(input, { ...options, now: NOW }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof AdminError, `${what}: an AdminError`);
  t.equal((err as AdminError | undefined)?.code, 'GW_ERR_ADMIN_BAD_KEY', `${what}: GW_ERR_ADMIN_BAD_KEY`);
  t.match((err as Error | undefined)?.message, message, `${what}: says why`);
}

/** The stored key verifies what the private key signed: it is the device's key, and usable. */
async function provesPossession(t: Test, key: DeviceKey, privateKey: KeyObject | CryptoKey | Uint8Array, what: string) {
  const jws = await new CompactSign(new TextEncoder().encode('hello')).setProtectedHeader({ alg: key.alg }).sign(privateKey);
  const { payload } = await compactVerify(jws, createPublicKey({ key: key.publicJwk as never, format: 'jwk' }));
  t.equal(new TextDecoder().decode(payload), 'hello', `${what}: the stored key verifies the device's signature`);
}

t.test('PEM and JWK of both algorithms, from node:crypto', async (t) => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const { publicKey, privateKey } = nodePair(alg);
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const jwk = publicKey.export({ format: 'jwk' });
    const fromPem = await parseDevicePublicKey(pem, { now: NOW });
    t.equal(fromPem.alg, alg, `${alg} PEM: its alg`);
    t.same(Object.keys(fromPem.publicJwk).sort(), alg === 'ES256' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'], `${alg}: only public members`);
    t.match(fromPem.publicJwk, alg === 'ES256' ? { kty: 'EC', crv: 'P-256' } : { kty: 'OKP', crv: 'Ed25519' });
    t.equal(fromPem.kid, await calculateJwkThumbprint(jwk, 'sha256'), `${alg}: the kid is jose's RFC 7638 thumbprint`);
    t.equal(fromPem.addedAt, NOW.toISOString(), 'added now');
    t.notOk('expiresAt' in fromPem, 'no expiry unless given');
    await provesPossession(t, fromPem, privateKey, `${alg} PEM`);

    t.same(await parseDevicePublicKey(JSON.stringify(jwk), { now: NOW }), fromPem, `${alg}: the JWK as JSON text is the same key`);
    t.same(await parseDevicePublicKey(jwk, { now: NOW }), fromPem, `${alg}: and as an object (a request body)`);
    t.same(await parseDevicePublicKey(`\n  ${pem}\n\n`, { now: NOW }), fromPem, 'surrounding whitespace is no matter');
    t.same(await parseDevicePublicKey(pem.replaceAll('\n', '\r\n'), { now: NOW }), fromPem, 'nor CRLF line ends');
  }
});

t.test('PEM made by openssl, as a firmware engineer would; its private key refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gw-device-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const made: [DeviceKey['alg'], string[][]][] = [
    ['ES256', [['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'k.pem'], ['ec', '-in', 'k.pem', '-pubout', '-out', 'pub.pem']]],
    ['EdDSA', [['genpkey', '-algorithm', 'ed25519', '-out', 'k.pem'], ['pkey', '-in', 'k.pem', '-pubout', '-out', 'pub.pem']]],
  ];
  for (const [alg, commands] of made) {
    const at = join(dir, alg);
    await mkdir(at);
    for (const args of commands) await run('openssl', args, { cwd: at });
    const privatePem = await readFile(join(at, 'k.pem'), 'utf8');
    const key = await parseDevicePublicKey(await readFile(join(at, 'pub.pem'), 'utf8'), { now: NOW });
    t.equal(key.alg, alg, `openssl ${alg}: accepted`);
    t.match(key.kid, /^[A-Za-z0-9_-]{43}$/, 'a thumbprint kid');
    await provesPossession(t, key, createPrivateKey(privatePem), `openssl ${alg}`);
    await refuses(t, privatePem, /private key: give the gateway only the public key/, `openssl ${alg} private key`);
  }
});

t.test('a JWK keeps its own kid when it is a usable one; its alg must match its key', async (t) => {
  const jwk = nodePair('ES256').publicKey.export({ format: 'jwk' });
  const thumbprint = await calculateJwkThumbprint(jwk);
  t.equal((await parseDevicePublicKey({ ...jwk, kid: 'factory:key-7.a_b' })).kid, 'factory:key-7.a_b', 'its own kid');
  for (const kid of ['has space', 'x'.repeat(65), '', 7, 'slash/kid']) {
    t.equal((await parseDevicePublicKey({ ...jwk, kid })).kid, thumbprint, `kid ${JSON.stringify(kid)}: the thumbprint instead`);
  }
  t.notOk('kid' in (await parseDevicePublicKey({ ...jwk, kid: 'k1', use: 'sig' })).publicJwk, 'the stored JWK holds no kid, use or alg');
  t.equal((await parseDevicePublicKey({ ...jwk, alg: 'ES256' })).alg, 'ES256', 'a matching alg');
  const ed = nodePair('EdDSA').publicKey.export({ format: 'jwk' });
  t.equal((await parseDevicePublicKey({ ...ed, alg: 'EdDSA' })).alg, 'EdDSA');
  await refuses(t, { ...jwk, alg: 'EdDSA' }, /says alg "EdDSA", but its key is ES256/, 'an EC key that says EdDSA');
  await refuses(t, { ...ed, alg: 'ES256' }, /says alg "ES256", but its key is EdDSA/, 'an Ed25519 key that says ES256');
  await refuses(t, { ...jwk, alg: 'HS256' }, /says alg "HS256"/, 'an HMAC alg');
  await refuses(t, { ...jwk, alg: 'none' }, /says alg "none"/, 'alg none');
});

t.test('other keys, private keys and garbage are refused, each saying why', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const x25519 = generateKeyPairSync('x25519');
  const ed448 = generateKeyPairSync('ed448');
  const es = nodePair('ES256');
  const spki = (k: typeof rsa) => k.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const cases: [unknown, RegExp, string][] = [
    [spki(rsa), /rsa keys are not accepted: devices use ES256 \(EC P-256\) or EdDSA \(Ed25519\)/, 'RSA PEM'],
    [rsa.publicKey.export({ format: 'jwk' }), /rsa keys are not accepted/, 'RSA JWK'],
    [rsa.publicKey.export({ format: 'pem', type: 'pkcs1' }).toString(), /not a PEM public key/, 'RSA PKCS#1 PEM'],
    [spki(p384), /EC secp384r1 keys are not accepted/, 'P-384 PEM'],
    [p384.publicKey.export({ format: 'jwk' }), /EC secp384r1 keys are not accepted/, 'P-384 JWK'],
    [spki(x25519), /x25519 keys are not accepted/, 'X25519 (not a signing key)'],
    [spki(ed448), /ed448 keys are not accepted/, 'Ed448'],
    [es.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), /private key/, 'PKCS#8 private key'],
    [es.privateKey.export({ format: 'pem', type: 'sec1' }).toString(), /private key/, 'SEC1 private key'],
    [`${spki(es)}\n${es.privateKey.export({ format: 'pem', type: 'pkcs8' })}`, /private key/, 'a public key followed by a private one'],
    [es.privateKey.export({ format: 'jwk' }), /holds a private key \("d"\)/, 'private JWK'],
    [JSON.stringify(es.privateKey.export({ format: 'jwk' })), /holds a private key \("d"\)/, 'private JWK text'],
    [`${spki(es)}${spki(nodePair('EdDSA'))}`, /one -----BEGIN PUBLIC KEY----- block/, 'two public keys'],
    ['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----', /certificate: give the device's public key/, 'a certificate'],
    [`-----BEGIN PUBLIC KEY-----\n${randomBytes(91).toString('base64')}\n-----END PUBLIC KEY-----`, /no readable key/, 'random bytes in PEM armour'],
    [randomBytes(300).toString('base64'), /neither a PEM public key nor a JWK/, 'base64 garbage'],
    ['', /neither a PEM public key nor a JWK/, 'empty text'],
    ['{"kty": "EC",', /neither a PEM public key nor a JWK/, 'broken JSON'],
    ['[1, 2]', /a JWK must be a JSON object/, 'a JSON array'],
    [42, /a JWK must be a JSON object/, 'a number'],
    [null, /a JWK must be a JSON object/, 'null'],
    [{ kty: 'oct', k: 'c2VjcmV0' }, /not a usable public JWK \(kty "oct"/, 'a symmetric JWK'],
    [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }, /not a usable public JWK/, 'a point that is not on the curve'],
    [{ kty: 'EC', crv: 'P-256' }, /not a usable public JWK/, 'a JWK without coordinates'],
    ['A'.repeat(MAX_PUBLIC_KEY_CHARS + 1), /at most 4096/, 'text over 4096 characters'],
    [{ ...es.publicKey.export({ format: 'jwk' }), pad: 'A'.repeat(MAX_PUBLIC_KEY_CHARS) }, /at most 4096/, 'a JWK over 4096 characters'],
  ];
  for (const [input, message, what] of cases) await refuses(t, input, message, what);
});

t.test('expiry: an ISO 8601 date in the future, stored as an ISO string', async (t) => {
  const pem = nodePair('EdDSA').publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const at = async (expiresAt: string) => (await parseDevicePublicKey(pem, { expiresAt, now: NOW })).expiresAt;
  t.equal(await at('2031-06-30T12:00:00Z'), '2031-06-30T12:00:00.000Z');
  t.equal(await at('2031-06-30T12:00:00.5+02:00'), '2031-06-30T10:00:00.500Z', 'an offset');
  t.equal(await at('2031-06-30'), '2031-06-30T00:00:00.000Z', 'a date alone is its UTC midnight');
  await refuses(t, pem, /expiry 2029-12-31T23:59:59Z is in the past/, 'a second ago', { expiresAt: '2029-12-31T23:59:59Z' });
  await refuses(t, pem, /in the past/, 'now itself', { expiresAt: NOW.toISOString() });
  for (const bad of ['soon', '1', '12', '2031-06-30T12:00:00', 'Jun 30 2031', '2031-13-45', '']) {
    await refuses(t, pem, /is not an ISO 8601 date \(e\.g\. 2027-06-30/, `expiry ${JSON.stringify(bad)}`, { expiresAt: bad });
  }
});

t.test('generateDeviceKeyPair: a fresh pair per call; the private JWK carries kid and alg', async (t) => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const { key, privateJwk } = await generateDeviceKeyPair(alg);
    const again = await generateDeviceKeyPair(alg);
    t.not(again.key.kid, key.kid, `${alg}: a new key each time`);
    t.match(privateJwk, { kty: alg === 'ES256' ? 'EC' : 'OKP', d: String, kid: key.kid, alg });
    const { d: _d, kid: _kid, alg: _alg, ...publicPart } = privateJwk;
    t.same(publicPart, key.publicJwk, `${alg}: the stored key is the private key's public half`);
    t.notOk('d' in key.publicJwk, 'the stored key has no "d"');
    t.equal(key.kid, await calculateJwkThumbprint(key.publicJwk), 'its kid is the thumbprint');
    await provesPossession(t, key, await importJWK(privateJwk, alg), `${alg} generated`);
  }
  await t.rejects(generateDeviceKeyPair('RS256' as never), TypeError, 'an alg devices do not use: a TypeError (caller misuse)');
});
