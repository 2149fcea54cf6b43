import type { Command } from 'commander';
import { BENCH_STEP_NAMES, DEFAULT_RESULTS_FILE, runBench } from './bench-runner.ts';
import { SimError } from './errors.ts';

/** `device-sim bench` (`make bench`): every benchmark scenario, each in a fresh process. */
export function registerBenchCommand(program: Command, log: (line: string) => void): void {
  program.command('bench')
    .description('measure the gateway against a node-coap echo server (ceiling) and a raw node:dgram echo (floor), logins, token verification, CBOR and memory; write results.json')
    .option('--only <steps>', `comma-separated steps: ${BENCH_STEP_NAMES.join(', ')}`)
    .option('--profile <when>', 'run the gateway under --cpu-prof: auto (when a throughput, CPU or latency target is missed) | always | never', 'auto')
    .option('--quick', 'short runs and a small fleet: checks the benchmark works, figures not to quote')
    .option('--out <file>', 'where to write the results', DEFAULT_RESULTS_FILE)
    .action(async (options: { only?: string; profile: string; quick?: boolean; out: string }) => {
      const only = options.only?.split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = only?.filter((name) => !BENCH_STEP_NAMES.includes(name)) ?? [];
      if (unknown.length > 0) throw new SimError('SIM_ERR_BAD_OPTION', `--only: unknown step(s) ${unknown.join(', ')}; steps: ${BENCH_STEP_NAMES.join(', ')}`);
      if (!['auto', 'always', 'never'].includes(options.profile)) {
        throw new SimError('SIM_ERR_BAD_OPTION', `--profile: expected auto, always or never, got ${options.profile}`);
      }
      const failed = await runBench({
        only, profile: options.profile as 'auto', quick: options.quick === true, out: options.out, log,
      });
      process.exitCode = failed === 0 ? 0 : 1;
    });
}
