import { Command, CommanderError } from 'commander';
import { DEFAULT_CERTS_DIR, runDemo } from './demo.ts';

const log = (line: string) => process.stdout.write(`${line}\n`);

const program = new Command('device-sim')
  .description('simulated CoAP devices: the demo, fleet load and benchmarks')
  .showHelpAfterError()
  .exitOverride();

program.command('demo')
  .description('start a backend, a gateway and a few devices; show logins, readings, refused tokens; exit 0 when all went as expected')
  .option('--devices <n>', 'number of devices', '3')
  .option('--readings <n>', 'readings per device', '5')
  .option('--certs <dir>', 'dev PKI made by `make certs`', DEFAULT_CERTS_DIR)
  .action(async (options: { devices: string; readings: string; certs: string }) => {
    const failures = await runDemo({
      devices: Math.max(2, Number(options.devices)), readings: Math.max(1, Number(options.readings)),
      certsDir: options.certs, log,
    });
    process.exitCode = failures === 0 ? 0 : 1;
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else {
    process.stderr.write(`device-sim: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
