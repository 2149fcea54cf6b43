import { open } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { DEFAULT_DEVICE_SCOPES } from '../admin/admin-fields.ts';
import { oscoreFileEntry, type OscoreProvisioned } from '../admin/oscore-contexts.ts';
import {
  addDeviceKey, listDeviceKeys, listDevices, provisionDevices, removeDevice, removeDeviceKey, revokeDevice, setDeviceDisabled,
  setDeviceOscore, validDeviceId,
} from '../admin/provision.ts';
import { MAX_PUBLIC_KEY_CHARS, generateDeviceKeyPair, parseDevicePublicKey } from '../auth/index.ts';
import { AdminError } from '../errors.ts';
import type { DeviceKey } from '../store/index.ts';
import { addStoreOptions, withStore, type StoreOptions } from './cli-store.ts';
import type { CliIo } from './io.ts';

interface AddOptions extends StoreOptions {
  scope: string[]; count?: string; prefix: string; out?: string;
  publicKey?: string; expires?: string; withSecret?: boolean; keyType?: string; tokenFormat?: string;
  oscore?: boolean; security?: 'oscore' | 'any';
}
interface OscoreCommandOptions extends StoreOptions { rotate?: boolean; security?: 'oscore' | 'any' }
interface KeyOptions extends StoreOptions { publicKey: string; expires?: string }

const KEY_TYPES = ['ES256', 'EdDSA'] as const;
const APPLIED = 'running gateways apply it within a second';

const securityOption = (what: string) => new Option('--security <mode>', what).choices(['oscore', 'any']);

/** An OSCORE context as it is printed, once: JSON on stdout, for firmware and as aiocoap's settings.json. */
const printContext = (io: CliIo, made: OscoreProvisioned, secret?: string): void => {
  io.out(JSON.stringify({ ...made, ...(secret !== undefined ? { secret } : {}) }, null, 2));
};

/**
 * Writes the devices file owner-only: a file that exists already is made 0600 too (writeFile's mode
 * applies only to a file it creates), since it holds the devices' secrets and OSCORE master secrets.
 */
