import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { decodeCoseSign1, signCoseSign1, verifyCoseSign1 } from '../../gateway/src/auth/tokens/cose-sign1.ts';
import { Keystore, createTokenIssuer, newRecordId } from '../../gateway/src/auth/index.ts';
import type { SigningAlg } from '../../gateway/src/config/index.ts';
import { encodeCbor } from '../../gateway/src/wire/index.ts';

// An independent check of our COSE_Sign1: Python's cbor2 and cryptography (Debian's packages,
// so Debian's /usr/bin/python3, not a pyenv python3 on PATH) verify what we sign, rebuilding
// the Sig_structure themselves, and sign what we verify. See test/helpers/cose_verify.py.

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../helpers/cose_verify.py', import.meta.url));
const INSTALL = 'apt-get install python3-cbor2 python3-cryptography';

/** Why Python cannot do the check, or undefined when it can. */
async function pythonProblem(): Promise<string | undefined> {
  try {
    await run(PYTHON, ['-c', 'import cbor2, cryptography'], { timeout: 20_000 });
    return undefined;
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    return `${PYTHON} cannot import cbor2 and cryptography (${(stderr ?? message).trim().split('\n').pop()}): ${INSTALL}`;
  }
}

async function python(request: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { stdout } = await run(PYTHON, [SCRIPT, JSON.stringify(request)], { timeout: 20_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

function keyPair(alg: SigningAlg): { publicKey: KeyObject; privateKey: KeyObject } {
  return alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
}
const pem = {
  public: (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString(),
  private: (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString(),
};

const CTI = randomBytes(16);
const CLAIMS = new Map<number, unknown>([[1, 'coap://as.example'], [2, 'device-7'], [4, 2000000000], [6, 1999990000], [7, CTI]]);
const CLAIMS_JSON = { 1: 'coap://as.example', 2: 'device-7', 4: 2000000000, 6: 1999990000, 7: { bstr: CTI.toString('hex') } };
const PAYLOAD = encodeCbor(CLAIMS);
const KID = Buffer.from('kid-2030-01');
const AAD = Buffer.from('coap://gw.example|devices|rid-42');

async function pythonVerifiesOurs(t: Test, alg: SigningAlg): Promise<void> {
  const { publicKey, privateKey } = keyPair(alg);
  const message = signCoseSign1(PAYLOAD, { alg, kid: KID, privateKey }, AAD);
  const request = { op: 'verify', message: message.toString('hex'), publicKeyPem: pem.public(publicKey), externalAad: AAD.toString('hex') };
  const result = await python(request);
  t.equal(result.valid, true, `${alg}: Python verifies our signature over its own Sig_structure`);
  t.equal(result.alg, alg === 'ES256' ? -7 : -8, `${alg}: the alg Python read from the protected header`);
  t.equal(result.kid, KID.toString('hex'), `${alg}: the kid Python read`);
  t.same(result.claims, CLAIMS_JSON, `${alg}: the claims Python decoded`);

  const otherAad = await python({ ...request, externalAad: Buffer.from('coap://gw.example|devices|rid-43').toString('hex') });
  t.equal(otherAad.valid, false, `${alg}: Python does not verify it with another external AAD`);
  const noAad = await python({ ...request, externalAad: '' });
  t.equal(noAad.valid, false, `${alg}: nor with none`);
  const otherKey = await python({ ...request, publicKeyPem: pem.public(keyPair(alg).publicKey) });
  t.equal(otherKey.valid, false, `${alg}: nor with another key`);
}

async function weVerifyPythons(t: Test, alg: SigningAlg): Promise<void> {
  const { publicKey, privateKey } = keyPair(alg);
  const result = await python({
    op: 'sign', alg, kid: KID.toString('hex'), payload: PAYLOAD.toString('hex'),
    privateKeyPem: pem.private(privateKey), externalAad: AAD.toString('hex'),
  });
  const bytes = Buffer.from(result.message as string, 'hex');
  const message = decodeCoseSign1(bytes); // cbor2 spells it as our strict parser wants
  t.equal(message.alg, alg, `${alg}: our parser takes Python's message`);
  t.ok(message.kid.equals(KID), `${alg}: the kid`);
  t.ok(message.payload.equals(PAYLOAD), `${alg}: the payload`);
  t.equal(verifyCoseSign1(message, publicKey, AAD), true, `${alg}: we verify Python's signature`);
  t.equal(verifyCoseSign1(message, publicKey), false, `${alg}: not without the external AAD`);
  t.equal(verifyCoseSign1(message, keyPair(alg).publicKey, AAD), false, `${alg}: nor with another key`);
  // Python's and our spelling agree byte for byte, apart from the signature.
  const ours = signCoseSign1(PAYLOAD, { alg, kid: KID, privateKey }, AAD);
  t.ok(bytes.subarray(0, -64).equals(ours.subarray(0, -64)), `${alg}: Python's message is ours up to the signature`);
  if (alg === 'EdDSA') t.ok(bytes.equals(ours), 'EdDSA is deterministic: the very same bytes');
}

const problem = await pythonProblem();
if (problem !== undefined) {
  t.fail(problem);
} else {
  t.test('Python (cbor2, cryptography) verifies what we sign, with an external AAD', async (t) => {
    for (const alg of ['ES256', 'EdDSA'] as const) await pythonVerifiesOurs(t, alg);
  });
  t.test('we verify what Python signs', async (t) => {
    for (const alg of ['ES256', 'EdDSA'] as const) await weVerifyPythons(t, alg);
  });
  t.test('the gateway\'s own CWTs, checked by Python with the external AAD it builds itself', async (t) => {
    for (const alg of ['ES256', 'EdDSA'] as const) await pythonVerifiesGatewayCwt(t, alg);
  });
}

/** A CWT as a login hands it out (the keystore's key, the issuer's claims); Python makes [iss, aud, rid] in CBOR itself. */
async function pythonVerifiesGatewayCwt(t: Test, alg: SigningAlg): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cose-python-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const keystore = await Keystore.open({ dir, signingAlg: alg, maxTokenLifetimeSec: 4000, nowMs: Date.now }, true);
  const issuer = createTokenIssuer({ keystore, issuer: 'coap-gateway', audience: 'coap-gateway', ttlSec: 3600, nowMs: Date.now });
  const recordId = newRecordId();
  const issued = await issuer.issue({ id: 'demo-sensor-01', scopes: ['telemetry:write'], recordId }, undefined, 'cwt');
  const cwt = issued.answerValue as Buffer;
  const { stdout } = await run(PYTHON, ['-c', 'import cbor2, sys; print(cbor2.dumps(sys.argv[1:]).hex())',
    'coap-gateway', 'coap-gateway', recordId], { timeout: 20_000 });
  const publicKey = createPublicKey({ key: keystore.jwks().keys[0]! as never, format: 'jwk' });
  const result = await python({ op: 'verify', message: cwt.toString('hex'), publicKeyPem: pem.public(publicKey), externalAad: stdout.trim() });
  t.equal(result.valid, true, `${alg}: Python verifies the gateway's CWT (${cwt.length} bytes)`);
  t.equal(result.kid, keystore.signingKey().kid, `${alg}: its kid is the key's 4 bytes`);
  const claims = result.claims as Record<string, unknown>;
  t.equal(claims[2], 'demo-sensor-01', `${alg}: sub`);
  t.equal(claims[4], issued.accessClaims.exp, `${alg}: exp`);
  t.same(claims[7], { bstr: Buffer.from(issued.accessClaims.jti, 'base64url').toString('hex') }, `${alg}: cti is the jti's bytes`);
  const other = await python({ op: 'verify', message: cwt.toString('hex'), publicKeyPem: pem.public(publicKey),
    externalAad: encodeCbor(['coap-gateway', 'coap-gateway', newRecordId()]).toString('hex') });
  t.equal(other.valid, false, `${alg}: with another record's id in the AAD it does not verify`);
}
