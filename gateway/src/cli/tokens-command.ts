import type { Command } from 'commander';
import { revokeToken } from '../admin/provision.ts';
import { DEFAULTS, readConfigFile } from '../config/index.ts';
import { addStoreOptions, withStore, type StoreOptions } from './cli-store.ts';
import type { CliIo } from './io.ts';

/** How long an access token can still verify: the config's lifetime and leeway (or the defaults). */
function tokenLifeSec(options: StoreOptions): number {
  const file = (options.config !== undefined ? readConfigFile(options.config) : {}) as { tokenTtlSec?: unknown; leewaySec?: unknown };
  const ttl = typeof file.tokenTtlSec === 'number' ? file.tokenTtlSec : DEFAULTS.tokenTtlSec;
  const leeway = typeof file.leewaySec === 'number' ? file.leewaySec : DEFAULTS.leewaySec;
  return ttl + leeway;
}

export function registerTokensCommand(program: Command, io: CliIo): void {
  const tokens = program.command('tokens').description('revoke single access tokens');
  addStoreOptions(tokens.command('revoke'))
    .description('refuse one access token by its jti, on every gateway of the store, until it would have expired')
    .argument('<jti>', 'the token\'s jti claim')
    .action((jti: string, options: StoreOptions) => withStore(options, io, async (store) => {
      const untilSec = Math.floor(Date.now() / 1000) + tokenLifeSec(options) + 1;
      await revokeToken(store, jti, untilSec);
      io.err(`token ${jti} revoked until ${new Date(untilSec * 1000).toISOString()} (running gateways apply it within a second)`);
    }));
}
