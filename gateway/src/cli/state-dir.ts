import { formatMode, tightenStateDir, type StateDirTightened } from '../store/state-dir-mode.ts';
import type { CliIo } from './io.ts';

/** The one wording of the warning, for the CLI's stderr and the gateway's log. */
export function describeTightened(change: StateDirTightened): string {
  return `tightened the state directory ${change.dir} from ${formatMode(change.fromMode)} to ${formatMode(change.toMode)}`;
}

/** Every command that opens the state directory first makes it owner-only, and says so on stderr. */
export async function tightenStateDirForCli(stateDir: string, io: CliIo): Promise<void> {
  const change = await tightenStateDir(stateDir);
  if (change !== undefined) io.err(`gateway: ${describeTightened(change)}`);
}
