import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildFileStore, type DeviceRecord } from '../../gateway/src/store/index.ts';
import { allKeys } from '../helpers/admin-client.ts';
import { runCli, type CliResult } from '../helpers/cli-run.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Each CLI run is a fresh Node process (~0.5 s): independent runs go in parallel, and there are few.

/** Every file under `dir`, with its contents. */
async function allFiles(dir: string): Promise<{ file: string; text: string }[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(file, 'utf8') })));
}

/** What the file store in `state` holds, read through its port as a gateway would (its layout is its own). */
async function registry(state: string): Promise<DeviceRecord[]> {
  const store = await buildFileStore(state);
  try {
    const records: DeviceRecord[] = [];
    for await (const batch of store.devices.list()) records.push(...batch);
    return records;
  } finally {
    await store.close();
  }
}

function failsWithExit2(t: Test, result: CliResult, message: RegExp, name: string): void {
  t.equal(result.code, 2, `${name}: exit 2`);
  t.match(result.stderr, message, `${name}: says why`);
  t.notMatch(result.stderr, /unexpected error|\n\s+at /, `${name}: a message, not a stack trace`);
}

t.test('devices: add prints only the secret, stores only its hash; list, --count, and the errors', async (t) => {
  const state = await tempDir(t, 'gw-cli-state-');
  const out = join(await tempDir(t, 'gw-cli-out-'), 'fleet.json');
  const add = await runCli(['devices', 'add', 'sensor-1', '--scope', 'telemetry:write', '--state', state]);
  t.equal(add.code, 0, `devices add exits 0 (${add.stderr.trim()})`);
  t.match(add.stdout, /^[0-9a-f]{64}\n$/, 'stdout is the 64-hex secret and nothing else');
  const secretHex = add.stdout.trim();
  t.notMatch(add.stderr, new RegExp(secretHex), 'the secret is not repeated on stderr');

  const secret = Buffer.from(secretHex, 'hex');
  t.match(await registry(state), [{ id: 'sensor-1', scopes: ['telemetry:write'],
    secretHash: createHash('sha256').update(secret).digest('base64url') }], 'the store holds the hash');
  for (const { file, text } of await allFiles(state)) {
    for (const form of [secretHex, secret.toString('base64'), secret.toString('base64url')]) {
      t.notOk(text.includes(form), `${file} does not hold the secret`);
    }
  }

  const [duplicate, badId, removeUnknown, list, fleet] = await Promise.all([
    runCli(['devices', 'add', 'sensor-1', '--state', state]),
    runCli(['devices', 'add', 'bad id!', '--state', state]),
    runCli(['devices', 'remove', 'unknown', '--state', state]),
    runCli(['devices', 'list', '--state', state]),
    runCli(['devices', 'add', '--count', '5', '--prefix', 'sim-', '--out', out, '--state', state]),
  ]);
  failsWithExit2(t, duplicate, /sensor-1.*already exists/, 'duplicate id');
  failsWithExit2(t, badId, /bad device id "bad id!"/, 'bad id');
  failsWithExit2(t, removeUnknown, /no device "unknown"/, 'remove an unknown device');
  t.equal(list.code, 0);
  t.match(list.stdout, /^sensor-1\ttelemetry:write\t/m, 'list shows the device and its scopes');
  t.notOk(list.stdout.includes(secretHex) || list.stderr.includes(secretHex), 'list never shows the secret');
  t.notMatch(list.stdout, /secretHash|[0-9a-f]{64}/, 'nor anything secret-like');

  t.equal(fleet.code, 0, `devices add --count exits 0 (${fleet.stderr.trim()})`);
  t.equal(fleet.stdout, '', 'with --out, no secret on stdout');
  t.equal((await stat(out)).mode & 0o777, 0o600, 'the secrets file is 0600');
  const written = JSON.parse(await readFile(out, 'utf8')) as { id: string; secret: string }[];
  t.same(written.map((d) => d.id), ['sim-1', 'sim-2', 'sim-3', 'sim-4', 'sim-5']);
  t.ok(written.every((d) => /^[0-9a-f]{64}$/.test(d.secret)), '5 hex secrets');
  t.equal(new Set(written.map((d) => d.secret)).size, 5, 'all different');
  t.same((await registry(state)).map((d) => d.id).sort(), ['sensor-1', 'sim-1', 'sim-2', 'sim-3', 'sim-4', 'sim-5']);
});

