import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keystore } from '../../gateway/src/auth/index.ts';
import { AdminError } from '../../gateway/src/errors.ts';
import { allKeys } from '../helpers/admin-client.ts';

const LIFETIME_SEC = 150;
const START_MS = Date.parse('2030-01-01T00:00:00Z');

/** A keys directory in a fresh temporary state dir, and a clock the test moves. */
async function setUp(t: Test) {
  const stateDir = await mkdtemp(join(tmpdir(), 'gw-keystore-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const clock = { ms: START_MS };
  const dir = join(stateDir, 'keys');
  const open = (createIfEmpty = true, maxTokenLifetimeSec: number | undefined = LIFETIME_SEC) =>
    Keystore.open({ dir, signingAlg: 'ES256', maxTokenLifetimeSec, nowMs: () => clock.ms }, createIfEmpty);
  const privateFile = (kid: string) => join(dir, `${kid}.private.json`);
  return { dir, clock, open, privateFile };
}

async function rejectsWithCode(t: Test, promise: Promise<unknown>, code: string, message: string) {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof AdminError, `${message}: an AdminError`);
  t.equal((err as AdminError | undefined)?.code, code, message);
}

t.test('open creates one active ES256 key; private key 0600 in a 0700 dir; no private part outside it', async (t) => {
  const { dir, open, privateFile } = await setUp(t);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  const keystore = await open();
  const [key, ...others] = keystore.list();
  t.same(others, [], 'exactly one key');
  t.equal(key?.state, 'active');
  t.equal(key?.alg, 'ES256');
  t.equal(keystore.signingKey().kid, key?.kid);
  t.same(keystore.algorithms(), ['ES256']);
  t.equal((await stat(dir)).mode & 0o777, 0o700, 'keys dir tightened to 0700');
  for (const file of await readdir(dir)) {
    t.equal((await stat(join(dir, file))).mode & 0o777, 0o600, `${file} is 0600`);
  }
  const privateJwk = JSON.parse(await readFile(privateFile(key!.kid), 'utf8')) as { d?: string };
  t.type(privateJwk.d, 'string', 'the private file holds the private key');
  const index = await readFile(join(dir, 'keys.json'), 'utf8');
  t.notOk(allKeys(JSON.parse(index)).includes('d'), 'keys.json has no "d"');
  t.notOk(index.includes(privateJwk.d!), 'keys.json does not hold the private value');
  t.notOk(allKeys(keystore.list()).includes('d'), 'list() has no "d"');
  const jwks = keystore.jwks();
  t.notOk(allKeys(jwks).includes('d'), 'jwks() has no "d"');
  t.match(jwks.keys, [{ kid: key!.kid, alg: 'ES256', use: 'sig', kty: 'EC', crv: 'P-256' }]);
  t.notOk(JSON.stringify(jwks).includes(privateJwk.d!));
});

t.test('reopening loads the same keys and makes none; an empty keystore opened read-only has no signer', async (t) => {
  const { open } = await setUp(t);
  const first = await open();
  const again = await open();
  t.same(again.list(), first.list(), 'a restart sees the same keys');
  t.equal(again.signingKey().kid, first.signingKey().kid);

  const empty = await setUp(t);
  const readOnly = await empty.open(false);
  t.same(readOnly.list(), []);
  t.throws(() => readOnly.signingKey(), { code: 'GW_ERR_ADMIN_STATE' });
  t.same(readOnly.jwks(), { keys: [] });
});

t.test('rotate: the new key signs, the previous one verifies until now + max token lifetime', async (t) => {
  const { open } = await setUp(t);
  const keystore = await open();
  const oldKid = keystore.signingKey().kid;
  t.same(keystore.algorithms(), ['ES256'], 'only ES256 before the rotation');
  t.not(keystore.verificationKey(oldKid), undefined);
  const created = await keystore.rotate('EdDSA');
  t.not(created.kid, oldKid);
  t.equal(keystore.signingKey().kid, created.kid);
  t.equal(keystore.signingKey().alg, 'EdDSA');
  t.same(keystore.list().map((k) => [k.kid, k.state]), [[oldKid, 'verifying'], [created.kid, 'active']]);
  const old = keystore.list().find((k) => k.kid === oldKid)!;
  t.equal(Date.parse(old.verifyUntil!), START_MS + LIFETIME_SEC * 1000, 'verifyUntil = rotation + max token lifetime');
  t.same([...keystore.algorithms()].sort(), ['ES256', 'EdDSA']);
  t.not(keystore.verificationKey(oldKid), undefined, 'the old key still verifies');
  t.not(keystore.verificationKey(created.kid), undefined);
  const jwks = keystore.jwks();
  t.same(jwks.keys.map((k) => k.kid), [oldKid, created.kid]);
  t.match(jwks.keys[1], { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
  t.notOk(allKeys(jwks).includes('d'));
});

t.test('a CLI-opened keystore (no lifetime given) uses the lifetime the gateway recorded', async (t) => {
  const { open, clock } = await setUp(t);
  const gatewaySide = await open(true, LIFETIME_SEC);
  const oldKid = gatewaySide.signingKey().kid;
  const cliSide = await open(false, undefined);
  clock.ms += 5000;
  await cliSide.rotate('ES256');
  const old = cliSide.list().find((k) => k.kid === oldKid)!;
  t.equal(Date.parse(old.verifyUntil!), clock.ms + LIFETIME_SEC * 1000);
});

t.test('retire: unknown kid, the active key, a verifying key, twice', async (t) => {
  const { open, privateFile } = await setUp(t);
  const keystore = await open();
  const oldKid = keystore.signingKey().kid;
  await rejectsWithCode(t, keystore.retire('no-such-kid'), 'GW_ERR_ADMIN_UNKNOWN_KEY', 'unknown kid');
  await rejectsWithCode(t, keystore.retire(oldKid), 'GW_ERR_ADMIN_ONLY_ACTIVE_KEY', 'the only (active) key');
  t.equal(keystore.signingKey().kid, oldKid, 'a refused retire changes nothing');
  const created = await keystore.rotate('ES256');
  await rejectsWithCode(t, keystore.retire(created.kid), 'GW_ERR_ADMIN_ONLY_ACTIVE_KEY', 'the new active key');
  await keystore.retire(oldKid);
  const old = keystore.list().find((k) => k.kid === oldKid)!;
  t.equal(old.state, 'retired');
  t.type(old.retiredAt, 'string');
  t.equal(keystore.verificationKey(oldKid), undefined, 'no longer verifies, at once');
  t.notOk(existsSync(privateFile(oldKid)), 'its private key file is deleted');
  t.ok(existsSync(privateFile(created.kid)), 'the active private key stays');
  t.same(keystore.jwks().keys.map((k) => k.kid), [created.kid]);
  t.same(keystore.algorithms(), ['ES256']);
  await rejectsWithCode(t, keystore.retire(oldKid), 'GW_ERR_ADMIN_UNKNOWN_KEY', 'retired already');
  const reopened = await open();
  t.equal(reopened.list().find((k) => k.kid === oldKid)?.state, 'retired', 'persisted');
});

t.test('retireExpired follows the injected clock: not a millisecond early', async (t) => {
  const { open, clock, privateFile } = await setUp(t);
  const keystore = await open();
  const oldKid = keystore.signingKey().kid;
  await keystore.rotate('ES256');
  clock.ms = START_MS + LIFETIME_SEC * 1000 - 1;
  t.same(await keystore.retireExpired(), [], 'one millisecond before verifyUntil');
  t.not(keystore.verificationKey(oldKid), undefined);
  t.ok(existsSync(privateFile(oldKid)));
  clock.ms = START_MS + LIFETIME_SEC * 1000;
  t.equal(keystore.verificationKey(oldKid), undefined, 'refused from verifyUntil on, even before retirement');
  t.same(await keystore.retireExpired(), [oldKid]);
  t.equal(keystore.list().find((k) => k.kid === oldKid)?.state, 'retired');
  t.notOk(existsSync(privateFile(oldKid)), 'private key deleted');
  t.same(await keystore.retireExpired(), [], 'nothing left to retire');
});

t.test('reloadForUnknownKid: single-flight, at most once per second, finds keys another process made', async (t) => {
  const { open, clock } = await setUp(t);
  const keystore = await open();
  let reloads = 0;
  keystore.onUnknownKidReload = () => { reloads += 1; };
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => keystore.reloadForUnknownKid(`nope-${i}`)));
  t.ok(results.every((r) => r === undefined));
  t.equal(reloads, 1, '20 concurrent unknown kids: one reload');
  t.equal(await keystore.reloadForUnknownKid('nope-again'), undefined);
  t.equal(reloads, 1, 'still cooling down');
  t.equal(await keystore.reloadForUnknownKid(undefined), undefined);
  t.equal(reloads, 1, 'no kid: no reload');

  const other = await open(false);
  const created = await other.rotate('ES256');
  t.equal(keystore.verificationKey(created.kid), undefined, 'not seen yet');
  clock.ms += 1000;
  t.not(await keystore.reloadForUnknownKid(created.kid), undefined, 'after the cooldown a reload finds it');
  t.equal(reloads, 2);
  t.equal(keystore.signingKey().kid, created.kid);
});

t.test('kids are hex, so none reads as a CLI option (a base64url kid may start with "-")', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keystore-kid-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const keystore = await Keystore.open({ dir, signingAlg: 'ES256', maxTokenLifetimeSec: 60, nowMs: Date.now }, true);
  for (let i = 0; i < 20; i += 1) await keystore.rotate(i % 2 === 0 ? 'ES256' : 'EdDSA');
  const kids = keystore.list().map((k) => k.kid);
  t.equal(kids.length, 21);
  t.ok(kids.every((kid) => /^[0-9a-f]{8}$/.test(kid)), kids.join(' '));
  t.equal(new Set(kids).size, kids.length, 'no two keys share a kid');
});
