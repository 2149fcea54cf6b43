import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import t, { type Test } from 'tap';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { buildFileStore, type DeviceRecord, type Revocation } from '../../gateway/src/store/index.ts';
import { AuthRequestKey } from '../../gateway/src/wire/index.ts';
import { allKeys } from '../helpers/admin-client.ts';
import { runCli, type CliResult } from '../helpers/cli-run.ts';
import { jwkFile, opensslKey } from '../helpers/device-key-files.ts';
import { startHarness } from '../helpers/harness.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Device public keys and revocation as an operator provisions them with the real CLI, each
// command in its own process; every bad input gets its clear error, and the next good command
// still works. The admin API's side is device-keys-admin.test.ts.

const workDir = (t: Test) => tempDir(t, 'gw-keys-');

type Listed = { id: string; secret: boolean; keys: { kid: string; alg: string; expiresAt?: string }[]; disabled?: boolean };
async function devicesJson(state: string): Promise<Listed[]> {
  const listed = await runCli(['devices', 'list', '--json', '--state', state]);
  return JSON.parse(listed.stdout) as Listed[];
}

/** What the file store in `state` holds, read through its ports as a gateway would. */
async function readStore(state: string): Promise<{ devices: Map<string, DeviceRecord>; revocations: Revocation[] }> {
  const store = await buildFileStore(state);
  try {
    const devices = new Map<string, DeviceRecord>();
    for await (const batch of store.devices.list()) for (const record of batch) devices.set(record.id, record);
    return { devices, revocations: await store.revocations.list(Math.floor(Date.now() / 1000)) };
  } finally {
    await store.close();
  }
}

function failsWithExit2(t: Test, result: CliResult, message: RegExp, what: string): void {
  t.equal(result.code, 2, `${what}: exit 2`);
  t.match(result.stderr, message, `${what}: says why`);
  t.notMatch(result.stderr, /unexpected error|\n\s+at /, `${what}: a message, not a stack trace`);
}

// Each CLI run is a fresh Node process (about a second): runs that cannot affect each other go side
// by side. Every way a key is parsed is tested in test/unit/device-keys.test.ts; here, each way the
// CLI reads one, and each store rule as the CLI reports it.