t.test('keys: rotate, list and jwks never print a private key; bad alg, unknown kid, only active key exit 2', async (t) => {
  const state = await tempDir(t, 'gw-cli-keys-');
  const [badAlg, unknownKid, first] = await Promise.all([
    runCli(['keys', 'rotate', '--alg', 'RS256', '--state', state]),
    runCli(['keys', 'retire', 'nope', '--state', state]),
    runCli(['keys', 'rotate', '--state', state]),
  ]);
  failsWithExit2(t, badAlg, /unsupported --alg "RS256".*ES256 or EdDSA/, 'keys rotate --alg RS256');
  failsWithExit2(t, unknownKid, /no key with kid "nope"/, 'keys retire of an unknown kid');
  t.equal(first.code, 0, `keys rotate exits 0 (${first.stderr.trim()})`);
  const firstKid = first.stdout.trim();

  const onlyActive = await runCli(['keys', 'retire', firstKid, '--state', state]);
  failsWithExit2(t, onlyActive, /active signing key.*rotate first/, 'retiring the only active key');
  const second = await runCli(['keys', 'rotate', '--alg', 'EdDSA', '--state', state]);
  t.equal(second.code, 0);
  const secondKid = second.stdout.trim();

  const keysDir = join(state, 'keys');
  const privateParts: string[] = [];
  for (const kid of [firstKid, secondKid]) {
    const file = join(keysDir, `${kid}.private.json`);
    t.equal((await stat(file)).mode & 0o777, 0o600, `${kid}.private.json is 0600`);
    privateParts.push((JSON.parse(await readFile(file, 'utf8')) as { d: string }).d);
  }
  t.equal((await stat(keysDir)).mode & 0o777, 0o700, 'keys dir is 0700');

  const [list, jwks] = await Promise.all([
    runCli(['keys', 'list', '--state', state]),
    runCli(['keys', 'jwks', '--state', state]),
  ]);
  t.equal(list.code, 0);
  const rows = list.stdout.trim().split('\n').map((line) => line.split('\t'));
  t.same(rows[0], ['KID', 'ALG', 'STATE', 'CREATED', 'ACCEPTED UNTIL', 'GATEWAY']);
  t.match(rows.slice(1), [[firstKid, 'ES256', 'verifying', String, /^\d{4}-/, /\(this one\)$/], [secondKid, 'EdDSA', 'active', String, '(signing)', /\(this one\)$/]]);
  t.equal(jwks.code, 0);
  const set = JSON.parse(jwks.stdout) as { keys: { kid: string }[] };
  t.same(set.keys.map((k) => k.kid), [firstKid, secondKid]);
  t.notOk(allKeys(set).includes('d'), 'keys jwks has no "d"');
  for (const output of [list.stdout, list.stderr, jwks.stdout, jwks.stderr]) {
    t.notMatch(output, /"d"/, 'no "d" member printed');
    for (const d of privateParts) t.notOk(output.includes(d), 'no private key value printed');
  }
});

t.test('serve --config: the file\'s problems and the flags\' are listed together; unreadable files are named', async (t) => {
  const state = await tempDir(t, 'gw-cli-config-');
  const file = join(state, 'gateway.json');
  await writeFile(file, JSON.stringify({ backend: 'ftp://x', tokenTtl: 0, bogus: true, routes: [{ path: 'nope' }] }));
  const [bad, missing, notJson] = await Promise.all([
    runCli(['serve', '--config', file, '--coap-port', 'x', '--state', state]),
    runCli(['serve', '--config', join(state, 'missing.json'), '--state', state]),
    runCli(['serve', '--config', join(state, 'gateway.json.txt'), '--state', state]),
  ]);
  t.equal(bad.code, 2);
  for (const problem of [/unknown setting "bogus"/, /coapPort: expected/, /backend: must be http/, /tokenTtl: expected/, /routes\[0\]\.path/, /routes\[0\]\.methods/]) {
    t.match(bad.stderr, problem);
  }
  t.equal(bad.stderr.match(/invalid configuration/g)?.length, 1, 'one message');
  t.equal(missing.code, 2);
  t.match(missing.stderr, /missing\.json: cannot read/);
  t.equal(notJson.code, 2, 'a file that is not there either');
});

t.test('serve with bad config exits 2 and lists every problem in one message', async (t) => {
  const state = await tempDir(t, 'gw-cli-serve-');
  const result = await runCli(['serve', '--coap-port', '99999', '--leeway', '-1', '--admin-host', '10.0.0.1', '--state', state]);
  t.equal(result.code, 2);
  t.match(result.stderr, /invalid configuration/);
  t.match(result.stderr, /coapPort: expected a whole number from 0 to 65535, got "99999"/);
  // --leeway sets leewaySec (the name with its unit); problems name the setting, as for --coap-port.
  t.match(result.stderr, /leewaySec: expected a whole number from 0 to 3600, got "-1"/);
  t.match(result.stderr, /backend: required/);
  t.match(result.stderr, /adminHost: .*loopback/);
  t.equal(result.stderr.match(/invalid configuration/g)?.length, 1, 'one message');
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
});

t.test('--help works on every command', async (t) => {
  const commands = [[], ['serve'], ['devices'], ['devices', 'add'], ['devices', 'list'], ['devices', 'remove'],
    ['keys'], ['keys', 'list'], ['keys', 'rotate'], ['keys', 'retire'], ['keys', 'jwks']];
  const results = await Promise.all(commands.map((command) => runCli([...command, '--help'])));
  results.forEach((result, i) => {
    const name = ['gateway', ...commands[i]!].join(' ');
    t.equal(result.code, 0, `${name} --help exits 0`);
    t.match(result.stdout, new RegExp(`^Usage: ${name}`, 'm'), `${name} --help shows its usage`);
  });
});

t.test('a store that does not answer: exit 3 and a message saying so, not a stack trace', async (t) => {
  const state = await tempDir(t, 'gw-cli-nostore-');
  const store = `redis+unix://${join(state, 'no-redis-here.sock')}`;
  const [add, list] = await Promise.all([
    runCli(['devices', 'add', 'sensor-1', '--store', store, '--state', state]),
    runCli(['keys', 'list', '--store', store, '--state', state]),
  ]);
  for (const [name, result] of [['devices add', add], ['keys list', list]] as const) {
    t.equal(result.code, 3, `${name}: exit 3 (try again later)`);
    t.match(result.stderr, /redis at redis\+unix:.*did not answer.*try again once it is back/, `${name}: says which store and why`);
    t.notMatch(result.stderr, /unexpected error|\n\s+at /, `${name}: no stack trace`);
    t.equal(result.stdout, '', `${name}: nothing on stdout`);
  }
});
