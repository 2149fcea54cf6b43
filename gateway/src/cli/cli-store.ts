import type { Command } from 'commander';
import { DEFAULTS, parseStoreSetting, readConfigFile } from '../config/index.ts';
import { openStore, type Store } from '../store/index.ts';
import type { CliIo } from './io.ts';
import { tightenStateDirForCli } from './state-dir.ts';

/** The options every `devices` and `keys` command takes to find the store and the state directory. */
export interface StoreOptions {
  state?: string;
  store?: string;
  config?: string;
}

export function addStoreOptions(command: Command): Command {
  return command
    .option('--store <store>', 'where devices and the fleet\'s public keys live: file (default) or redis://HOST:PORT/DB, redis+unix:///PATH')
    .option('--state <dir>', `state directory: the file store, and this gateway's private keys (default ${DEFAULTS.state})`)
    .option('--config <file>', 'read `store` and `state` from the gateway\'s JSON config file (flags win)');
}

/** Where a command's state directory and store are: flags, else the config file, else defaults. */
export function resolveStoreOptions(options: StoreOptions): { stateDir: string; store: ReturnType<typeof parseStoreSetting> } {
  const file = options.config !== undefined ? readConfigFile(options.config) : {};
  const fileState = (file as { state?: unknown }).state;
  const stateDir = options.state ?? (typeof fileState === 'string' ? fileState : DEFAULTS.state);
  return { stateDir, store: parseStoreSetting(options.store ?? (file as { store?: unknown }).store) };
}

/**
 * Runs `task` with the store open and closes it after, whatever happens: a Redis connection left
 * open would keep the command from exiting.
 */
export async function withStore<T>(options: StoreOptions, io: CliIo, task: (store: Store, stateDir: string) => Promise<T>): Promise<T> {
  const { stateDir, store: choice } = resolveStoreOptions(options);
  await tightenStateDirForCli(stateDir, io);
  const store = await openStore(choice, { stateDir });
  try {
    return await task(store, stateDir);
  } finally {
    await store.close();
  }
}