t.test('CLI: devices add --public-key (openssl PEM, JWK) makes and prints no secret; devices keys add/list/remove within the rules', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  const es = await opensslKey(dir, 'es', 'ES256');
  const ed = await jwkFile(dir, 'ed', { kid: 'factory-key-7' });
  const both = await opensslKey(dir, 'both', 'EdDSA');

  await t.test('devices add', async (t) => {
    const [pemAdd, jwkAdd, withSecret] = await Promise.all([
      runCli(['devices', 'add', 'keyed-1', '--public-key', es.publicFile, '--state', state]),
      runCli(['devices', 'add', 'keyed-2', '--public-key', ed.file, '--expires', '2099-01-01', '--state', state]),
      runCli(['devices', 'add', 'keyed-3', '--public-key', both.publicFile, '--with-secret', '--state', state]),
    ]);
    for (const [result, what] of [[pemAdd, 'PEM'], [jwkAdd, 'JWK']] as const) {
      t.equal(result.code, 0, `${what}: added (${result.stderr.trim()})`);
      t.equal(result.stdout, '', `${what}: no secret is made or printed`);
      t.notMatch(result.stderr, /secret/, `${what}: nor mentioned`);
    }
    t.match(pemAdd.stderr, /device "keyed-1" added with scopes telemetry:write; key \S+ \(ES256\)/, 'stderr names the key');
    t.match(jwkAdd.stderr, /key factory-key-7 \(EdDSA\)/, 'a JWK keeps its own kid');
    t.equal(withSecret.code, 0);
    t.match(withSecret.stdout, /^[0-9a-f]{64}\n$/, '--with-secret: the secret too, printed once');
    const { devices } = await readStore(state);
    t.notOk('secretHash' in devices.get('keyed-1')!, 'the store holds no secret for a device given its key');
    t.same(devices.get('keyed-2')!.keys![0]!.publicJwk, { kty: 'OKP', crv: 'Ed25519', x: ed.jwk.x }, 'the store holds the public JWK, without kid');
    t.ok(devices.get('keyed-3')!.secretHash, '--with-secret: a hash stored');
  });

  await t.test('devices list', async (t) => {
    const [listed, table] = await Promise.all([devicesJson(state), runCli(['devices', 'list', '--state', state])]);
    t.match(listed, [
      { id: 'keyed-1', secret: false, keys: [{ alg: 'ES256', kid: /^[A-Za-z0-9_-]{43}$/ }] },
      { id: 'keyed-2', secret: false, keys: [{ kid: 'factory-key-7', alg: 'EdDSA', expiresAt: '2099-01-01T00:00:00.000Z' }] },
      { id: 'keyed-3', secret: true, keys: [{ alg: 'EdDSA' }] },
    ], 'listed with their keys and whether they have a secret');
    t.same([...new Set(allKeys(listed.map((d) => d.keys)))].sort(), ['alg', 'expiresAt', 'kid'], 'a key is listed by kid, alg and expiry only');
    const lines = table.stdout.trim().split('\n').map((line) => line.split('\t'));
    t.same(lines[0], ['ID', 'SCOPES', 'SECRET', 'KEYS', 'STATE', 'CREATED'], 'the table\'s columns');
    t.same(lines.slice(1).map((row) => row.slice(0, 5)), [['keyed-1', 'telemetry:write', 'no', listed[0]!.keys[0]!.kid, 'enabled'],
      ['keyed-2', 'telemetry:write', 'no', 'factory-key-7', 'enabled'], ['keyed-3', 'telemetry:write', 'yes', listed[2]!.keys[0]!.kid, 'enabled']],
    'one row per device: secret yes/no, its kids, its state');
    for (const text of [table.stdout, JSON.stringify(listed)]) {
      t.notOk(text.includes(ed.jwk.x!) || /secretHash|publicJwk/.test(text), 'no key material and no hash in the listing');
    }
  });

  const kidsOf = async (id: string) => (await readStore(state)).devices.get(id)!.keys!.map((k) => k.kid).sort();
  const [firstKid] = await kidsOf('keyed-1');
  const second = await opensslKey(dir, 'second', 'EdDSA');
  const third = await jwkFile(dir, 'third', { kid: 'factory-key-9', alg: 'EdDSA' });
  let secondKid = '';

  await t.test('devices keys add and list', async (t) => {
    const [addKey, addJwk] = await Promise.all([
      runCli(['devices', 'keys', 'add', 'keyed-1', '--public-key', second.publicFile, '--expires', '2099-01-01T00:00:00Z', '--state', state]),
      runCli(['devices', 'keys', 'add', 'keyed-1', '--public-key', third.file, '--state', state]),
    ]);
    t.equal(addKey.code, 0, 'an openssl EdDSA key added');
    secondKid = addKey.stdout.trim();
    t.match(secondKid, /^[A-Za-z0-9_-]{43}$/, 'its kid (an RFC 7638 thumbprint) on stdout');
    t.match(addKey.stderr, `key ${secondKid} (EdDSA) added to device "keyed-1", until 2099-01-01T00:00:00.000Z`);
    t.equal(addJwk.stdout, 'factory-key-9\n', 'a JWK keeps its own kid');
    const [list, table] = await Promise.all([
      runCli(['devices', 'keys', 'list', 'keyed-1', '--json', '--state', state]),
      runCli(['devices', 'keys', 'list', 'keyed-1', '--state', state]),
    ]);
    const keys = JSON.parse(list.stdout) as { kid: string }[];
    t.same(keys.map((k) => k.kid).sort(), [firstKid, secondKid, 'factory-key-9'].sort(), 'all three');
    t.match(keys.find((k) => k.kid === secondKid), { alg: 'EdDSA', addedAt: String, expiresAt: '2099-01-01T00:00:00.000Z' });
    t.notOk(/publicJwk|"x"/.test(list.stdout), 'kid, alg and dates: no key material');
    const rows = table.stdout.trim().split('\n');
    t.equal(rows[0], 'KID\tALG\tADDED\tEXPIRES', 'a table too');
    t.match(rows.find((row) => row.startsWith(`${secondKid}\t`))?.split('\t'), [secondKid, 'EdDSA', /^\d{4}-/, '2099-01-01T00:00:00.000Z'], 'a row per key');
  });

  await t.test('refusals say why and change nothing', async (t) => {
    const fourth = await opensslKey(dir, 'four', 'ES256');
    const refusals: [string[], RegExp, string][] = [
      [['devices', 'keys', 'add', 'keyed-1', '--public-key', fourth.publicFile], /has 3 keys, the most it may hold: remove one first/, 'a fourth key'],
      [['devices', 'keys', 'add', 'keyed-2', '--public-key', ed.file], /has key "factory-key-7" already/, 'a key it has'],
      [['devices', 'keys', 'add', 'nobody', '--public-key', fourth.publicFile], /no device "nobody"/, 'an unknown device'],
      [['devices', 'keys', 'remove', 'keyed-1', 'no-such-kid'], /has no key "no-such-kid"/, 'an unknown kid'],
      [['devices', 'keys', 'add', 'keyed-2', '--public-key', es.privateFile], /private key: give the gateway only the public key/, 'a private key'],
      [['devices', 'keys', 'add', 'keyed-2', '--public-key', '/dev/zero'], /over 4096 bytes: not a public key/, 'an endless file'],
      [['devices', 'add', 'past-1', '--public-key', fourth.publicFile, '--expires', '2001-01-01T00:00:00Z'], /expiry 2001-01-01T00:00:00Z is in the past/, 'an expiry in the past'],
      [['devices', 'add', 'past-2', '--expires', '2099-01-01'], /--expires and --with-secret go with --public-key/, '--expires without a key'],
    ];
    const results = await Promise.all(refusals.map(([args]) => runCli([...args, '--state', state])));
    refusals.forEach(([, message, what], i) => failsWithExit2(t, results[i]!, message, what));
    const { devices } = await readStore(state);
    t.same([...devices.keys()].sort(), ['keyed-1', 'keyed-2', 'keyed-3'], 'no device was added');
    t.same(await kidsOf('keyed-1'), [firstKid, secondKid, 'factory-key-9'].sort(), 'the keys are as they were');
    t.same(await kidsOf('keyed-2'), ['factory-key-7']);
  });

  await t.test('devices keys remove, but not the last credential', async (t) => {
    const removed = await Promise.all([secondKid, 'factory-key-9'].map((kid) => runCli(['devices', 'keys', 'remove', 'keyed-1', kid, '--state', state])));
    t.same(removed.map((r) => r.code), [0, 0], 'two keys removed after the refusals');
    t.match(removed[0]!.stderr, `key ${secondKid} removed from device "keyed-1"`);
    failsWithExit2(t, await runCli(['devices', 'keys', 'remove', 'keyed-1', firstKid!, '--state', state]),
      /key "\S+" is device "keyed-1"'s only credential: add another key first, or remove the device/, 'the last credential');
    t.same(await kidsOf('keyed-1'), [firstKid], 'the key is still there');
  });

  await t.test('keys added by three processes at once to a device with room for two (compare-and-set)', async (t) => {
    const files = await Promise.all([0, 1, 2].map(async (i) => (await jwkFile(dir, `race-${i}`)).file));
    const results = await Promise.all(files.map((file) => runCli(['devices', 'keys', 'add', 'keyed-3', '--public-key', file, '--state', state])));
    const added = results.filter((r) => r.code === 0);
    t.equal(added.length, 2, 'two added');
    const refused = results.filter((r) => r.code !== 0);
    t.equal(refused.length, 1, 'one refused');
    if (refused[0] !== undefined) failsWithExit2(t, refused[0], /has 3 keys, the most it may hold/, 'the third');
    const kept = await kidsOf('keyed-3');
    t.equal(kept.length, 3);
    t.ok(added.every((r) => kept.includes(r.stdout.trim())), 'the store holds each key reported added');
  });
});

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

