import { join } from 'node:path';
import t, { type Test } from 'tap';
import { allKeys } from '../helpers/admin-client.ts';
import { devicesJson, failsWithExit2, readStore } from '../helpers/cli-checks.ts';
import { runCli } from '../helpers/cli-run.ts';
import { jwkFile, opensslKey } from '../helpers/device-key-files.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Device public keys as an operator provisions them with the real CLI, each command in its own
// process; every bad input gets its clear error, and the next good command still works.
// Revocation by the CLI is revocation-cli.test.ts; the admin API's side, device-keys-admin.test.ts.

const workDir = (t: Test) => tempDir(t, 'gw-keys-');

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
    t.same(lines[0], ['ID', 'SCOPES', 'SECRET', 'KEYS', 'STATE', 'CREATED', 'OSCORE', 'SECURITY'], 'the table\'s columns');
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
      [['devices', 'add', 'past-2', '--expires', '2099-01-01'], /--expires goes with --public-key/, '--expires without a key'],
    ];
    const results = await Promise.all(refusals.map(([args]) => runCli([...args, '--state', state])));
    refusals.forEach(([, message, what], i) => failsWithExit2(t, results[i]!, message, what));
    const { devices } = await readStore(state);
    t.same([...devices.keys()].sort(), ['keyed-1', 'keyed-2', 'keyed-3'], 'no device was added');
    t.same(await kidsOf('keyed-1'), [firstKid, secondKid, 'factory-key-9'].sort(), 'the keys are as they were');
    t.same(await kidsOf('keyed-2'), ['factory-key-7']);
  });

  await t.test('a kid that starts with \'-\': without \'--\' a hint, after it the key is looked up', async (t) => {
    const [bare, separated] = await Promise.all([
      runCli(['devices', 'keys', 'remove', 'keyed-1', '-no-such-kid-0123456', '--state', state]),
      runCli(['devices', 'keys', 'remove', '--state', state, 'keyed-1', '--', '-no-such-kid-0123456']),
    ]);
    failsWithExit2(t, bare, /put it after '--' \(options first\): \.\.\. -- -no-such-kid-0123456/, 'without --');
    failsWithExit2(t, separated, /has no key "-no-such-kid-0123456"/, 'after --');
  });

  await t.test('devices keys remove, but not the last credential', async (t) => {
    // A thumbprint kid may start with '-': after '--', it is never taken for an option.
    const removed = await Promise.all([secondKid, 'factory-key-9'].map((kid) => runCli(['devices', 'keys', 'remove', '--state', state, 'keyed-1', '--', kid!])));
    t.same(removed.map((r) => r.code), [0, 0], 'two keys removed after the refusals');
    t.match(removed[0]!.stderr, `key ${secondKid} removed from device "keyed-1"`);
    failsWithExit2(t, await runCli(['devices', 'keys', 'remove', '--state', state, 'keyed-1', '--', firstKid!]),
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
