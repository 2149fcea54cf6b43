import type { Command } from 'commander';
import { DEFAULTS, loadConfig, readConfigFile, type ConfigInput } from '../config/index.ts';
import { buildGateway } from '../gateway.ts';
import { createLogger } from '../log/index.ts';
import { logTightened, tightenStateDir } from '../store/state-dir-mode.ts';
import type { CliIo } from './io.ts';

interface ServeOptions {
  config?: string; coapHost?: string; coapPort?: string; backend?: string; backendCa?: string;
  backendTimeout?: string; state?: string; store?: string; tokenTtl?: string; leeway?: string; logLevel?: string;
  adminPort?: string; adminHost?: string; adminCert?: string; adminKey?: string; adminCa?: string; jwksPort?: string;
}

export function registerServeCommand(program: Command, io: CliIo): void {
  program.command('serve')
    .description('run the gateway: CoAP on UDP, bridged to the HTTP(S) backend')
    .option('--config <file>', 'JSON config file (flags override it); see README for its keys')
    .option('--coap-host <addr>', `address to listen on, IPv4 or IPv6 (default ${DEFAULTS.coapHost})`)
    .option('--coap-port <port>', `UDP port (default ${DEFAULTS.coapPort}; 0 picks a free one)`)
    .option('--backend <url>', 'backend base URL, http:// or https:// (required)')
    .option('--backend-ca <file>', 'PEM CA certificate that signed the backend\'s TLS certificate')
    .option('--backend-timeout <ms>', `backend answer timeout in ms (default ${DEFAULTS.backendTimeoutMs})`)
    .option('--state <dir>', `where this gateway keeps its own private keys, and the file store (default ${DEFAULTS.stateDir})`)
    .option('--store <file|redis-url>', 'where devices, spent tokens, revocations, public keys and limits live: file (in --state) '
      + `or redis://HOST:PORT[/DB], rediss://..., redis+unix:///PATH[?db=DB], shared by a fleet (default ${DEFAULTS.store})`)
    .option('--token-ttl <sec>', `access token lifetime in seconds (default ${DEFAULTS.tokenTtlSec})`)
    .option('--leeway <sec>', `clock-skew leeway in seconds (default ${DEFAULTS.leewaySec})`)
    .option('--log-level <level>', `fatal|error|warn|info|debug|trace|silent (default ${DEFAULTS.logLevel})`)
    .option('--admin-port <port>', 'serve the admin API (HTTPS, mutual TLS) on this loopback port; off by default')
    .option('--admin-host <addr>', `loopback address of the admin API (default ${DEFAULTS.adminHost})`)
    .option('--admin-cert <file>', `admin API server certificate (default ${DEFAULTS.adminCertFile})`)
    .option('--admin-key <file>', `admin API server key (default ${DEFAULTS.adminKeyFile})`)
    .option('--admin-ca <file>', `CA whose client certificates may use the admin API (default ${DEFAULTS.adminCaFile})`)
    .option('--jwks-port <port>', 'also serve GET /.well-known/jwks.json on this loopback port without client certificates')
    .action(async (options: ServeOptions) => {
      const file = options.config !== undefined ? readConfigFile(options.config) : {};
      const flags: ConfigInput = {
        coapHost: options.coapHost, coapPort: options.coapPort, backend: options.backend,
        backendCa: options.backendCa, backendTimeoutMs: options.backendTimeout, state: options.state, store: options.store,
        tokenTtlSec: options.tokenTtl, leewaySec: options.leeway, logLevel: options.logLevel,
        adminPort: options.adminPort, adminHost: options.adminHost, adminCert: options.adminCert,
        adminKey: options.adminKey, adminCa: options.adminCa, jwksPort: options.jwksPort,
      };
      const config = loadConfig(file, flags, { warn: (message) => io.err(`gateway: warning: ${message}`) });
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