t.test('CLI: revoke gives the record a new id, disable/enable set and clear the flag; unknown devices and bad ids are clear errors', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  t.equal((await runCli(['devices', 'add', 'sensor-1', '--state', state])).code, 0);
  const refusals: [string[], RegExp][] = [
    [['devices', 'revoke', 'nobody'], /no device "nobody"/], [['devices', 'disable', 'nobody'], /no device "nobody"/],
    [['devices', 'enable', 'bad id!'], /bad device id "bad id!"/],
  ];
  const results = await Promise.all(refusals.map(([args]) => runCli([...args, '--state', state])));
  refusals.forEach(([args, message], i) => failsWithExit2(t, results[i]!, message, args.join(' ')));

  const before = (await readStore(state)).devices.get('sensor-1')!;
  const revoked = await runCli(['devices', 'revoke', 'sensor-1', '--state', state]);
  t.equal(revoked.code, 0, 'revoke works after the refusals');
  t.match(revoked.stderr, /device "sensor-1" revoked: every token issued to it before now is refused \(running gateways apply it within a second\); it may log in again/);
  const after = (await readStore(state)).devices.get('sensor-1')!;
  t.not(after.recordId, before.recordId, 'a new record id: tokens carrying the old one are refused');
  t.same({ ...after, recordId: before.recordId }, before, 'nothing else changed (the secret stays)');

  const disabled = await runCli(['devices', 'disable', 'sensor-1', '--state', state]);
  t.equal(disabled.code, 0);
  t.match(disabled.stderr, /device "sensor-1" disabled: it cannot log in or refresh, its tokens are refused \(running gateways apply it within a second\)/);
  t.equal((await readStore(state)).devices.get('sensor-1')!.disabled, true, 'the store says disabled');
  const [json, table] = await Promise.all([devicesJson(state), runCli(['devices', 'list', '--state', state])]);
  t.match(json, [{ id: 'sensor-1', disabled: true }], 'and so does the listing');
  t.match(table.stdout, /\nsensor-1\ttelemetry:write\tyes\t-\tdisabled\t/, 'and the table');
  const enabled = await runCli(['devices', 'enable', 'sensor-1', '--state', state]);
  t.equal(enabled.code, 0);
  t.match(enabled.stderr, /device "sensor-1" enabled \(running gateways apply it within a second\)/);
  const record = (await readStore(state)).devices.get('sensor-1')!;
  t.notOk('disabled' in record, 'enabled: the field is gone');
  t.equal(record.recordId, after.recordId, 'disable and enable keep the record id');
});

