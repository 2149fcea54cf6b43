import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { TokenFormat, type TokenFormatName } from '../../gateway/src/wire/index.ts';
import { readDevicesFile } from './devices-file.ts';
import { runFleet } from './fleet.ts';
import { FLEET_DEFAULTS } from './fleet-options.ts';
import { createProgressView, type ProgressMode } from './progress.ts';
import { FLEET_REPORT_SCHEMA_ID, formatFleetReport } from './report.ts';
import { openSequenceFile } from './oscore-sequence-file.ts';
import { SCENARIOS, SCENARIO_NAMES, SECURITY_MODES, type ScenarioName, type SecurityMode } from './scenarios.ts';
import { SimError } from './errors.ts';
import { gatewayCli } from './spawn-gateway.ts';

interface RunFlags {
  devicesFile: string; devices?: string; host: string; port: string; scenario: string;
  rate?: string; concurrency?: string; duration?: string; count?: string; timeoutMs: string; warmup?: boolean;
  loginConcurrency: string; refreshWith: string; skewSec: string; clockCorrection: boolean;
  leewaySec: string; maxHoldSec: string; telemetryName: string; audience: string; noncesInFlight: string;
  state?: string; store?: string; revocationWaitMs: string; json?: string; progress: string; tokenFormat?: string;
  security: string; withToken?: boolean; coapTokenBytes?: string; sequenceFile?: string;
}

/** Where `run --security oscore` keeps the devices' OSCORE sequence numbers unless --sequence-file says: beside the devices file. */
export const sequenceFileFor = (devicesFile: string) => `${devicesFile}.oscore-seq.json`;

const num = (value: string | undefined): number | undefined => (value === undefined ? undefined : Number(value));

