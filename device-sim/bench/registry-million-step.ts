// The runner's step for registry-million.ts (the file store with a million provisioned devices),
// which prints its figures as one JSON object rather than a BENCH_RESULT line: runs it as it is
// (its own process, its arguments passed through), bounded in time, and folds its numbers into
// the results as registry_million_<field> (nested ones as registry_million_<group>_<field>).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { emitResult, say } from './lib.ts';

const SCRIPT = fileURLToPath(new URL('./registry-million.ts', import.meta.url));
/** A million devices take about 45 s on two shared cores; past this the step has hung. */
const LIMIT_MS = 180_000;
/** Said once in the results; not figures. */
const SKIPPED = new Set(['node', 'cpu', 'cpus']);

function flatten(figures: Record<string, unknown>, prefix: string, into: Record<string, number>): Record<string, number> {
  for (const [key, value] of Object.entries(figures)) {
    if (SKIPPED.has(key)) continue;
    if (typeof value === 'number') into[`${prefix}${key}`] = value;
    else if (value !== null && typeof value === 'object' && !Array.isArray(value)) flatten(value as Record<string, unknown>, `${prefix}${key}_`, into);
  }
  return into;
}

// Its own process group, so that the guard also stops the writer processes it starts.
const child = spawn(process.execPath, [...process.execArgv, SCRIPT, ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
let out = '';
child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
// Its progress goes to stderr: shown as the step's output.
child.stderr.on('data', (chunk: Buffer) => process.stdout.write(chunk));
const guard = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), LIMIT_MS);
const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
clearTimeout(guard);
const last = out.trim().split('\n').at(-1) ?? '';
if (code !== 0 || !last.startsWith('{')) {
  say(`registry-million.ts exited with ${code ?? `a signal (over ${LIMIT_MS / 1000} s?)`}; its output: ${out.slice(0, 2000)}`);
  process.exit(1);
}
const figures = flatten(JSON.parse(last) as Record<string, unknown>, 'registry_million_', {});
say(`${Object.keys(figures).length} figures for ${figures.registry_million_devices} provisioned devices, as registry_million_*`);
emitResult(figures);