t.test('CLI: tokens revoke stores the jti until the token could no longer verify (the config\'s lifetime and leeway)', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  const config = async (name: string, settings: Record<string, unknown>) => {
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify({ state, ...settings }));
    return file;
  };
  const bad: [string[], RegExp, string][] = [
    [['tokens', 'revoke', 'bad jti!', '--state', state], /bad jti "bad jti!": a token's jti is 1-64 of letters, digits and \. _ : -/, 'a jti with a space'],
    [['tokens', 'revoke', '', '--state', state], /bad jti ""/, 'an empty jti'],
    [['tokens', 'revoke', 'ok-jti', '--config', await config('bad', { tokenTtlSec: 'soon' })], /tokenTtlSec: expected whole seconds, got "soon"/, 'a lifetime that is no number'],
  ];
  const refused = await Promise.all(bad.map(([args]) => runCli(args)));
  bad.forEach(([, message, what], i) => failsWithExit2(t, refused[i]!, message, what));
  t.same((await readStore(state)).revocations, [], 'a refused command stores nothing');

  const cases: [string, string[], number][] = [
    ['jti-default', ['--state', state], DEFAULTS.tokenTtlSec + DEFAULTS.leewaySec],
    ['jti-config', ['--config', await config('short', { tokenTtlSec: 600, leewaySec: 5, backend: 'http://127.0.0.1:1' })], 605],
    // The deprecated names still set the gateway's lifetime, so they set the revocation's too.
    ['jti.old_names:1', ['--config', await config('old', { tokenTtl: 86_400, leeway: '60' })], 86_460],
  ];
  const beforeSec = Math.floor(Date.now() / 1000);
  const results = await Promise.all(cases.map(([jti, args]) => runCli(['tokens', 'revoke', jti, ...args])));
  const afterSec = Math.floor(Date.now() / 1000);
  const { revocations } = await readStore(state);
  cases.forEach(([jti, , lifeSec], i) => {
    t.equal(results[i]!.code, 0, `${jti}: revoked (${results[i]!.stderr.trim()})`);
    t.match(results[i]!.stderr, `token ${jti} revoked until `);
    t.match(results[i]!.stderr, '(running gateways apply it within a second)');
    const entry = revocations.find((r) => r.kind === 'token' && r.jti === jti);
    t.ok(entry, `${jti}: store.revocations.list returns it`);
    t.ok(entry!.untilSec >= beforeSec + lifeSec && entry!.untilSec <= afterSec + lifeSec + 1, `${jti}: kept ${lifeSec} s (and a second)`);
    t.ok(entry!.atSec >= beforeSec && entry!.atSec <= afterSec, `${jti}: revoked now`);
  });
  t.equal(revocations.length, 3);
});
