import { Command, CommanderError } from 'commander';
import { TokenFormat, type TokenFormatName } from '../../gateway/src/wire/index.ts';
import { registerBenchCommand } from './bench-command.ts';
import { DEFAULT_CERTS_DIR, runDemo } from './demo.ts';
import { buildEchoServer } from './echo-server.ts';
import { SimError } from './errors.ts';
import { buildRawEchoServer } from './raw-echo-server.ts';
import { registerRunCommand } from './run-command.ts';
import { buildSinkBackend, type ReceivedRequest } from './sink-backend.ts';

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
  .option('--token-format <format>', 'jwt | cwt: the access token format the devices ask for (key 6); unset: none asked, the devices\' default')
  .action(async (options: { devices: string; readings: string; certs: string; tokenFormat?: string }) => {
    if (options.tokenFormat !== undefined && !Object.hasOwn(TokenFormat, options.tokenFormat)) {
      throw new SimError('SIM_ERR_BAD_OPTION', `--token-format: expected jwt or cwt, got ${options.tokenFormat}`);
    }
    const failures = await runDemo({
      devices: Math.max(2, Number(options.devices)), readings: Math.max(1, Number(options.readings)),
      certsDir: options.certs, tokenFormat: options.tokenFormat as TokenFormatName | undefined, log,
    });
    process.exitCode = failures === 0 ? 0 : 1;
  });

registerRunCommand(program, log);
registerBenchCommand(program, log);

program.command('backend')
  .description('run a small HTTP backend for `gateway serve --backend` that answers readings with 201 and keeps nothing')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'TCP port (0 picks a free one)', '0')
  .option('--print', 'print one JSON line per request: method, path, the X-Device-Id header and the body (parsed when JSON)')
  .action(async (options: { host: string; port: string; print?: boolean }) => {
    const onRequest = options.print === true ? (request: ReceivedRequest) => log(JSON.stringify(request)) : undefined;
    const backend = await buildSinkBackend(options.host, Number(options.port), { onRequest });
    log(JSON.stringify({ backend: backend.url }));
    await untilSignal();
    await backend.close();
    log(JSON.stringify({ answered: backend.count() }));
  });

program.command('echo-server')
  .description('run a plain node-coap server that echoes every payload (the benchmark ceiling)')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'UDP port (0 picks a free one)', '0')
  .option('--raw', 'a bare node:dgram socket instead, flipping each request into its answer (the benchmark floor)')
  .action(async (options: { host: string; port: string; raw?: boolean }) => {
    const build = options.raw === true ? buildRawEchoServer : buildEchoServer;
    const server = await build(options.host, Number(options.port));
    log(JSON.stringify({ coap: server.port }));
    await untilSignal();
    await server.close();
  });

for (const command of program.commands) command.exitOverride();

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else if (err instanceof SimError) {
    process.stderr.write(`device-sim: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`device-sim: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
