import { chmod, stat } from 'node:fs/promises';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../log/index.ts';

/** The state directory holds device secret hashes, spent token ids and private signing keys: owner only. */
export const STATE_DIR_MODE = 0o700;

/** What `tightenStateDir` changed, for the warning its caller writes. */
export interface StateDirTightened {
  dir: string;
  /** Permission bits before, e.g. 0o755. */
  fromMode: number;
  toMode: number;
}

/**
 * Makes an existing state directory owner-only (0700) when group or others had any access, and
 * says what it changed; a directory that does not exist yet is left to its creator (mkdir with
 * 0700). Run at gateway start and by every CLI command that opens the directory, so a directory
 * made by hand (mode 0755 under the usual umask) never stays readable by other users.
 */
export async function tightenStateDir(dir: string): Promise<StateDirTightened | undefined> {
  let mode: number;
  try {
    const stats = await stat(dir);
    // Not a directory: left alone, for the store's own open to report.
    if (!stats.isDirectory()) return undefined;
    mode = stats.mode & 0o7777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((mode & 0o077) === 0) return undefined;
  try {
    await chmod(dir, STATE_DIR_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError([`state: cannot make the state directory ${dir} owner-only (${formatMode(STATE_DIR_MODE)}, it is ${formatMode(mode)}): ${code}`]);
  }
  return { dir, fromMode: mode, toMode: STATE_DIR_MODE };
}

/** 0o755 -> '0755', as `ls` and `chmod` spell it. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** The gateway's warning, one wording wherever it starts (`gateway serve`, buildGateway). */
export function logTightened(logger: Pick<Logger, 'warn'>, change: StateDirTightened): void {
  logger.warn({ stateDir: change.dir, fromMode: formatMode(change.fromMode), toMode: formatMode(change.toMode) },
    'the state directory was open to other users: tightened it to owner-only');
}