/** `device-sim run`: the fleet simulator and load generator. Exit 0 when every answer was the expected one. */
export function registerRunCommand(program: Command, log: (line: string) => void): void {
  const scenarios = SCENARIO_NAMES.map((name) => `  ${name.padEnd(12)} ${SCENARIOS[name].summary}`).join('\n');
  program.command('run')
    .description('simulate a fleet of devices (one UDP socket each) against a gateway on this machine')
    .requiredOption('--devices-file <file>', 'provisioning file from `gateway devices add --count N --prefix sim- --out FILE`')
    .option('--devices <n>', 'use only the first n devices of the file')
    .option('--host <addr>', 'the gateway (loopback only)', '127.0.0.1')
    .option('--port <port>', 'the gateway\'s CoAP port', '5683')
    .option('--scenario <name>', `${SCENARIO_NAMES.join(' | ')}`, 'normal')
    .option('--rate <n>', 'open loop: total requests per second')
    .option('--concurrency <n>', `closed loop: requests in flight, at most one per device (default ${FLEET_DEFAULTS.concurrency})`)
    .option('--duration <sec>', `send for this long (default ${FLEET_DEFAULTS.durationSec} s unless --count)`)
    .option('--count <n>', 'send this many requests')
    .option('--warmup', 'first let every device send one request that is not counted (token cache filled, code warm)')
    .option('--timeout-ms <ms>', 'give up on a request after this long, retransmissions included', String(FLEET_DEFAULTS.timeoutMs))
    .option('--login-concurrency <n>', 'logins in flight while the fleet logs in', String(FLEET_DEFAULTS.loginConcurrency))
    .option('--refresh-with <how>', 'renew tokens by logging in again (login) or with /auth/refresh (refresh-token)', 'login')
    .option('--token-format <format>', `${Object.keys(TokenFormat).join(' | ')}: the access token format every login and refresh asks for `
      + '(key 6); unset: none asked, the gateway issues each device\'s default')
    .option('--skew-sec <sec>', 'skew scenario: device clocks off by this much, half ahead, half behind', String(FLEET_DEFAULTS.skewSec))
    .option('--no-clock-correction', 'skew scenario: devices trust their own clock instead of the gateway\'s server time')
    .option('--leeway-sec <sec>', 'expired scenario: the gateway\'s --leeway, waited out after the token lifetime', String(FLEET_DEFAULTS.leewaySec))
    .option('--max-hold-sec <sec>', 'expired scenario: longest wait for tokens to expire', String(FLEET_DEFAULTS.maxHoldSec))
    .option('--telemetry-name <name>', 'readings go to POST /telemetry/<name>', FLEET_DEFAULTS.telemetryName)
    .option('--audience <aud>', 'assertion and clockless scenarios: the gateway\'s tokens.audience', FLEET_DEFAULTS.audience)
    .option('--nonces-in-flight <n>', 'clockless scenario: nonce logins at once (the fleet shares one source address; '
      + 'the gateway keeps noncesPerAddress, default 4, per address)', String(FLEET_DEFAULTS.noncesInFlight))
    .option('--state <dir>', 'revoked scenario: the gateway\'s state directory, for `gateway devices revoke ID --state DIR`')
    .option('--store <store>', 'revoked scenario: the gateway\'s --store (file or a redis:// URL), passed to `gateway devices revoke`')
    .option('--revocation-wait-ms <ms>', 'revoked scenario: how long the gateway may take to refuse a revoked device\'s token',
      String(FLEET_DEFAULTS.revocationWaitMs))
    .option('--security <mode>', `${SECURITY_MODES.join(' | ')}: oscore protects every request (logins, tokens, readings) end to end with `
      + 'the device\'s OSCORE context (RFC 8613; `gateway devices add --oscore`); normal, wrong-scope, tampered and replay then send no token, '
      + 'the context authenticates the device', 'none')
    .option('--with-token', 'with --security oscore: normal, wrong-scope, tampered and replay log in too and carry the token inside the protection')
    .option('--coap-token-bytes <n>', 'bytes of each request\'s CoAP token, 1-8 (default node-coap\'s 8; a constrained device often uses 1 or 2)')
    .option('--sequence-file <file>', 'with --security oscore: where the devices\' OSCORE sender sequence numbers are kept between runs, '
      + 'so that none is used twice (default: the devices file + .oscore-seq.json)')
    .option('--json <file>', `also write the report as JSON (schema ${FLEET_REPORT_SCHEMA_ID})`)
    .option('--progress <mode>', 'auto (a bar on a terminal, lines otherwise) | bar | lines | off', 'auto')
    .addHelpText('after', `\nScenarios:\n${scenarios}\n\nExit code: 0 when every device logged in and every request (and every step before and after the load) `
      + 'got the scenario\'s expected answer, 1 otherwise, 2 on bad usage.')
    .action(async (flags: RunFlags) => {
      const all = await readDevicesFile(flags.devicesFile);
      const limit = num(flags.devices);
      if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) {
        throw new SimError('SIM_ERR_BAD_OPTION', `--devices: expected a whole number >= 1, got ${flags.devices}`);
      }
      const devices = limit !== undefined ? all.slice(0, limit) : all;
      if (!(SECURITY_MODES as readonly string[]).includes(flags.security)) {
        throw new SimError('SIM_ERR_BAD_OPTION', `--security: expected ${SECURITY_MODES.join(' or ')}, got ${flags.security}`);
      }
      if (flags.sequenceFile !== undefined && flags.security !== 'oscore') throw new SimError('SIM_ERR_BAD_OPTION', '--sequence-file is for --security oscore');
      // Under OSCORE each device continues its sequence numbers from the last run (RFC 8613 Appendix B.1.1).
      const sequences = flags.security === 'oscore' ? await openSequenceFile(flags.sequenceFile ?? sequenceFileFor(flags.devicesFile)) : undefined;
      if (sequences !== undefined) for (const device of devices) device.oscore?.persistIn(sequences);
      const progressMode = flags.progress === 'auto' ? (process.stdout.isTTY ? 'bar' : 'lines') : flags.progress;
      if (!['bar', 'lines', 'off'].includes(progressMode)) {
        throw new SimError('SIM_ERR_BAD_OPTION', `--progress: expected auto, bar, lines or off, got ${flags.progress}`);
      }
      const view = createProgressView(progressMode as ProgressMode);
      const stop = new AbortController();
      const onSignal = () => {
        log('device-sim: stopping (waiting for requests in flight); Ctrl-C again to quit at once');
        stop.abort();
        process.once('SIGINT', () => process.exit(130));
      };
      process.once('SIGINT', onSignal);
      // The operator's revocation, as the operator guide tells operators to do it.
      const storeArgs = [...(flags.state !== undefined ? ['--state', flags.state] : []), ...(flags.store !== undefined ? ['--store', flags.store] : [])];
      const revokeDevice = storeArgs.length > 0 ? async (id: string) => { await gatewayCli(['devices', 'revoke', id, ...storeArgs]); } : undefined;
      let report;
      try {
        report = await runFleet({
          host: flags.host, port: Number(flags.port), devices,
          security: flags.security as SecurityMode, withToken: flags.withToken === true, tokenBytes: num(flags.coapTokenBytes),
          scenario: flags.scenario as ScenarioName, ratePerSec: num(flags.rate), concurrency: num(flags.concurrency),
          durationSec: num(flags.duration), count: num(flags.count), timeoutMs: Number(flags.timeoutMs), warmup: flags.warmup === true,
          loginConcurrency: Number(flags.loginConcurrency), refreshWith: flags.refreshWith as 'login',
          tokenFormat: flags.tokenFormat as TokenFormatName | undefined,
          skewSec: Number(flags.skewSec), clockCorrection: flags.clockCorrection, leewaySec: Number(flags.leewaySec),
          maxHoldSec: Number(flags.maxHoldSec), telemetryName: flags.telemetryName, audience: flags.audience,
          noncesInFlight: Number(flags.noncesInFlight), revokeDevice, revocationWaitMs: Number(flags.revocationWaitMs),
          signal: stop.signal, onProgress: (p) => view.update(p), progressIntervalMs: progressMode === 'bar' ? 200 : 1000,
        });
      } finally {
        view.stop();
        process.off('SIGINT', onSignal);
        if (sequences !== undefined) {
          await Promise.all(devices.map((device) => device.oscore?.saveExact()));
          await sequences.close();
        }
      }
      log('');
      for (const line of formatFleetReport(report)) log(line);
      if (flags.json !== undefined) {
        await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`);
        log(`report written to ${flags.json}`);
      }
      const allAsExpected = report.requests.asExpected === report.requests.sent && report.requests.sent > 0
        && report.steps.every((step) => step.asExpected === step.sent);
      process.exitCode = allAsExpected && report.devices.loginFailed === 0 ? 0 : 1;
    });
}
