import { chmod, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { spawnGateway } from '../../device-sim/src/spawn-gateway.ts';
import { buildFileStore } from '../../gateway/src/store/index.ts';
import { tightenStateDir, type StateDirTightened } from '../../gateway/src/store/state-dir-mode.ts';
import { runCli } from '../helpers/cli-run.ts';
import { tempDir } from '../helpers/store-fixtures.ts';
import { startTestBackend } from '../helpers/test-backend.ts';

// The state directory (device secret hashes, spent token ids, private signing
// keys) is made owner-only at gateway start and by every CLI command that opens it, with a
// warning when it was looser. A directory made by hand under the usual umask is 0755.

const STOP_LIMIT_MS = 5000;

async function tempDirOfMode(t: Test, prefix: string, mode?: number): Promise<string> {
  const dir = await tempDir(t, prefix);
  if (mode !== undefined) await chmod(dir, mode);
  return dir;
}

const modeOf = async (dir: string): Promise<number> => (await stat(dir)).mode & 0o7777;

t.test('gateway serve tightens a 0755 state directory to 0700 and logs a warning', async (t) => {
  const state = await tempDirOfMode(t, 'gw-state-', 0o755);
  const logFile = join(await tempDir(t, 'gw-log-'), 'gateway.log');
  const backend = await startTestBackend();
  t.teardown(() => backend.close());
  t.equal(await modeOf(state), 0o755, 'the directory starts 0755');

  const gateway = await spawnGateway(['--coap-host', '127.0.0.1', '--coap-port', '0', '--backend', backend.url, '--state', state], logFile);
  const killer = setTimeout(() => gateway.process.kill('SIGKILL'), STOP_LIMIT_MS);
  killer.unref();
  t.teardown(async () => {
    await gateway.stop();
    clearTimeout(killer);
  });
  t.equal(await modeOf(state), 0o700, 'owner-only once the gateway listens');
  t.equal(await modeOf(join(state, 'keys')), 0o700, 'and its keys directory');

  // Its log is batched: stopping it (SIGTERM) flushes every line before it exits.
  t.equal(await gateway.stop(), 0, 'the gateway stops cleanly');
  const lines = (await readFile(logFile, 'utf8')).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const warnings = lines.filter((l) => l.level === 40 && l.stateDir !== undefined);
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0], { stateDir: state, fromMode: '0755', toMode: '0700', msg: /tightened/ }, 'it names the directory and both modes');
  const listening = lines.findIndex((l) => l.msg === 'gateway listening');
  t.ok(listening > lines.indexOf(warnings[0]!), 'the warning comes before the gateway listens');
});

t.test('gateway serve says nothing about a directory that is already 0700, or one it creates', async (t) => {
  const parent = await tempDir(t, 'gw-state-parent-');
  const backend = await startTestBackend();
  t.teardown(() => backend.close());
  for (const [name, state] of [['already 0700', await tempDirOfMode(t, 'gw-state-', 0o700)], ['created', join(parent, 'new-state')]] as const) {
    const logFile = join(parent, `${name.replace(/\W/g, '-')}.log`);
    const gateway = await spawnGateway(['--coap-host', '127.0.0.1', '--coap-port', '0', '--backend', backend.url, '--state', state], logFile);
    const killer = setTimeout(() => gateway.process.kill('SIGKILL'), STOP_LIMIT_MS);
    t.equal(await gateway.stop(), 0, `${name}: stops cleanly`);
    clearTimeout(killer);
    t.equal(await modeOf(state), 0o700, `${name}: 0700`);
    t.notMatch(await readFile(logFile, 'utf8'), /tightened/, `${name}: no warning`);
  }
});

t.test('every CLI command that opens the state directory tightens it and says so on stderr', async (t) => {
  const state = await tempDirOfMode(t, 'gw-cli-state-', 0o755);
  const warning = `gateway: tightened the state directory ${state} from 0755 to 0700\n`;
  // In an order in which each succeeds: a device to list and remove, keys to list and retire.
  const commands: string[][] = [
    ['devices', 'add', 'sensor-1'], ['devices', 'list'], ['keys', 'rotate'], ['keys', 'rotate'], ['keys', 'list'], ['keys', 'jwks'],
  ];
  const run = async (args: string[]) => {
    await chmod(state, 0o755);
    const result = await runCli([...args, '--state', state]);
    t.equal(result.code, 0, `${args.join(' ')}: exit 0 (${result.stderr.trim()})`);
    t.equal(await modeOf(state), 0o700, `${args.join(' ')}: the directory is 0700 afterwards`);
    t.ok(result.stderr.startsWith(warning), `${args.join(' ')}: the first line on stderr is the warning`);
    t.notOk(result.stdout.includes('tightened'), `${args.join(' ')}: stdout (pipeable) carries no warning`);
    return result;
  };
  for (const args of commands) await run(args);
  const kids = (await runCli(['keys', 'list', '--state', state])).stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split('\t')[0]!);
  await run(['keys', 'retire', kids[0]!]);
  await run(['devices', 'remove', 'sensor-1']);

  const quiet = await runCli(['devices', 'list', '--state', state]);
  t.equal(quiet.code, 0);
  t.notMatch(quiet.stderr, /tightened/, 'an owner-only directory: no warning');
});

t.test('tightenStateDir: which modes are looser than 0700, and what it reports', async (t) => {
  const cases: [number, StateDirTightened['fromMode'] | undefined][] = [
    [0o755, 0o755], [0o750, 0o750], [0o705, 0o705], [0o777, 0o777], [0o711, 0o711], [0o1777, 0o1777],
    [0o700, undefined], [0o500, undefined],
  ];
  for (const [mode, reported] of cases) {
    const dir = await tempDirOfMode(t, 'gw-mode-', mode);
    const change = await tightenStateDir(dir);
    const name = `0${mode.toString(8)}`;
    if (reported === undefined) {
      t.equal(change, undefined, `${name}: left as it is, nothing reported`);
      t.equal(await modeOf(dir), mode, `${name}: unchanged`);
    } else {
      t.same(change, { dir, fromMode: reported, toMode: 0o700 }, `${name}: reported`);
      t.equal(await modeOf(dir), 0o700, `${name}: now 0700`);
    }
  }
  t.equal(await tightenStateDir(join(tmpdir(), 'gw-no-such-dir-', String(process.pid))), undefined, 'a missing directory: nothing to do');
});

t.test('buildFileStore tightens the directory and tells its caller (the gateway logs it)', async (t) => {
  const dir = await tempDirOfMode(t, 'gw-store-', 0o755);
  const changes: StateDirTightened[] = [];
  const store = await buildFileStore(dir, { onTightened: (change) => changes.push(change) });
  t.teardown(() => store.close());
  t.same(changes, [{ dir, fromMode: 0o755, toMode: 0o700 }]);
  t.equal(await modeOf(dir), 0o700);
});