async function writeSecretsFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'w', 0o600);
  try {
    if ((await handle.stat()).isFile()) await handle.chmod(0o600);
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

/** A public key file, read with a bound (a key is a few hundred bytes; --public-key /dev/zero is not one). */
async function readPublicKey(file: string, expiresAt: string | undefined): Promise<DeviceKey> {
  const buffer = Buffer.alloc(MAX_PUBLIC_KEY_CHARS + 1);
  let length = 0;
  try {
    const handle = await open(file, 'r');
    try {
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new AdminError('GW_ERR_ADMIN_BAD_KEY', `cannot read the public key file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (length > MAX_PUBLIC_KEY_CHARS) throw new AdminError('GW_ERR_ADMIN_BAD_KEY', `${file} is over ${MAX_PUBLIC_KEY_CHARS} bytes: not a public key`);
  return parseDevicePublicKey(buffer.subarray(0, length).toString('utf8'), expiresAt === undefined ? {} : { expiresAt });
}

export function registerDevicesCommand(program: Command, io: CliIo): void {
  const devices = program.command('devices').description('provision, list, revoke and remove devices, and their public keys');

  addStoreOptions(devices.command('add'))
    .description('provision a device: with a new secret (printed once as hex; only a hash is stored), with its public key, or with an OSCORE context')
    .argument('[id]', 'device id: letters, digits and . _ : - (up to 64), starting with a letter or digit')
    .option('--scope <scope...>', 'scopes the device may use, e.g. telemetry:write config:read', [...DEFAULT_DEVICE_SCOPES])
    .option('--public-key <file>', 'the device\'s public key (PEM or JWK; ES256 or EdDSA): it logs in with signed assertions, no secret is made')
    .option('--expires <iso>', 'with --public-key: assertions signed by the key are refused from then on')
    .option('--with-secret', 'with --public-key or --oscore: make a secret too (printed once)')
    .option('--count <n>', 'provision n devices at once, named <prefix><number> (needs --out)')
    .option('--prefix <prefix>', 'id prefix with --count', 'sim-')
    .option('--key-type <alg>', 'with --count: make each device a key pair too (ES256 or EdDSA); the private keys go into --out')
    .option('--out <file>', 'with --count: write [{id, secret, privateJwk?, oscore?}] to this file (mode 0600)')
    .option('--token-format <format>', 'access tokens of a login that asks for none: jwt (default) or cwt (compact, for the radio)')
    .option('--oscore', 'make the device an OSCORE security context (printed once as JSON, with aiocoap\'s settings.json); '
      + 'with no --public-key and no --with-secret it is the device\'s only credential')
    .addOption(securityOption('with --oscore: "oscore" refuses the device without OSCORE (login, refresh, tokens); "any" (default) lets it in either way'))
    .action((id: string | undefined, options: AddOptions) => withStore(options, io, async (store) => {
      const oscore = options.oscore === true;
      if (options.security !== undefined && !oscore) {
        throw new AdminError('GW_ERR_ADMIN_BAD_BODY', '--security goes with --oscore (for a device provisioned already: gateway devices oscore ID --security ...)');
      }
      if (options.count === undefined) {
        if (id === undefined) throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', 'devices add needs a device id (or --count)');
        if (options.keyType !== undefined) throw new AdminError('GW_ERR_ADMIN_BAD_KEY', '--key-type is for --count (simulated devices); give a real device\'s --public-key');
        if (options.publicKey === undefined && options.expires !== undefined) throw new AdminError('GW_ERR_ADMIN_BAD_KEY', '--expires goes with --public-key');
        if (options.publicKey === undefined && !oscore && options.withSecret === true) {
          throw new AdminError('GW_ERR_ADMIN_BAD_KEY', '--with-secret goes with --public-key or --oscore');
        }
        const key = options.publicKey === undefined ? undefined : await readPublicKey(options.publicKey, options.expires);
        const [device] = await provisionDevices(store, [validDeviceId(id)], options.scope, {
          tokenFormat: options.tokenFormat,
          ...(key !== undefined ? { keys: () => [key] } : {}),
          ...(key !== undefined || oscore ? { secret: options.withSecret === true } : {}),
          ...(oscore ? { oscore, security: options.security } : {}),
        });
        const { secret, oscore: credentials, aiocoap } = device!;
        if (credentials !== undefined && aiocoap !== undefined) printContext(io, { device: device!.id, oscore: credentials, aiocoap }, secret);
        else if (secret !== undefined) io.out(secret);
        const what = [
          credentials !== undefined ? `its OSCORE context (Sender ID ${credentials.senderId})${secret !== undefined ? ' and its secret above are' : ' above is'} shown only once`
            : secret !== undefined ? 'the secret above is shown only once' : undefined,
          key !== undefined ? `key ${key.kid} (${key.alg})` : undefined,
          device!.security === 'oscore' ? 'it is refused without OSCORE' : undefined,
        ].filter(Boolean).join('; ');
        io.err(`device "${id}" added with scopes ${device!.scopes.join(' ')}; ${what}`);
        return;
      }
      const count = Number(options.count);
      if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
        throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', `--count must be a whole number from 1 to 1000000, got ${options.count}`);
      }
      if (options.out === undefined) throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID', '--count needs --out <file> for the secrets');
      if (options.publicKey !== undefined) throw new AdminError('GW_ERR_ADMIN_BAD_KEY', '--public-key is for one device; --count makes key pairs with --key-type');
      if (options.expires !== undefined) throw new AdminError('GW_ERR_ADMIN_BAD_KEY', '--expires goes with --public-key (one device)');
      const keyType = options.keyType;
      if (keyType !== undefined && !(KEY_TYPES as readonly string[]).includes(keyType)) {
        throw new AdminError('GW_ERR_ADMIN_BAD_KEY', `--key-type must be ${KEY_TYPES.join(' or ')}, got ${JSON.stringify(keyType)}`);
      }
      const width = String(count).length;
      const ids = Array.from({ length: count }, (_, i) => `${options.prefix}${String(i + 1).padStart(width, '0')}`);
      const pairs = new Map<string, Awaited<ReturnType<typeof generateDeviceKeyPair>>>();
      if (keyType !== undefined) for (const deviceId of ids) pairs.set(deviceId, await generateDeviceKeyPair(keyType as DeviceKey['alg']));
      // The secret too, so that one devices file serves every simulator scenario.
      const fleet = await provisionDevices(store, ids, options.scope, {
        tokenFormat: options.tokenFormat,
        ...(keyType !== undefined ? { keys: (deviceId: string) => [pairs.get(deviceId)!.key], secret: true } : {}),
        ...(oscore ? { oscore, security: options.security, secret: true } : {}),
      });
      const entries = fleet.map(({ id: deviceId, secret, oscore: credentials }) => ({
        id: deviceId, secret, ...(pairs.has(deviceId) ? { privateJwk: pairs.get(deviceId)!.privateJwk } : {}),
        ...(credentials !== undefined ? { oscore: oscoreFileEntry(credentials) } : {}),
      }));
      await writeSecretsFile(options.out, JSON.stringify(entries));
      io.err(`${count} devices added (${ids[0]} .. ${ids.at(-1)}); ${oscore ? 'secrets and OSCORE contexts' : 'secrets'} written to ${options.out}`);
      if (keyType !== undefined) {
        io.err(`warning: ${options.out} now holds the devices' PRIVATE keys (mode 0600): for simulated devices only; real devices make their own keys`);
      }
    }));

  addStoreOptions(devices.command('list'))
    .description('list provisioned devices: scopes, whether they have a secret, their keys, their OSCORE Sender ID (never a secret or a key)')
    .option('--json', 'print JSON')
    .action((options: StoreOptions & { json?: boolean }) => withStore(options, io, async (store) => {
      const list = await listDevices(store);
      if (options.json === true) {
        io.out(JSON.stringify(list, null, 2));
        return;
      }
      // New columns go last: scripts that cut the first six keep working.
      io.out(['ID', 'SCOPES', 'SECRET', 'KEYS', 'STATE', 'CREATED', 'OSCORE', 'SECURITY'].join('\t'));
      for (const d of list) {
        io.out([d.id, d.scopes.join(' '), d.secret ? 'yes' : 'no', d.keys.map((k) => k.kid).join(',') || '-',
          d.disabled === true ? 'disabled' : 'enabled', d.createdAt, d.oscore?.senderId ?? '-', d.security ?? 'any'].join('\t'));
      }
      io.err(`${list.length} device(s)`);
    }));

  addStoreOptions(devices.command('remove'))
    .description('remove a device; its tokens stop verifying at once, on every gateway of the store')
    .argument('<id>', 'device id')
    .action((id: string, options: StoreOptions) => withStore(options, io, async (store) => {
      await removeDevice(store, validDeviceId(id));
      io.err(`device "${id}" removed`);
    }));

  addStoreOptions(devices.command('revoke'))
    .description('refuse every token issued to a device before now (access and refresh), and drop its OSCORE context; it may log in again')
    .argument('<id>', 'device id')
    .action((id: string, options: StoreOptions) => withStore(options, io, async (store) => {
      const { droppedOscore } = await revokeDevice(store, id);
      io.err(`device "${id}" revoked: every token issued to it before now is refused (${APPLIED}); it may log in again`);
      if (droppedOscore !== undefined) {
        io.err(`its OSCORE context (Sender ID ${droppedOscore}) is dropped: its requests under it are refused; gateway devices oscore ${id} makes a new one`);
      }
    }));

  addStoreOptions(devices.command('oscore'))
    .description('make a device an OSCORE security context (printed once as JSON, with aiocoap\'s settings.json), or --rotate the one it has')
    .argument('<id>', 'device id')
    .option('--rotate', 'replace the device\'s context: a new master secret and salt, the same Sender ID; the old one stops working at once')
    .addOption(securityOption('"oscore": refuse the device without OSCORE (login, refresh, tokens); "any": either way. Alone, on a device with a context: changes only that'))
    .action((id: string, options: OscoreCommandOptions) => withStore(options, io, async (store) => {
      const { made, rotated, security } = await setDeviceOscore(store, id, { rotate: options.rotate === true, security: options.security });
      const required = security === 'oscore' ? 'it is refused without OSCORE' : 'it may still use the gateway without OSCORE';
      if (made === undefined) {
        io.err(`device "${id}": ${required} (${APPLIED})`);
        return;
      }
      printContext(io, made);
      io.err(rotated
        ? `device "${id}": OSCORE context rotated (Sender ID ${made.oscore.senderId}), shown above only once; the old one is refused (${APPLIED}): the device needs the new one; ${required}`
        : `device "${id}": OSCORE context made (Sender ID ${made.oscore.senderId}), shown above only once; ${required}`);
    }));

  for (const [name, disabled] of [['disable', true], ['enable', false]] as const) {
    addStoreOptions(devices.command(name))
      .description(disabled ? 'stop a device: no login, no refresh, its tokens refused, until enabled' : 'let a disabled device in again')
      .argument('<id>', 'device id')
      .action((id: string, options: StoreOptions) => withStore(options, io, async (store) => {
        await setDeviceDisabled(store, id, disabled);
        io.err(disabled ? `device "${id}" disabled: it cannot log in or refresh, its tokens are refused (${APPLIED})`
          : `device "${id}" enabled (${APPLIED})`);
      }));
  }

  const keys = devices.command('keys').description('a device\'s public keys (at most 3), for assertion login');
  addStoreOptions(keys.command('add'))
    .description('add a public key to a device; prints its kid')
    .argument('<id>', 'device id')
    .requiredOption('--public-key <file>', 'the public key (PEM or JWK; ES256 or EdDSA)')
    .option('--expires <iso>', 'assertions signed by the key are refused from then on')
    .action((id: string, options: KeyOptions) => withStore(options, io, async (store) => {
      const key = await addDeviceKey(store, id, await readPublicKey(options.publicKey, options.expires));
      io.out(key.kid);
      io.err(`key ${key.kid} (${key.alg}) added to device "${id}"${key.expiresAt ? `, until ${key.expiresAt}` : ''}`);
    }));
  addStoreOptions(keys.command('list'))
    .description('list a device\'s public keys: kid, algorithm, added, expiry')
    .argument('<id>', 'device id')
    .option('--json', 'print JSON')
    .action((id: string, options: StoreOptions & { json?: boolean }) => withStore(options, io, async (store) => {
      const list = await listDeviceKeys(store, id);
      if (options.json === true) {
        io.out(JSON.stringify(list, null, 2));
        return;
      }
      io.out(['KID', 'ALG', 'ADDED', 'EXPIRES'].join('\t'));
      for (const k of list) io.out([k.kid, k.alg, k.addedAt, k.expiresAt ?? '-'].join('\t'));
      io.err(`${list.length} key(s)`);
    }));
  addStoreOptions(keys.command('remove'))
    .description('remove a public key from a device (not its last credential)')
    .argument('<id>', 'device id')
    .argument('<kid>', 'the key\'s kid (one that starts with \'-\' goes after \'--\')')
    .action((id: string, kid: string, options: StoreOptions) => withStore(options, io, async (store) => {
      await removeDeviceKey(store, id, kid);
      io.err(`key ${kid} removed from device "${id}"; tokens it already got stay good (revoke the device to stop them)`);
    }));
}
