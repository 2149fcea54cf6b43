import t, { type Test } from 'tap';
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { registerServeCommand } from '../../gateway/src/cli/serve-command.ts';
import { SERVE_FLAGS, serveOptions, settingHelp, settingsFromFlags } from '../../gateway/src/cli/serve-flags.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { ConfigError } from '../../gateway/src/errors.ts';

// Only configurations that fail: `serve` stops at its config, before it opens anything.

async function serveFails(t: Test, args: string[]): Promise<{ problems: readonly string[]; stderr: string[] }> {
  const stderr: string[] = [];
  const program = new Command('gateway').exitOverride();
  registerServeCommand(program, { out: () => undefined, err: (line) => stderr.push(line) });
  try {
    await program.parseAsync(['serve', ...args], { from: 'user' });
  } catch (err) {
    t.ok(err instanceof ConfigError, 'a ConfigError');
    return { problems: (err as ConfigError).problems, stderr };
  }
  t.fail('serve started, expected a config problem');
  return { problems: [], stderr };
}

t.test('--token-ttl and --leeway set the settings with units, and win over the file\'s old names', async (t) => {
  const dir = t.testdir();
  const file = `${dir}/gateway.json`;
  writeFileSync(file, JSON.stringify({ tokenTtl: 60, leeway: 5 }));
  const { problems, stderr } = await serveFails(t, ['--config', file, '--token-ttl', '120', '--leeway', 'x', '--state', dir]);
  t.same(problems, ['backend: required (the backend\'s base URL, http:// or https://)', 'leewaySec: expected a whole number from 0 to 3600, got "x"'],
    'no "set both" problem: the flags override the file');
  t.same(stderr, [
    'gateway: warning: setting "tokenTtl" is deprecated: use "tokenTtlSec"',
    'gateway: warning: setting "leeway" is deprecated: use "leewaySec"',
  ], 'the file\'s old names are warned about on stderr, the flags are not');
});

t.test('--store takes file or a Redis URL', async (t) => {
  const dir = t.testdir();
  const { problems, stderr } = await serveFails(t, ['--store', 'redis://:hunter2@cache', '--state', dir]);
  t.match(problems, [/^backend: required/, /^store: expected redis:\/\/.*with a host and a port.*got "redis:\/\/:\*\*\*@cache"$/]);
  t.same(stderr, [], 'no warning');
});

t.test('each flag sets its setting, and says in --help what the setting is and its default', async (t) => {
  const options = serveOptions();
  const command = new Command('serve').exitOverride();
  for (const { option } of options) command.addOption(option);
  command.parse(SERVE_FLAGS.flatMap(({ flag, setting }) => [flag, `given-${setting}`]), { from: 'user' });
  t.same(settingsFromFlags(options, command.opts()), Object.fromEntries(SERVE_FLAGS.map(({ setting }) => [setting, `given-${setting}`])));
  t.same(settingsFromFlags(options, {}), Object.fromEntries(SERVE_FLAGS.map(({ setting }) => [setting, undefined])), 'a flag not given is undefined');
  t.equal(new Set(SERVE_FLAGS.map((f) => f.setting)).size, SERVE_FLAGS.length, 'one flag per setting');

  const help = command.helpInformation().replace(/\s+/g, ' ');
  for (const { flag, setting, value } of SERVE_FLAGS) {
    t.ok(help.includes(`${flag} <${value}> ${settingHelp(setting)}`), `${flag}: ${settingHelp(setting)}`);
  }
  t.equal(settingHelp('tokenTtlSec'), 'access token lifetime in seconds (default 3600)');
  t.equal(settingHelp('backend'), 'backend base URL, http:// or https:// (required)');
  t.equal(settingHelp('adminPort'), 'serve the admin API (HTTPS, mutual TLS) on this loopback port; off by default');
  t.equal(settingHelp('adminCa'), `CA whose client certificates may use the admin API (default ${DEFAULTS.adminCa})`);
});
