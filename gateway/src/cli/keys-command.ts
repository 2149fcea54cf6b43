import { join } from 'node:path';
import type { Command } from 'commander';
import { createFleetKeys, type FleetKeys } from '../admin/fleet-keys.ts';
import { Keystore } from '../auth/index.ts';
import { DEFAULTS, SIGNING_ALGS, type SigningAlg } from '../config/index.ts';
import { AdminError } from '../errors.ts';
import { addStoreOptions, withStore, type StoreOptions } from './cli-store.ts';
import type { CliIo } from './io.ts';

/**
 * Runs `task` with this gateway's keystore (its state directory: its private keys) and the
 * fleet's keys (the store: every gateway's public keys), both brought up to date first.
 */
function withKeys<T>(options: StoreOptions, io: CliIo, task: (keys: FleetKeys, keystore: Keystore) => Promise<T>) {
  return withStore(options, io, async (store, stateDir) => {
    const keystore = await Keystore.open({
      dir: join(stateDir, 'keys'), signingAlg: DEFAULTS.signingAlg, maxTokenLifetimeSec: undefined, nowMs: Date.now,
    }, false);
    const keys = createFleetKeys(keystore, store);
    await keys.sync();
    return task(keys, keystore);
  });
}

export function registerKeysCommand(program: Command, io: CliIo): void {
  const keys = program.command('keys').description('list, rotate and retire signing keys: this gateway\'s, and the fleet\'s in the store');

  addStoreOptions(keys.command('list'))
    .description('show every key of the fleet: kid, algorithm, state, created, accepted until, holder (never private parts)')
    .action((options: StoreOptions) => withKeys(options, io, async (fleetKeys, keystore) => {
      io.out(['KID', 'ALG', 'STATE', 'CREATED', 'ACCEPTED UNTIL', 'GATEWAY'].join('\t'));
      for (const k of await fleetKeys.list()) {
        const until = k.state === 'active' ? '(signing)' : k.state === 'retired' ? `retired ${k.retiredAt ?? ''}` : k.verifyUntil ?? '';
        const holder = k.gateway === keystore.gatewayId ? `${k.gateway} (this one)` : k.gateway;
        io.out([k.kid, k.alg, k.state, k.createdAt, until, holder].join('\t'));
      }
    }));

  addStoreOptions(keys.command('rotate'))
    .description('make a new active key for the gateway of --state; the previous one keeps verifying its tokens until they expire')
    .option('--alg <alg>', `ES256 or EdDSA (default ${DEFAULTS.signingAlg})`, DEFAULTS.signingAlg)
    .action(async (options: StoreOptions & { alg: string }) => {
      if (!SIGNING_ALGS.includes(options.alg as SigningAlg)) {
        throw new AdminError('GW_ERR_ADMIN_BAD_ALG', `unsupported --alg ${JSON.stringify(options.alg)}: use ${SIGNING_ALGS.join(' or ')}`);
      }
      await withKeys(options, io, async (fleetKeys) => {
        const key = await fleetKeys.rotate(options.alg as SigningAlg);
        io.out(key.kid);
        io.err(`new active key ${key.kid} (${key.alg}), published to the store; running gateways pick it up within a second`);
      });
    });

  addStoreOptions(keys.command('retire'))
    .description('retire a verifying key at once, whichever gateway holds it (e.g. leaked): its tokens are refused from then on')
    .argument('<kid>', 'key id')
    .action((kid: string, options: StoreOptions) => withKeys(options, io, async (fleetKeys) => {
      await fleetKeys.retire(kid);
      io.err(`key ${kid} retired`);
    }));

  addStoreOptions(keys.command('jwks'))
    .description('print the fleet\'s public keys as a JWKS (for backends that verify forwarded tokens)')
    .action((options: StoreOptions) => withKeys(options, io, async (_keys, keystore) => {
      io.out(JSON.stringify(keystore.jwks(), null, 2));
    }));
}
