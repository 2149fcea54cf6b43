import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DEVICE_ID_PATTERN, SCOPE_PATTERN, generateSecret, hashSecret } from '../auth/index.ts';
import { DEFAULTS } from '../config/index.ts';
import { AdminError } from '../errors.ts';
import { buildFileStore, type DeviceRecord } from '../store/index.ts';
import type { CliIo } from './io.ts';

interface AddOptions { scope: string[]; state: string; count?: string; prefix?: string; out?: string }

export function registerDevicesCommand(program: Command, io: CliIo): void {
  const devices = program.command('devices').description('provision, list and remove devices');

  devices.command('add')
    .description('provision a device and print its new secret (hex) once; only a hash is stored')
    .argument('[id]', 'device id: letters, digits and . _ : - (up to 64), starting with a letter or digit')
    .option('--scope <scope...>', 'scopes the device may use, e.g. telemetry:write config:read', ['telemetry:write'])
    .option('--state <dir>', 'state directory shared with `gateway serve`', DEFAULTS.stateDir)
    .option('--count <n>', 'provision n devices at once, named <prefix><number> (needs --out)')
    .option('--prefix <prefix>', 'id prefix with --count', 'sim-')
    .option('--out <file>', 'with --count: write [{id, secret}] to this file (mode 0600) instead of stdout')
    .action(async (id: string | undefined, options: AddOptions) => {
      const scopes = validScopes(options.scope);
      const store = await buildFileStore(options.state);
      if (options.count === undefined) {
        if (id === undefined) throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', 'devices add needs a device id (or --count)');
        const secret = generateSecret();
        await store.addDevices([record(validId(id), secret, scopes)]);
        io.out(secret.toString('hex'));
        io.err(`device "${id}" added with scopes ${scopes.join(' ')}; the secret above is shown only once`);
        return;
      }
      const count = Number(options.count);
      if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
        throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', `--count must be a whole number from 1 to 1000000, got ${options.count}`);
      }
      if (options.out === undefined) throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', '--count needs --out <file> for the secrets');
      const width = String(count).length;
      const fleet = Array.from({ length: count }, (_, i) => ({
        id: validId(`${options.prefix ?? ''}${String(i + 1).padStart(width, '0')}`),
        secret: generateSecret(),
      }));
      await store.addDevices(fleet.map((d) => record(d.id, d.secret, scopes)));
      await writeFile(options.out, JSON.stringify(fleet.map((d) => ({ id: d.id, secret: d.secret.toString('hex') }))), { mode: 0o600 });
      io.err(`${count} devices added (${fleet[0]!.id} .. ${fleet.at(-1)!.id}); secrets written to ${options.out}`);
    });

  devices.command('list')
    .description('list provisioned devices (never their secrets)')
    .option('--state <dir>', 'state directory', DEFAULTS.stateDir)
    .option('--json', 'print JSON')
    .action(async (options: { state: string; json?: boolean }) => {
      const store = await buildFileStore(options.state);
      const list = store.listDevices().map(({ id, scopes, createdAt }) => ({ id, scopes, createdAt }));
      if (options.json === true) {
        io.out(JSON.stringify(list, null, 2));
        return;
      }
      io.out(['ID', 'SCOPES', 'CREATED'].join('\t'));
      for (const d of list) io.out([d.id, d.scopes.join(' '), d.createdAt].join('\t'));
      io.err(`${list.length} device(s)`);
    });

  devices.command('remove')
    .description('remove a device; its tokens stop verifying at once')
    .argument('<id>', 'device id')
    .option('--state <dir>', 'state directory', DEFAULTS.stateDir)
    .action(async (id: string, options: { state: string }) => {
      const store = await buildFileStore(options.state);
      if (!(await store.removeDevice(validId(id)))) {
        throw new AdminError('GW_ERR_ADMIN_UNKNOWN_DEVICE', `no device "${id}"`);
      }
      io.err(`device "${id}" removed`);
    });
}

function validId(id: string): string {
  if (!DEVICE_ID_PATTERN.test(id)) {
    throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID',
      `bad device id ${JSON.stringify(id)}: use 1-64 letters, digits and . _ : -, starting with a letter or digit`);
  }
  return id;
}

function validScopes(scopes: string[]): string[] {
  const flat = scopes.flatMap((s) => s.split(/[\s,]+/)).filter(Boolean);
  const bad = flat.filter((s) => !SCOPE_PATTERN.test(s));
  if (flat.length === 0 || bad.length > 0) {
    throw new AdminError('GW_ERR_ADMIN_BAD_SCOPE', `bad scope(s): ${bad.join(', ') || '(none given)'}`);
  }
  return [...new Set(flat)];
}

function record(id: string, secret: Buffer, scopes: string[]): DeviceRecord {
  return { id, secretHash: hashSecret(secret), scopes, createdAt: new Date().toISOString() };
}
