import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { devicesJson, failsWithExit2, readStore } from '../helpers/cli-checks.ts';
import { runCli } from '../helpers/cli-run.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Revocation as an operator does it with the real CLI, each command in its own process: devices
// revoke, disable and enable, tokens revoke; unknown devices and bad ids are clear errors.

const workDir = (t: Test) => tempDir(t, 'gw-revoke-');

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
