import type { Command } from 'commander';
import { loadConfig, readConfigFile } from '../config/index.ts';
import { buildGateway } from '../gateway.ts';
import { createLogger } from '../log/index.ts';
import { logTightened, tightenStateDir } from '../store/state-dir-mode.ts';
import type { CliIo } from './io.ts';
import { serveOptions, settingsFromFlags } from './serve-flags.ts';

export function registerServeCommand(program: Command, io: CliIo): void {
  const flags = serveOptions();
  const serve = program.command('serve')
    .description('run the gateway: CoAP on UDP, bridged to the HTTP(S) backend')
    .option('--config <file>', 'JSON config file (flags override it); see gateway/docs/operator-guide.md for its keys');
  for (const { option } of flags) serve.addOption(option);
  serve.action(async (options: { config?: string } & Record<string, unknown>) => {
    const file = options.config !== undefined ? readConfigFile(options.config) : {};
    const config = loadConfig(file, settingsFromFlags(flags, options), { warn: (message) => io.err(`gateway: warning: ${message}`) });
    const logger = createLogger(config.logLevel);
    // Owner-only before the gateway opens it, with the warning in the gateway's own log.
    const tightened = await tightenStateDir(config.stateDir);
    if (tightened !== undefined) logTightened(logger, tightened);
    // Listening for the stop signals before saying it listens: a supervisor (or a test) that
    // stops the gateway as soon as it is up must get a clean stop, not the default kill.
    const stopped = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    const gateway = await buildGateway(config, { logger });
    await gateway.start();
    const { address, port } = gateway.address();
    const admin = gateway.adminAddress();
    if (admin !== undefined) io.err(`gateway: admin API on ${config.admin.host}:${admin.port}`);
    io.err(`gateway: CoAP on ${address}:${port}, Ctrl-C to stop`);
    await stopped;
    io.err('gateway: stopping (finishing requests in flight)');
    await gateway.close();
  });
}
