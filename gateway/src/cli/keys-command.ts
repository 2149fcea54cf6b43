import { join } from 'node:path';
import type { Command } from 'commander';
import { Keystore } from '../auth/index.ts';
import { DEFAULTS, SIGNING_ALGS, type SigningAlg } from '../config/index.ts';
import { AdminError } from '../errors.ts';
import type { CliIo } from './io.ts';
import { tightenStateDirForCli } from './state-dir.ts';

const stateOption = ['--state <dir>', 'state directory shared with `gateway serve`', DEFAULTS.stateDir] as const;

async function openKeystore(state: string, io: CliIo): Promise<Keystore> {
  await tightenStateDirForCli(state, io);
  return Keystore.open({
    dir: join(state, 'keys'),
    signingAlg: DEFAULTS.signingAlg,
    maxTokenLifetimeSec: undefined,
    nowMs: Date.now,
  }, false);
}

export function registerKeysCommand(program: Command, io: CliIo): void {
  const keys = program.command('keys').description('list, rotate and retire the gateway\'s signing keys');

  keys.command('list')
    .description('show every key: kid, algorithm, state, created, accepted until (never private parts)')
    .option(...stateOption)
    .action(async (options: { state: string }) => {
      const keystore = await openKeystore(options.state, io);
      io.out(['KID', 'ALG', 'STATE', 'CREATED', 'ACCEPTED UNTIL'].join('\t'));
      for (const k of keystore.list()) {
        const until = k.state === 'active' ? '(signing)' : k.state === 'retired' ? `retired ${k.retiredAt ?? ''}` : k.verifyUntil ?? '';
        io.out([k.kid, k.alg, k.state, k.createdAt, until].join('\t'));
      }
    });

  keys.command('rotate')
    .description('make a new active key; the previous one keeps verifying its tokens until they expire')
    .option('--alg <alg>', `ES256 or EdDSA (default ${DEFAULTS.signingAlg})`, DEFAULTS.signingAlg)
    .option(...stateOption)
    .action(async (options: { alg: string; state: string }) => {
      if (!SIGNING_ALGS.includes(options.alg as SigningAlg)) {
        throw new AdminError('GW_ERR_ADMIN_BAD_ALG', `unsupported --alg ${JSON.stringify(options.alg)}: use ${SIGNING_ALGS.join(' or ')}`);
      }
      const keystore = await openKeystore(options.state, io);
      const key = await keystore.rotate(options.alg as SigningAlg);
      io.out(key.kid);
      io.err(`new active key ${key.kid} (${key.alg}); running gateways pick it up within a second`);
    });

  keys.command('retire')
    .description('retire a verifying key at once (e.g. leaked): its tokens are refused from then on')
    .argument('<kid>', 'key id')
    .option(...stateOption)
    .action(async (kid: string, options: { state: string }) => {
      const keystore = await openKeystore(options.state, io);
      await keystore.retire(kid);
      io.err(`key ${kid} retired`);
    });

  keys.command('jwks')
    .description('print the public keys as a JWKS (for backends that verify forwarded tokens)')
    .option(...stateOption)
    .action(async (options: { state: string }) => {
      const keystore = await openKeystore(options.state, io);
      io.out(JSON.stringify(keystore.jwks(), null, 2));
    });
}
