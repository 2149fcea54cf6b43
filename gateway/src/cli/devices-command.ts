import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { listDevices, provisionDevices, removeDevice, validDeviceId } from '../admin/provision.ts';
import { AdminError } from '../errors.ts';
import { addStoreOptions, withStore, type StoreOptions } from './cli-store.ts';
import type { CliIo } from './io.ts';

interface AddOptions extends StoreOptions { scope: string[]; count?: string; prefix: string; out?: string }

export function registerDevicesCommand(program: Command, io: CliIo): void {
  const devices = program.command('devices').description('provision, list and remove devices');

  addStoreOptions(devices.command('add'))
    .description('provision a device and print its new secret (hex) once; only a hash is stored')
    .argument('[id]', 'device id: letters, digits and . _ : - (up to 64), starting with a letter or digit')
    .option('--scope <scope...>', 'scopes the device may use, e.g. telemetry:write config:read', ['telemetry:write'])
    .option('--count <n>', 'provision n devices at once, named <prefix><number> (needs --out)')
    .option('--prefix <prefix>', 'id prefix with --count', 'sim-')
    .option('--out <file>', 'with --count: write [{id, secret}] to this file (mode 0600)')
    .action((id: string | undefined, options: AddOptions) => withStore(options, io, async (store) => {
      if (options.count === undefined) {
        if (id === undefined) throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', 'devices add needs a device id (or --count)');
        const [device] = await provisionDevices(store, [id], options.scope);
        io.out(device!.secret);
        io.err(`device "${id}" added with scopes ${device!.scopes.join(' ')}; the secret above is shown only once`);
        return;
      }
      const count = Number(options.count);
      if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
        throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', `--count must be a whole number from 1 to 1000000, got ${options.count}`);
      }
      if (options.out === undefined) throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', '--count needs --out <file> for the secrets');
      const width = String(count).length;
      const ids = Array.from({ length: count }, (_, i) => `${options.prefix}${String(i + 1).padStart(width, '0')}`);
      const fleet = await provisionDevices(store, ids, options.scope);
      await writeFile(options.out, JSON.stringify(fleet.map(({ id: deviceId, secret }) => ({ id: deviceId, secret }))), { mode: 0o600 });
      io.err(`${count} devices added (${ids[0]} .. ${ids.at(-1)}); secrets written to ${options.out}`);
    }));

  addStoreOptions(devices.command('list'))
    .description('list provisioned devices (never their secrets)')
    .option('--json', 'print JSON')
    .action((options: StoreOptions & { json?: boolean }) => withStore(options, io, async (store) => {
      const list = await listDevices(store);
      if (options.json === true) {
        io.out(JSON.stringify(list, null, 2));
        return;
      }
      io.out(['ID', 'SCOPES', 'CREATED'].join('\t'));
      for (const d of list) io.out([d.id, d.scopes.join(' '), d.createdAt].join('\t'));
      io.err(`${list.length} device(s)`);
    }));

  addStoreOptions(devices.command('remove'))
    .description('remove a device; its tokens stop verifying at once, on every gateway of the store')
    .argument('<id>', 'device id')
    .action((id: string, options: StoreOptions) => withStore(options, io, async (store) => {
      await removeDevice(store, validDeviceId(id));
      io.err(`device "${id}" removed`);
    }));
}
