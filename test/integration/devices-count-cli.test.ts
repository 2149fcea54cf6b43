import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import t, { type Test } from 'tap';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { AuthRequestKey } from '../../gateway/src/wire/index.ts';
import { failsWithExit2, readStore } from '../helpers/cli-checks.ts';
import { runCli } from '../helpers/cli-run.ts';
import { startHarness } from '../helpers/harness.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// `gateway devices add --count --key-type`: a fleet of devices that hold their own keys, made by
// the real CLI for the simulator; the devices file it writes is private and its keys log in.

const workDir = (t: Test) => tempDir(t, 'gw-keys-');

t.test('CLI: --count with --key-type writes private JWKs (mode 0600, with a warning) that log in with assertions', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  const out = join(dir, 'devices.json');
  const esOut = join(dir, 'es.json');
  const [added, es] = await Promise.all([
    runCli(['devices', 'add', '--count', '3', '--key-type', 'EdDSA', '--out', out, '--state', state]),
    runCli(['devices', 'add', '--count', '1', '--prefix', 'es-', '--key-type', 'ES256', '--out', esOut, '--state', state]),
  ]);
  t.equal(added.code, 0);
  t.match(added.stderr, /warning: .*devices\.json now holds the devices' PRIVATE keys \(mode 0600\): for simulated devices only; real devices make their own keys/,
    'stderr says the file now holds private keys');
  t.equal(added.stdout, '', 'nothing on stdout');
  t.equal((await stat(out)).mode & 0o777, 0o600, 'mode 0600');
  const fleet = JSON.parse(await readFile(out, 'utf8')) as { id: string; secret: string; privateJwk: JWK }[];
  t.equal(fleet.length, 3);
  for (const entry of fleet) t.match(entry, { id: /^sim-/, secret: /^[0-9a-f]{64}$/, privateJwk: { kty: 'OKP', crv: 'Ed25519', d: String, kid: String, alg: 'EdDSA' } });
  const { d: _private, alg: _alg, kid: _kid, ...publicJwk } = fleet[0]!.privateJwk;
  t.equal(await calculateJwkThumbprint(publicJwk), fleet[0]!.privateJwk.kid, 'the kid is the public key\'s thumbprint');
  t.equal(es.code, 0);
  t.match(JSON.parse(await readFile(esOut, 'utf8')), [{ id: 'es-1', secret: /^[0-9a-f]{64}$/, privateJwk: { kty: 'EC', crv: 'P-256', d: String, alg: 'ES256' } }]);
  const { devices } = await readStore(state);
  t.same(devices.get(fleet[0]!.id)!.keys!.map((k) => k.publicJwk), [publicJwk], 'the store holds the public half only');
  t.ok(devices.get(fleet[0]!.id)!.secretHash, 'and a secret, for the simulator\'s secret scenarios');

  const bad = await Promise.all([
    runCli(['devices', 'add', '--count', '2', '--key-type', 'RS256', '--out', join(dir, 'x.json'), '--state', state]),
    runCli(['devices', 'add', '--count', '2', '--key-type', 'EdDSA', '--expires', '2099-01-01', '--out', join(dir, 'x.json'), '--state', state]),
  ]);
  failsWithExit2(t, bad[0]!, /--key-type must be ES256 or EdDSA, got "RS256"/, 'RS256');
  failsWithExit2(t, bad[1]!, /--expires goes with --public-key/, '--expires with --count');
  t.equal((await readStore(state)).devices.size, 4, 'no device added by a refused command');

  const h = await startHarness(t, { config: { state } });
  const device = await h.device();
  const iat = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({ aud: DEFAULTS.audience, jti: randomBytes(8).toString('hex') })
    .setProtectedHeader({ alg: 'EdDSA', kid: fleet[0]!.privateJwk.kid! }).setIssuedAt(iat).setExpirationTime(iat + 60)
    .sign(await importJWK(fleet[0]!.privateJwk, 'EdDSA'));
  const answer = await device.send({ method: 'POST', path: '/auth',
    body: new Map<number, unknown>([[AuthRequestKey.deviceId, fleet[0]!.id], [AuthRequestKey.assertion, assertion]]) });
  t.equal(answer.code, '2.01', 'a device of the file logs in with its key');
  t.equal((await device.login(fleet[1]!.id, Buffer.from(fleet[1]!.secret, 'hex'))).answer.code, '2.01', 'and with its secret');
});
