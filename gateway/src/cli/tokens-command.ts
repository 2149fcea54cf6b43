import type { Command } from 'commander';
import { revokeToken } from '../admin/provision.ts';
import { DEFAULTS, DEPRECATED_NAMES, readConfigFile } from '../config/index.ts';
import { ConfigError } from '../errors.ts';
import { addStoreOptions, withStore, type StoreOptions } from './cli-store.ts';
import type { CliIo } from './io.ts';

/**
 * How long an access token can still verify: the config's lifetime and leeway (or the defaults).
 * Read as the gateway reads them, old names included: a revocation kept shorter than the token
 * lives would let the token back in.
 */
function tokenLifeSec(options: StoreOptions): number {
  const file = (options.config !== undefined ? readConfigFile(options.config) : {}) as Record<string, unknown>;
  const seconds = (name: 'tokenTtlSec' | 'leewaySec'): number => {
    const spellings = [name, ...Object.entries(DEPRECATED_NAMES).filter(([, current]) => current === name).map(([old]) => old)];
    const given = spellings.find((spelling) => file[spelling] !== undefined);
    if (given === undefined) return DEFAULTS[name];
    const raw = file[given];
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new ConfigError([`--config ${options.config}: ${given}: expected whole seconds, got ${JSON.stringify(raw)?.slice(0, 64)}`]);
    }
    return value;
  };
  return seconds('tokenTtlSec') + seconds('leewaySec');
}

export function registerTokensCommand(program: Command, io: CliIo): void {
  const tokens = program.command('tokens').description('revoke single access tokens');
  addStoreOptions(tokens.command('revoke'))
    .description('refuse one access token by its jti, on every gateway of the store, until it would have expired '
      + '(its lifetime and leeway: give the gateway\'s --config)')
    .argument('<jti>', 'the token\'s jti claim (one that starts with \'-\' goes after \'--\')')
    .action((jti: string, options: StoreOptions) => {
      const lifeSec = tokenLifeSec(options);
      return withStore(options, io, async (store) => {
        const untilSec = Math.floor(Date.now() / 1000) + lifeSec + 1;
        await revokeToken(store, jti, untilSec);
        io.err(`token ${jti} revoked until ${new Date(untilSec * 1000).toISOString()} (running gateways apply it within a second)`);
      });
    });
}
